"""UDP inside the stream protocols, with sing-box as the client: Trojan (TLS and WebSocket),
VLESS (plain UDP, XUDP — sing-box's default — and packetaddr; TLS and WebSocket) and VMess
(plain, XUDP and packetaddr; each body security), each echoing datagrams of many sizes off a
loopback UDP echo with the user's bytes exact in /traffic; a kicked user's UDP stream is cut
and a capped user's stops at the cap."""
from __future__ import annotations

import os
import socket
import ssl
import time
import uuid

import pytest

from fastpath.inbounds.trojan import password_hash
from fastpath.inbounds.udp_frames import MuxFrames, TrojanPackets, mux_new
from fastpath.inbounds.vless_header import CMD_MUX, RESPONSE, encode_request
from fastpath.proxy.socks5 import encode_address
from tests.inbounds.peers import (inbounds_node, outbound_for, secret_uuid, traffic,
                                  wait_traffic)
from tests.inbounds.test_udp import echo_all, sing_box_udp

pytestmark = pytest.mark.integration

USER, SECRET = "ursula", "ursula-stream-udp-0123456789"
USER_UUID = secret_uuid(SECRET)
# Up to 8000 B: sing-box reads a datagram from the stream into a 16 KiB buffer less its headroom
# (a 20 000 B echo comes back cut to 16 121 B whoever the server is).
SIZES = [1, 7, 100, 512, 1000, 1200, 1400, 33, 900, 64, 4000, 8000] * 3

INBOUNDS = {
    "trojan": {"type": "trojan"},
    "trojan-ws": {"type": "trojan", "transport": {"type": "ws", "path": "/tj"}},
    "vless-tls": {"type": "vless", "tls": True},
    "vless-ws": {"type": "vless", "transport": {"type": "ws", "path": "/vl"}},
    "vmess-tcp": {"type": "vmess"},
    "vmess-ws-tls": {"type": "vmess", "tls": True, "transport": {"type": "ws", "path": "/vm"}},
}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with inbounds_node(tmp_path_factory.mktemp("stream-udp"), INBOUNDS, USER, SECRET) as n:
        yield n


def outbound_of(node, tag: str, **extra) -> dict:
    return outbound_for(node, INBOUNDS[tag], tag, SECRET, **extra)


CASES = {
    "trojan": ("trojan", {}),
    "trojan-ws": ("trojan-ws", {}),
    "vless-xudp-default": ("vless-tls", {}),
    "vless-plain": ("vless-tls", {"packet_encoding": ""}),
    "vless-packetaddr": ("vless-tls", {"packet_encoding": "packetaddr"}),
    "vless-ws-xudp": ("vless-ws", {"packet_encoding": "xudp"}),
    "vless-ws-plain": ("vless-ws", {"packet_encoding": ""}),
    "vmess-aes": ("vmess-tcp", {"security": "aes-128-gcm"}),
    "vmess-chacha-padding": ("vmess-tcp", {"security": "chacha20-poly1305", "global_padding": True}),
    "vmess-authlen": ("vmess-tcp", {"security": "aes-128-gcm", "authenticated_length": True}),
    "vmess-none": ("vmess-tcp", {"security": "none"}),
    "vmess-xudp": ("vmess-tcp", {"security": "aes-128-gcm", "packet_encoding": "xudp"}),
    "vmess-packetaddr": ("vmess-tcp", {"security": "chacha20-poly1305", "packet_encoding": "packetaddr"}),
    "vmess-ws-tls": ("vmess-ws-tls", {"security": "aes-128-gcm"}),
    "vmess-ws-tls-xudp": ("vmess-ws-tls", {"security": "none", "packet_encoding": "xudp"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sing_box_udp_through_the_stream_protocols(node, targets, tmp_path, case):
    tag, extra = CASES[case]
    before = traffic(node, USER)
    with sing_box_udp(tmp_path, outbound_of(node, tag, **extra), targets.udp) as local:
        sent = echo_all(local, SIZES)
    expected = (before[0] + sent, before[1] + sent)
    assert wait_traffic(node, USER, expected) == expected


def _tls(port: int) -> ssl.SSLSocket:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), 5)
    return context.wrap_socket(raw, server_hostname="localhost")


def _read_trojan(s, framing: TrojanPackets) -> list:
    while True:
        data = s.recv(65536)
        assert data, "the node closed the stream"
        got = framing.feed(data)
        if got:
            return got


def test_a_burst_of_datagrams_comes_back_whole_when_replies_are_written_together(node, targets):
    """50 datagrams in one write: the echoes are read from the target socket in bursts and their
    replies written together; every one comes back intact and framed on its own.  (A burst of
    200 loses about a sixth on loopback at the echo, with or without batching: UDP.)"""
    echo = f"127.0.0.1:{targets.udp}"
    head = password_hash(SECRET) + b"\r\n\x03" + encode_address(echo) + b"\r\n"
    writer = TrojanPackets()
    sent = [i.to_bytes(2, "big") + os.urandom(600) for i in range(50)]
    with _tls(node.ports["trojan"]) as s:
        s.settimeout(5)
        s.sendall(head + b"".join(writer.wrap(0, echo, p) for p in sent))
        framing, got = TrojanPackets(), []
        while len(got) < len(sent):
            try:
                got += _read_trojan(s, framing)
            except TimeoutError:
                break
    assert len(got) == len(sent)
    assert all(address == echo for _s, address, _p in got)
    assert sorted(p for _s, _a, p in got) == sorted(sent)


def test_trojan_udp_by_hand_and_a_malformed_frame_ends_that_stream_only(node, targets):
    echo = f"127.0.0.1:{targets.udp}"
    head = password_hash(SECRET) + b"\r\n\x03" + encode_address(echo) + b"\r\n"
    with _tls(node.ports["trojan"]) as bad, _tls(node.ports["trojan"]) as good:
        s_bad, s_good = bad, good
        for s in (s_bad, s_good):
            s.settimeout(5)
            s.sendall(head + TrojanPackets().wrap(0, echo, b"hello"))
            assert _read_trojan(s, TrojanPackets()) == [(0, echo, b"hello")]
        s_bad.sendall(b"\x09" + bytes(30))                      # no such address type
        assert s_bad.recv(100) == b""
        framing = TrojanPackets()
        s_good.sendall(TrojanPackets().wrap(0, echo, b"still here"))
        assert _read_trojan(s_good, framing) == [(0, echo, b"still here")]


def test_vless_mux_tcp_sub_connection_is_refused_and_udp_goes_on(node, targets):
    """A Mux.Cool TCP session gets an end frame with the error option; a UDP session on the
    same stream is served."""
    echo = f"127.0.0.1:{targets.udp}"
    with _tls(node.ports["vless-tls"]) as s:
        s.settimeout(5)
        user = uuid.UUID(USER_UUID).bytes
        head = encode_request(user, "127.0.0.1:1", command=CMD_MUX)
        head = head[:head.index(bytes([CMD_MUX]), 17) + 1]          # mux: no address
        s.sendall(head + mux_new(7, echo, b"", network=1) + mux_new(8, echo, b"over mux"))
        got = b""
        while len(got) < 2 + 6:
            got += s.recv(4096)
        assert got.startswith(RESPONSE)
        got = got[2:]
        assert got[:6] == MuxFrames.end(7, error=True)
        got = got[6:]
        while not got.endswith(b"over mux"):
            got += s.recv(4096)
        assert got == MuxFrames().wrap(8, echo, b"over mux")


def test_a_kicked_users_udp_stream_is_cut(node, targets):
    secret = "kicked-stream-udp-0123456789"
    assert node.post("/api/v1/users", {"id": "kim", "auth_secret": secret}).status in (200, 201)
    echo = f"127.0.0.1:{targets.udp}"
    head = password_hash(secret) + b"\r\n\x03" + encode_address(echo) + b"\r\n"
    with _tls(node.ports["trojan"]) as s:
        s.settimeout(5)
        s.sendall(head + TrojanPackets().wrap(0, echo, b"x" * 100))
        assert _read_trojan(s, TrojanPackets()) == [(0, echo, b"x" * 100)]
        r = node.post("/api/v1/users/kim/kick")
        assert r.status in (200, 204), r.body
        started = time.monotonic()
        try:
            while s.recv(4096):
                pass
        except (ConnectionResetError, ssl.SSLError):
            pass
        assert time.monotonic() - started < 2.0
    assert wait_traffic(node, "kim", (100, 100)) == (100, 100)


def test_udp_over_trojan_is_held_to_the_users_cap(node, targets):
    """10 000 B, 1000 B datagrams echoed: five round trips fit, then the stream is closed and
    the counters stop at the cap."""
    secret = "capped-stream-udp-0123456789"
    r = node.post("/api/v1/users", {"id": "cap", "auth_secret": secret, "traffic_limit": 10_000})
    assert r.status in (200, 201), r.body
    echo = f"127.0.0.1:{targets.udp}"
    head = password_hash(secret) + b"\r\n\x03" + encode_address(echo) + b"\r\n"
    echoes = 0
    with _tls(node.ports["trojan"]) as s:
        s.settimeout(3)
        s.sendall(head)
        framing = TrojanPackets()
        for _ in range(8):
            try:
                s.sendall(TrojanPackets().wrap(0, echo, os.urandom(1000)))
                got = []
                while not got:
                    data = s.recv(65536)
                    if not data:
                        break
                    got = framing.feed(data)
                if not got:
                    break
                echoes += 1
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, socket.timeout):
                break
    assert echoes == 5
    assert wait_traffic(node, "cap", (5000, 5000)) == (5000, 5000)


@pytest.mark.parametrize("tag", ["vless-tls", "trojan"])
def test_sing_box_multiplex_is_refused_with_a_log_line(node, targets, tmp_path, tag):
    from tests.hy2.singbox import socks5_connect
    from tests.inbounds.peers import sing_box_client
    outbound = outbound_of(node, tag, multiplex={"enabled": True, "protocol": "h2mux"})
    echoed = b""
    with sing_box_client(tmp_path, outbound) as local:
        try:                          # sing-box may answer the SOCKS5 request before it knows
            with socks5_connect(local, "127.0.0.1", targets.echo) as s:
                s.settimeout(5)
                s.sendall(b"ping")
                echoed = s.recv(4)
        except (OSError, AssertionError):
            pass
    assert echoed != b"ping"
    deadline = time.monotonic() + 5
    while "sing-box multiplex is not served" not in node.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "sing-box multiplex is not served" in node.log()
