"""Drive a node with the PasarGuard panel's own client (``pasarguard-node-bridge``).

Runs under the Python 3.12 of ``.venv-pg312`` (the client needs 3.12), started by the tests.
One JSON request per stdin line, one JSON answer per stdout line:

    {"id": 1, "op": "connect", "node": "rest", "mode": "rest", "port": 62050, "ca": "...", "key": "..."}
    {"id": 1, "ok": true, "result": ...}   or   {"id": 1, "ok": false, "error": {"code": 403, "detail": "..."}}

Ops call the client's public methods (start, info, stop, get_stats, get_user_online_stats,
get_user_online_ip_list, sync_users, sync_users_chunked, stream_logs, ...) and, for the
per-user sync the client uses with older nodes, its ``_sync_batch_users``.
"""
import asyncio
import json
import logging
import sys
import time

from google.protobuf.json_format import MessageToDict
from PasarGuardNodeBridge import NodeAPIError, NodeType, create_node, create_proxy, create_user
from PasarGuardNodeBridge.common import service_pb2 as service

log = logging.getLogger("panel-driver")
log.addHandler(logging.NullHandler())
log.propagate = False

nodes = {}
prepared = {}


def to_users(items):
    if isinstance(items, str):          # the name of a set built earlier by "prepare"
        return prepared[items]
    return [create_user(u["email"], create_proxy(
        hysteria_auth=u.get("auth") or None, vmess_id=u.get("vmess") or None,
        vless_id=u.get("vless") or None, vless_flow=u.get("vless_flow") or None,
        trojan_password=u.get("trojan") or None, shadowsocks_password=u.get("ss") or None,
        shadowsocks_method=u.get("ss_method") or None), u.get("inbounds", ["hysteria2"]))
        for u in items]


async def op_prepare(_node, r):
    """Build a user set once (so timed calls do not include building 10k messages)."""
    prepared[r["name"]] = to_users(r["users"])
    return len(prepared[r["name"]])


def stats_rows(resp):
    return [[s.name, s.type, s.link, s.value] for s in resp.stats]


async def op_connect(r):
    node = create_node(NodeType(r["mode"]), address=r.get("address", "127.0.0.1"), port=r["port"],
                       server_ca=r["ca"], api_key=r["key"], api_port=r["port"], name=r["node"],
                       logger=log, default_timeout=r.get("timeout", 30), internal_timeout=30)
    nodes[r["node"]] = node
    return True


async def op_start(node, r):
    resp = await node.start(r.get("config", ""), service.BackendType.XRAY, to_users(r.get("users", [])),
                            keep_alive=r.get("keep_alive", 0), exclude_inbounds=r.get("exclude", []))
    return MessageToDict(resp, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


async def op_info(node, r):
    return MessageToDict(await node.info(), preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


async def op_stop(node, r):
    await node.stop()
    return True


async def op_stats(node, r):
    return stats_rows(await node.get_stats(getattr(service.StatType, r["type"]) if isinstance(r["type"], str)
                                           else r["type"], reset=r.get("reset", False), name=r.get("name", "")))


async def op_online(node, r):
    resp = await node.get_user_online_stats(r["email"])
    return [resp.name, resp.value]


async def op_online_ip(node, r):
    resp = await node.get_user_online_ip_list(r["email"])
    return {"name": resp.name, "ips": dict(resp.ips)}


async def op_sync_users(node, r):
    started = time.perf_counter()
    await node.sync_users(to_users(r["users"]))
    return time.perf_counter() - started


async def op_sync_users_chunked(node, r):
    started = time.perf_counter()
    failed = await node.sync_users_chunked(to_users(r["users"]), chunk_size=r.get("chunk_size", 100))
    return {"seconds": time.perf_counter() - started, "failed": [u.email for u in failed],
            "rejected": getattr(failed, "rejected", False), "detail": getattr(failed, "detail", "")}


async def op_sync_user_each(node, r):
    failed = await node._sync_batch_users(to_users(r["users"]))
    return [u.email for u in failed]


async def op_logs(node, r):
    lines = []
    deadline = time.monotonic() + r.get("timeout", 10)
    async with node.stream_logs() as queue:
        while len(lines) < r.get("count", 1) and time.monotonic() < deadline:
            try:
                item = await asyncio.wait_for(queue.get(), max(0.01, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
            if isinstance(item, NodeAPIError):
                raise item
            lines.append(item)
            if r.get("until") and r["until"] in item:
                break
    return lines


async def op_system_stats(node, r):
    return MessageToDict(await node.get_system_stats(), preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


async def op_backend_stats(node, r):
    return MessageToDict(await node.get_backend_stats(), preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)


async def op_latency(node, r):
    return MessageToDict(await node.get_outbounds_latency(r.get("name", "")), preserving_proto_field_name=True)


async def op_stats_loop(node, r):
    """``n`` GetStats calls back to back: latencies in seconds (for the benchmark)."""
    kind = getattr(service.StatType, r["type"])
    out, rows = [], 0
    for _ in range(r["n"]):
        started = time.perf_counter()
        resp = await node.get_stats(kind, reset=r.get("reset", False))
        out.append(time.perf_counter() - started)
        rows = len(resp.stats)
    return {"seconds": out, "rows": rows}


async def op_info_loop(node, r):
    out = []
    for _ in range(r["n"]):
        started = time.perf_counter()
        await node.info()
        out.append(time.perf_counter() - started)
    return out


async def handle(request):
    op = request["op"]
    if op == "connect":
        return await op_connect(request)
    if op == "prepare":
        return await op_prepare(None, request)
    node = nodes[request.get("node", "default")]
    return await globals()["op_" + op](node, request)


async def main():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        request = json.loads(line)
        try:
            answer = {"id": request.get("id"), "ok": True, "result": await handle(request)}
        except NodeAPIError as exc:
            answer = {"id": request.get("id"), "ok": False,
                      "error": {"code": exc.code, "detail": str(exc.detail)}}
        except Exception as exc:
            answer = {"id": request.get("id"), "ok": False,
                      "error": {"code": None, "detail": f"{type(exc).__name__}: {exc}"}}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for node in nodes.values():
        for name in ("_client", "_json_client"):
            client = getattr(node, name, None)
            if client is not None and hasattr(client, "close"):
                try:
                    await client.close()
                except Exception:
                    pass
        close_chan = getattr(node, "_close_chan", None)
        if close_chan:
            close_chan()


if __name__ == "__main__":
    asyncio.run(main())
