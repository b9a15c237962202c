"""The node's SOCKS5 and HTTP proxy inbounds, driven by real clients: curl and sing-box.

One node serves a SOCKS5 and an HTTP inbound; a user created through the native API logs in
with its id and auth secret.  Bytes are checked end to end (SHA-256) and on the user's
counters, wrong credentials are refused as each protocol refuses, and a kick closes the
user's proxy connections.
"""
from __future__ import annotations

import hashlib
import socket
import struct
import subprocess
import time

import pytest

from tests.hy2.targets import pattern
from tests.inbounds import peers
from tests.inbounds.peers import counted_both_ways, download_and_upload, sing_box_client
from tests.hy2.test_stock_client import payload_server
from tests.support.node import NodeProcess, free_tcp_port

pytestmark = pytest.mark.integration

USER, SECRET = "alice", "alice-proxy-secret-0123456789"
BODY = b"through the node's own inbound\n" * 1000


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    socks, http = free_tcp_port(), free_tcp_port()
    config = {"inbounds": [{"type": "socks", "listen": f"127.0.0.1:{socks}", "tag": "socks-in"},
                           {"type": "http", "listen": f"127.0.0.1:{http}", "tag": "http-in"}]}
    with NodeProcess(tmp_path_factory.mktemp("inbounds"), config) as n:
        r = n.post("/api/v1/users", {"id": USER, "auth_secret": SECRET})
        assert r.status in (200, 201), r.body
        n.socks, n.http = socks, http
        yield n


@pytest.fixture(scope="module")
def origin():
    server, port = payload_server(BODY)
    yield port
    server.shutdown()


def traffic(node, user=USER) -> tuple[int, int]:
    return peers.traffic(node, user)


def wait_traffic(node, expected, timeout=5.0):
    return peers.wait_traffic(node, USER, expected, timeout)


def curl(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True)


def test_curl_through_socks5_with_the_users_credentials(node, origin):
    r = curl("--socks5-hostname", f"{USER}:{SECRET}@127.0.0.1:{node.socks}",
             f"http://127.0.0.1:{origin}/")
    assert r.returncode == 0, r.stderr
    assert r.stdout == BODY


def test_socks5_refuses_a_wrong_password(node, origin):
    r = curl("--socks5-hostname", f"{USER}:wrong@127.0.0.1:{node.socks}", f"http://127.0.0.1:{origin}/")
    assert r.returncode != 0 and r.stdout == b""
    # RFC 1929: the sub-negotiation answers failure (status != 0).
    with socket.create_connection(("127.0.0.1", node.socks), 5) as s:
        s.sendall(b"\x05\x01\x02")
        assert s.recv(2) == b"\x05\x02"
        s.sendall(b"\x01" + bytes([len(USER)]) + USER.encode() + b"\x05wrong")
        assert s.recv(2) == b"\x01\x01"


def test_socks5_without_credentials_is_not_offered_no_auth(node):
    with socket.create_connection(("127.0.0.1", node.socks), 5) as s:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\xff"


def test_curl_through_the_http_proxy_plain_and_connect(node, origin):
    proxy = f"http://{USER}:{SECRET}@127.0.0.1:{node.http}"
    plain = curl("-x", proxy, f"http://127.0.0.1:{origin}/")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == BODY
    tunnel = curl("-p", "-x", proxy, f"http://127.0.0.1:{origin}/")
    assert tunnel.returncode == 0, tunnel.stderr
    assert tunnel.stdout == BODY


def test_the_http_proxy_asks_for_credentials(node, origin):
    for proxy in (f"http://127.0.0.1:{node.http}", f"http://{USER}:nope@127.0.0.1:{node.http}"):
        r = curl("-o", "/dev/null", "-w", "%{http_code}", "-x", proxy, f"http://127.0.0.1:{origin}/")
        assert r.stdout == b"407"


def test_an_unknown_target_port_is_a_clean_failure(node):
    r = curl("-o", "/dev/null", "-w", "%{http_code}", "-x",
             f"http://{USER}:{SECRET}@127.0.0.1:{node.http}", "http://127.0.0.1:1/")
    assert r.stdout == b"502"


def _socks_connect(port: int, target: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(b"\x05\x01\x02")
    assert s.recv(2) == b"\x05\x02"
    s.sendall(b"\x01" + bytes([len(USER)]) + USER.encode() + bytes([len(SECRET)]) + SECRET.encode())
    assert s.recv(2) == b"\x01\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", target))
    answer = s.recv(10)
    assert answer[:2] == b"\x05\x00", answer
    return s


def test_bytes_are_exact_on_the_users_counters(node, targets):
    before = traffic(node)
    down, up = 3 << 20, 2 << 20
    with _socks_connect(node.socks, targets.source) as s:
        s.sendall(struct.pack(">QQ", down, 11))
        got, h = 0, hashlib.sha256()
        while got < down:
            data = s.recv(1 << 20)
            assert data
            h.update(data)
            got += len(data)
    want = hashlib.sha256()
    for chunk in pattern(down, 11):
        want.update(chunk)
    assert h.digest() == want.digest()
    with _socks_connect(node.socks, targets.sink) as s:
        s.sendall(struct.pack(">Q", up))
        for chunk in pattern(up, 12):
            s.sendall(chunk)
        digest = b""
        while len(digest) < 32:
            data = s.recv(32)
            assert data
            digest += data
    expected = (before[0] + 16 + 8 + up, before[1] + down + 32)
    assert wait_traffic(node, expected) == expected


def test_a_kick_closes_the_users_proxy_connections(node, targets):
    with _socks_connect(node.socks, targets.echo) as s:
        s.sendall(b"ping")
        assert s.recv(4) == b"ping"
        r = node.post(f"/api/v1/users/{USER}/kick")
        assert r.status == 200, r.body
        s.settimeout(2)
        t0 = time.monotonic()
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        assert time.monotonic() - t0 < 1.5


def test_a_disabled_user_is_refused(node, origin):
    r = node.post("/api/v1/users", {"id": "bob", "auth_secret": "bob-proxy-secret-0123456789",
                                    "enabled": False})
    assert r.status in (200, 201), r.body
    deadline = time.monotonic() + 5
    while True:
        got = curl("--socks5-hostname", "bob:bob-proxy-secret-0123456789@127.0.0.1:" + str(node.socks),
                   f"http://127.0.0.1:{origin}/")
        if got.returncode != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got.returncode != 0 and got.stdout == b""


# -- sing-box as the client -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["socks", "http"])
def test_sing_box_through_each_inbound_20_mib_both_ways(node, targets, tmp_path, kind):
    outbound = {"type": kind, "server": "127.0.0.1",
                "server_port": node.socks if kind == "socks" else node.http,
                "username": USER, "password": SECRET, **({"version": "5"} if kind == "socks" else {})}
    size = 20 << 20
    with sing_box_client(tmp_path, outbound) as local:
        before = traffic(node)
        download_and_upload(local, targets, size, 21)
    tx, rx = counted_both_ways(size)
    assert wait_traffic(node, (before[0] + tx, before[1] + rx)) == (before[0] + tx, before[1] + rx)


def test_a_traffic_limit_holds_on_the_proxy_inbounds(node, targets):
    """The splice caps the user where it counts: a 1 MiB user downloading 3 MiB through the
    SOCKS5 inbound is cut with ``used`` at the limit (one worker carries it: to the byte)."""
    limit = 1 << 20
    r = node.post("/api/v1/users", {"id": "erin", "auth_secret": "erin-proxy-secret-0123456789",
                                    "traffic_limit": limit})
    assert r.status in (200, 201), r.body
    s = socket.create_connection(("127.0.0.1", node.socks), 5)
    s.sendall(b"\x05\x01\x02")
    assert s.recv(2) == b"\x05\x02"
    secret = b"erin-proxy-secret-0123456789"
    s.sendall(b"\x01\x04erin" + bytes([len(secret)]) + secret)
    assert s.recv(2) == b"\x01\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", targets.source))
    assert s.recv(10)[:2] == b"\x05\x00"
    s.sendall(struct.pack(">QQ", 3 << 20, 5))
    s.settimeout(5)
    got = 0
    try:
        while True:
            data = s.recv(1 << 20)
            if not data:
                break
            got += len(data)
    except ConnectionResetError:
        pass
    s.close()
    entry = node.get("/api/v1/traffic").json()["users"]["erin"]
    used = entry["tx"] + entry["rx"]
    assert limit <= used <= limit + (256 << 10), used
    assert got <= limit
