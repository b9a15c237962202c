"""The compiled request heads (``fastpath/inbounds/request_heads.pyx``) against the pure-Python
parsers they replaced (``tests/oracles/request_heads.py``), in the same run:

- per head: ns to parse one SOCKS5 address, VLESS request and Trojan request, both sides
  alternating (``bench/paired.py``);
- per connection: two nodes from this tree, one with the Python parsers put back
  (``bench/oracle_heads/sitecustomize.py``), each with a SOCKS5, a VLESS (TLS) and a Trojan
  (TLS) inbound; sing-box as the client of each opens one-byte-echo connections one after the
  other; connections/s and the worker's CPU per connection, the two nodes alternating.

    python -m pytest bench/test_bench_request_heads.py -s
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.paired import paired, per_op, record
from bench.test_bench_inbounds import _connections_per_second, _cpu, _start_sing_box, _wait_port
from fastpath.inbounds import request_heads as compiled
from fastpath.inbounds.trojan import password_hash
from fastpath.inbounds.vless_header import encode_request
from fastpath.proxy.socks5 import encode_address
from tests.hy2.targets import standard_targets
from tests.oracles import request_heads as oracle
from tests.support.node import NodeProcess, free_tcp_port

ROOT = Path(__file__).resolve().parent.parent
USER, SECRET = "bench", "6f0e3c51-8d7a-4a3e-9c11-2b5d7e4f9a10"   # a UUID: VLESS's id too
CONNECTIONS = int(os.environ.get("FASTPATH_BENCH_CONNECTIONS", "200"))
PAIRS = int(os.environ.get("FASTPATH_BENCH_PAIRS", "6"))
ADDRESS = "www.example.com:443"
HEADS = {
    "socks_address": (encode_address(ADDRESS),),
    "vless_request": (encode_request(bytes.fromhex(SECRET.replace("-", "")), ADDRESS) + b"GET",),
    "trojan_request": (password_hash(SECRET) + b"\r\n\x01" + encode_address(ADDRESS) + b"\r\nGET",),
}


@pytest.mark.parametrize("name", list(HEADS))
def test_parse_time_per_head(compare, name):
    args, ops = HEADS[name], 20000
    python, c = getattr(oracle, name), getattr(compiled, name)
    assert python(*args) == c(*args)

    def side(parse):
        def run():
            for _ in range(ops):
                parse(*args)
        return lambda: per_op(run, ops).cpu_ns

    result = paired(side(python), side(c), pairs=7, warmup=1, better="lower", unit="ns")
    print(f"\n{name}: Python {result.baseline.median:.0f} ns, compiled "
          f"{result.candidate.median:.0f} ns CPU per head: {result.ratio_median:.1f}x")
    record(compare, f"{name} compiled", f"{name} Python", result)


def _client(tmp_path, name: str, outbound: dict) -> tuple:
    local = free_tcp_port()
    proc = _start_sing_box(tmp_path, name, {
        "log": {"level": "error"},
        "inbounds": [{"type": "socks", "tag": "in", "listen": "127.0.0.1", "listen_port": local}],
        "outbounds": [{**outbound, "tag": "out"}], "route": {"final": "out"}})
    _wait_port(local)
    return proc, local


def _outbounds(ports: dict) -> dict:
    tls = {"enabled": True, "insecure": True, "server_name": "localhost"}
    return {
        "socks": {"type": "socks", "version": "5", "server": "127.0.0.1", "server_port": ports["socks"],
                  "username": USER, "password": SECRET},
        "vless": {"type": "vless", "server": "127.0.0.1", "server_port": ports["vless"],
                  "uuid": SECRET, "tls": tls},
        "trojan": {"type": "trojan", "server": "127.0.0.1", "server_port": ports["trojan"],
                   "password": SECRET, "tls": tls},
    }


def _node(tmp_path: Path, name: str, env: dict | None) -> tuple[NodeProcess, dict]:
    ports = {kind: free_tcp_port() for kind in ("socks", "vless", "trojan")}
    inbounds = [
        {"type": "socks", "listen": f"127.0.0.1:{ports['socks']}", "tag": "socks-in"},
        {"type": "vless", "listen": f"127.0.0.1:{ports['vless']}", "tag": "vless-in", "tls": True},
        {"type": "trojan", "listen": f"127.0.0.1:{ports['trojan']}", "tag": "trojan-in"},
    ]
    (tmp_path / name).mkdir()
    return NodeProcess(tmp_path / name, {"inbounds": inbounds}, env=env), ports


def test_connections_per_second_python_vs_compiled_heads(tmp_path, compare):
    targets = standard_targets()
    python_env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "bench" / "oracle_heads"), str(ROOT)])}
    before, before_ports = _node(tmp_path, "python-heads", python_env)
    after, after_ports = _node(tmp_path, "compiled-heads", None)
    procs = []
    try:
        sides = {}
        for label, node, ports in (("python", before, before_ports), ("compiled", after, after_ports)):
            node.start()
            assert node.post("/api/v1/users", {"id": USER, "auth_secret": SECRET}).status in (200, 201)
            worker = next(c["pid"] for c in node.get("/api/v1/node").json()["children"]
                          if c["shard"] == 0)
            for kind, outbound in _outbounds(ports).items():
                proc, local = _client(tmp_path, f"client-{label}-{kind}", outbound)
                procs.append(proc)
                sides[label, kind] = (local, worker)
        time.sleep(0.5)
        assert "pure-Python request heads" in before.log_path.read_text()
        assert "pure-Python request heads" not in after.log_path.read_text()
        for kind in ("socks", "vless", "trojan"):
            cpu = {"python": [], "compiled": []}

            def side(label):
                local, worker = sides[label, kind]

                def run():
                    start = _cpu(worker)
                    rate = _connections_per_second(local, targets.echo, CONNECTIONS)
                    cpu[label].append((_cpu(worker) - start) / CONNECTIONS * 1e6)
                    return rate
                return run

            result = paired(side("python"), side("compiled"), pairs=PAIRS, warmup=1,
                            better="higher", unit="conn/s")
            cpu_py = sorted(cpu["python"][1:])[len(cpu["python"][1:]) // 2]
            cpu_c = sorted(cpu["compiled"][1:])[len(cpu["compiled"][1:]) // 2]
            print(f"\n{kind}: Python heads {result.baseline.median:.0f} conn/s "
                  f"({cpu_py:.0f} µs worker CPU/conn), compiled {result.candidate.median:.0f} "
                  f"conn/s ({cpu_c:.0f} µs/conn): {result.ratio_median:.2f}x "
                  f"(pairs {[round(r, 2) for r in result.pair_ratios]})")
            record(compare, f"{kind} inbound connections/s, compiled heads",
                   f"{kind} inbound connections/s, Python heads", result)
            compare.record(f"{kind} inbound worker CPU/conn, Python heads", cpu_py, "µs")
            compare.record(f"{kind} inbound worker CPU/conn, compiled heads", cpu_c, "µs",
                           baseline=f"{kind} inbound worker CPU/conn, Python heads")
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(5)
        for node in (before, after):
            if node.proc is not None:
                node.stop()
        targets.close()
