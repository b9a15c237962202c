"""UDP inside the stream inbounds: echoed datagrams per second through the node vs through
sing-box as the server, the same sing-box client, alternated in the same run (bench/paired.py).

The client is sing-box with a local UDP port forwarded (a ``direct`` inbound with an override
address) to a loopback UDP echo, through an outbound that is either the node's inbound or a
sing-box server of the same protocol and packet encoding.  The driver keeps ``WINDOW``
datagrams of ``SIZE`` bytes in flight and counts the echoes for ``SECONDS``; a datagram lost
(none came back for 0.2 s) is counted lost and the window refilled.  Reported per row:
echoes/s (median of the pairs), the ratio, loss, and the server process's CPU seconds per
100 000 echoes (both directions through the server).

    python -m pytest bench/test_bench_inbound_udp.py -s -p no:cacheprovider
"""
from __future__ import annotations

import os
import socket
import statistics
import time

import pytest

from paired import paired  # bench/ is on sys.path (rootdir conftest)
from test_bench_inbounds import _cpu, _start_sing_box, _wait_port
from tests.hy2.singbox import udp_forward
from tests.hy2.targets import standard_targets
from tests.support.node import NodeProcess, free_tcp_port, free_udp_port

SECONDS = float(os.environ.get("FASTPATH_BENCH_UDP_SECONDS", "4"))
PAIRS = int(os.environ.get("FASTPATH_BENCH_PAIRS", "3"))
SIZE = int(os.environ.get("FASTPATH_BENCH_UDP_SIZE", "1200"))
WINDOW = int(os.environ.get("FASTPATH_BENCH_UDP_WINDOW", "32"))
USER = "bench"
UUID = "6f0e3c51-8d7a-4a3e-9c11-2b5d7e4f9a10"          # also the Trojan password

ROWS = {
    # row: (protocol, tls, client extras)
    "trojan-tls": ("trojan", True, {}),
    "vless-tls-xudp": ("vless", True, {}),                          # sing-box's default
    "vless-tls-plain": ("vless", True, {"packet_encoding": ""}),
    "vmess-aes-128-gcm": ("vmess", False, {"security": "aes-128-gcm"}),
    "vmess-aes-128-gcm-xudp": ("vmess", False, {"security": "aes-128-gcm",
                                                "packet_encoding": "xudp"}),
}


def _echo_rate(local: int, seconds: float) -> tuple[float, float]:
    """(echoes per second, share lost) through ``local`` for ``seconds``."""
    payload = os.urandom(SIZE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", local))
        s.settimeout(0.2)
        sent = got = lost = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            while sent - got - lost < WINDOW:
                s.send(payload)
                sent += 1
            try:
                s.recv(65536)
                got += 1
            except socket.timeout:
                lost = sent - got                 # what is out now is taken as lost
        elapsed = time.perf_counter() - start
    return got / elapsed, lost / max(sent, 1)


def _client(tmp_path, name: str, outbound: dict, target: int):
    local = free_udp_port()
    proc = _start_sing_box(tmp_path, name, {
        "log": {"level": "error"}, "inbounds": [udp_forward(local, target, "in")],
        "outbounds": [{**outbound, "tag": "out"}], "route": {"final": "out"}})
    time.sleep(0.5)
    return proc, local


@pytest.fixture(scope="module")
def targets():
    t = standard_targets()
    yield t
    t.close()


@pytest.mark.parametrize("row", list(ROWS))
def test_stream_inbound_udp_vs_sing_box_server(tmp_path, targets, compare, row):
    kind, tls, client = ROWS[row]
    node_port, box_port = free_tcp_port(), free_tcp_port()
    (tmp_path / "node").mkdir()
    inbound = {"type": kind, "listen": f"127.0.0.1:{node_port}", "tag": "in"}
    if tls and kind != "trojan":
        inbound["tls"] = True
    with NodeProcess(tmp_path / "node", {"inbounds": [inbound]}) as node:
        assert node.post("/api/v1/users", {"id": USER, "auth_secret": UUID}).status in (200, 201)
        worker = next(c["pid"] for c in node.get("/api/v1/node").json()["children"] if c["shard"] == 0)
        user = {"name": USER, "password": UUID} if kind == "trojan" else (
            {"name": USER, "uuid": UUID} if kind == "vless" else {"uuid": UUID, "alterId": 0})
        box_inbound = {"type": kind, "tag": "in", "listen": "127.0.0.1", "listen_port": box_port,
                       "users": [user]}
        if tls:
            box_inbound["tls"] = {"enabled": True,
                                  "certificate_path": str(node.data_dir / "tls" / "node.crt"),
                                  "key_path": str(node.data_dir / "tls" / "node.key")}
        box = _start_sing_box(tmp_path, f"server-{row}", {
            "log": {"level": "error"}, "inbounds": [box_inbound],
            "outbounds": [{"type": "direct", "tag": "direct"}]})
        _wait_port(box_port)

        def outbound(port: int) -> dict:
            out = {"type": kind, "server": "127.0.0.1", "server_port": port, **client}
            out["password" if kind == "trojan" else "uuid"] = UUID
            if tls:
                out["tls"] = {"enabled": True, "insecure": True, "server_name": "localhost"}
            return out

        to_node, node_local = _client(tmp_path, f"client-node-{row}", outbound(node_port), targets.udp)
        to_box, box_local = _client(tmp_path, f"client-box-{row}", outbound(box_port), targets.udp)
        losses = {"fastpath": [], "sing-box": []}
        cpu = {"fastpath": [], "sing-box": []}

        def side(name: str, local: int, pid: int):
            def measure() -> float:
                before = _cpu(pid)
                rate, loss = _echo_rate(local, SECONDS)
                losses[name].append(loss)
                cpu[name].append((_cpu(pid) - before) / max(rate * SECONDS, 1) * 1e5)
                return rate
            return measure

        try:
            result = paired(side("sing-box", box_local, box.pid), side("fastpath", node_local, worker),
                            pairs=PAIRS, warmup=1, better="higher", unit="echoes/s")
        finally:
            for proc in (to_node, to_box, box):
                proc.kill()
                proc.wait(5)
    for name, figures in (("sing-box", result.baseline.figures), ("fastpath", result.candidate.figures)):
        print(f"\n{row} UDP, {name} server: {statistics.median(figures):.0f} echoes/s of {SIZE} B "
              f"(pairs {[round(f) for f in figures]}), loss {statistics.median(losses[name][1:]):.2%}, "
              f"server CPU {statistics.median(cpu[name][1:]):.2f} s per 100k echoes")
    print(f"{row} UDP: fastpath / sing-box = {result.ratio_median:.2f}x "
          f"(pairs {[round(r, 2) for r in result.pair_ratios]})")
    compare.record(f"{row} UDP echoes/s: sing-box server", result.baseline.median, "echoes/s",
                   better="higher")
    compare.record(f"{row} UDP echoes/s: fastpath", result.candidate.median, "echoes/s",
                   baseline=f"{row} UDP echoes/s: sing-box server", better="higher")
