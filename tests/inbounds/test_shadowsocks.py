"""The Shadowsocks AEAD inbound: sing-box as the client for each method, bytes exact on the
user, wrong keys and replays met with silence, and the chunk codec under hypothesis."""
from __future__ import annotations

import os
import socket

import pytest
from hypothesis import given, settings, strategies as st

from fastpath.inbounds.shadowsocks_aead import (METHODS, ChunkError, Opener, Sealer, master_key,
                                                session_cipher)
from fastpath.proxy.socks5 import encode_address
from tests.inbounds.peers import (counted_both_ways, download_and_upload, sing_box_client,
                                  traffic, wait_traffic)
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


@pytest.mark.parametrize("method", sorted(METHODS))
def test_sing_box_moves_exact_bytes_with_each_method(node, targets, tmp_path, method):
    outbound = {"type": "shadowsocks", "server": "127.0.0.1", "server_port": node.ss_ports[method],
                "method": method, "password": SECRET}
    size = (20 << 20) if method == "aes-256-gcm" else (4 << 20)
    with sing_box_client(tmp_path, outbound) as local:
        before = traffic(node, USER)
        download_and_upload(local, targets, size, 31)
    tx, rx = counted_both_ways(size)
    expected = (before[0] + tx, before[1] + rx)
    assert wait_traffic(node, USER, expected) == expected


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
