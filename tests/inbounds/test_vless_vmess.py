"""VLESS, VMess and Trojan over WebSocket: sing-box as the client of each protocol and
transport (20 MiB both ways, SHA-256 equal, the user's bytes exact in /traffic), wrong ids
met as the reference servers meet them, and the refusals of what is not served."""
from __future__ import annotations

import socket
import ssl
import time
import uuid

import pytest

from fastpath.config.fields import ConfigError
from fastpath.inbounds.config import parse_inbounds_config
from tests.inbounds.peers import (inbounds_node, outbound_for, secret_uuid,
                                  sing_box_moves_counted_bytes)
from tests.support.node import NodeProcess, free_tcp_port

USER, SECRET = "erin", "erin-stream-secret-0123456789"
OTHER_ID = str(uuid.uuid4())
USER_UUID = secret_uuid(SECRET)
SIZE = 20 << 20

INBOUNDS = {
    "vless-tls": {"type": "vless", "tls": True},
    "vless-ws": {"type": "vless", "transport": {"type": "ws", "path": "/vl", "host": "cdn.example"}},
    "vless-ws-tls": {"type": "vless", "tls": True, "transport": {"type": "ws", "path": "/vlt"}},
    "vmess-tcp": {"type": "vmess"},
    "vmess-ws": {"type": "vmess", "transport": {"type": "ws", "path": "/vm"}},
    "vmess-tls": {"type": "vmess", "tls": True},
    "trojan-ws": {"type": "trojan", "transport": {"type": "ws", "path": "/tj"}},
}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with inbounds_node(tmp_path_factory.mktemp("streams"), INBOUNDS, USER, SECRET) as n:
        yield n


def outbound_of(node, tag: str, **extra) -> dict:
    return outbound_for(node, INBOUNDS[tag], tag, SECRET, vmess_security="aes-128-gcm", **extra)


def moved(node, tmp_path, targets, outbound, seed: int) -> None:
    sing_box_moves_counted_bytes(node, USER, tmp_path, outbound, targets, SIZE, seed)


@pytest.mark.parametrize("tag", ["vless-tls", "vless-ws", "vless-ws-tls"])
def test_sing_box_through_vless_20_mib_both_ways(node, targets, tmp_path, tag):
    moved(node, tmp_path, targets, outbound_of(node, tag), 51)


@pytest.mark.parametrize("security", ["aes-128-gcm", "chacha20-poly1305", "none"])
def test_sing_box_through_vmess_tcp_each_security(node, targets, tmp_path, security):
    moved(node, tmp_path, targets, outbound_of(node, "vmess-tcp", security=security), 61)


@pytest.mark.parametrize("options", [{"global_padding": True}, {"authenticated_length": True},
                                     {"global_padding": True, "authenticated_length": True,
                                      "security": "chacha20-poly1305"}])
def test_sing_box_through_vmess_with_chunk_options(node, targets, tmp_path, options):
    moved(node, tmp_path, targets, outbound_of(node, "vmess-tcp", **options), 62)


@pytest.mark.parametrize("tag", ["vmess-ws", "vmess-tls"])
def test_sing_box_through_vmess_ws_and_tls(node, targets, tmp_path, tag):
    moved(node, tmp_path, targets, outbound_of(node, tag), 63)


def test_sing_box_through_trojan_over_websocket(node, targets, tmp_path):
    moved(node, tmp_path, targets, outbound_of(node, "trojan-ws"), 71)


def _closed_without_answer(sock: socket.socket, wait: float) -> bytes:
    sock.settimeout(wait)
    try:
        return sock.recv(100)
    except socket.timeout:
        return b"timeout"


def test_an_unknown_vmess_id_gets_no_answer(node):
    from fastpath.inbounds.vless_header import encode_port_address
    from fastpath.inbounds.vmess_header import encode_request
    raw = encode_request(uuid.UUID(OTHER_ID).bytes, encode_port_address("127.0.0.1", 1),
                         security=3, option=5, body_key=b"k" * 16, body_iv=b"i" * 16)
    with socket.create_connection(("127.0.0.1", node.ports["vmess-tcp"]), 5) as s:
        s.sendall(raw + b"x" * 200)
        # No answer and no close: the node drains (as the reference servers do).
        assert _closed_without_answer(s, 1.0) == b"timeout"


def test_an_unknown_vless_id_is_closed(node):
    from fastpath.inbounds.vless_header import encode_request
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", node.ports["vless-tls"]), 5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(encode_request(uuid.UUID(OTHER_ID).bytes, "127.0.0.1:1"))
        assert _closed_without_answer(s, 5.0) == b""
    assert "unknown VLESS id" in node.log()


def test_a_websocket_on_the_wrong_path_gets_404(node):
    with socket.create_connection(("127.0.0.1", node.ports["vless-ws"]), 5) as s:
        s.sendall(b"GET /other HTTP/1.1\r\nHost: cdn.example\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        s.settimeout(5)
        assert s.recv(100).startswith(b"HTTP/1.1 404")


def test_a_wrong_host_gets_404_and_the_right_one_101(node):
    for host, status in ((b"elsewhere.example", b"404"), (b"cdn.example", b"101")):
        with socket.create_connection(("127.0.0.1", node.ports["vless-ws"]), 5) as s:
            s.sendall(b"GET /vl?ed=2048 HTTP/1.1\r\nHost: " + host + b"\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 13\r\n\r\n")
            s.settimeout(5)
            assert s.recv(100).startswith(b"HTTP/1.1 " + status)


def test_a_websocket_ping_gets_its_pong(node):
    import os as _os
    with socket.create_connection(("127.0.0.1", node.ports["vless-ws"]), 5) as s:
        s.sendall(b"GET /vl HTTP/1.1\r\nHost: cdn.example\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        s.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        mask = _os.urandom(4)
        s.sendall(b"\x89\x85" + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(b"hello")))
        assert s.recv(7) == b"\x8a\x05hello"


@pytest.mark.parametrize("entry, words", [
    ({"type": "vless", "security": "reality"}, ["'x'", "REALITY"]),
    ({"type": "vless", "transport": {"type": "grpc"}}, ["'x'", "gRPC transport"]),
    ({"type": "vmess", "transport": {"type": "xhttp"}}, ["'x'", "XHTTP transport"]),
    ({"type": "wireguard"}, ["'x'", "WireGuard"]),
    ({"type": "vless", "flow": "xtls-rprx-vision"}, ["'x'", "xtls-rprx-vision"]),
    ({"type": "mystery"}, ["'x'", "'mystery'"]),
])
def test_what_is_not_served_is_refused_naming_the_inbound(entry, words):
    with pytest.raises(ConfigError) as caught:
        parse_inbounds_config([{**entry, "tag": "x", "listen": "127.0.0.1:1"}])
    for word in words:
        assert word in str(caught.value)


def test_fastpath_serve_refuses_a_reality_inbound_at_start(tmp_path):
    config = {"inbounds": [{"type": "vless", "tag": "reality-in", "security": "reality",
                            "listen": f"127.0.0.1:{free_tcp_port()}"}]}
    node = NodeProcess(tmp_path, config)
    with pytest.raises(Exception):
        node.start(timeout=10)
    log = node.log()
    node.stop()
    assert "reality-in" in log and "REALITY" in log
