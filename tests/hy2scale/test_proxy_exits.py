"""Proxy listeners made through ``/api/proxies`` send a user's traffic through the user's exit,
as Hysteria 2 does: two real nodes, B the exit (its user ``peeruser`` is what A's client ``b``
logs in as), A the entry with a SOCKS5 listener.  A user of A whose ``exit_via`` is ``b``
reaches targets through B (TCP with curl and a hashed download, UDP with sing-box), every
byte counted on the user at A and on ``peeruser`` at B; with the exit disabled the stream fails
and nothing is dialed from A."""
from __future__ import annotations

import os
import socket
import struct
import time

import pytest

from tests.hy2.singbox import SingBox, recv_exact, udp_forward
from tests.hy2.test_stock_client import payload_server
from tests.hy2scale.conftest import SCALE, ScaleClient
from tests.hy2scale.test_exits import Recorder, settle, used
from tests.hy2scale.test_proxies import curl, socks5_auth
from tests.support.node import NodeProcess, free_tcp_port, free_udp_port

pytestmark = pytest.mark.integration

BODY = b"out through the exit node\n" * 4000


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    with NodeProcess(tmp_path_factory.mktemp("pexit-b"), {"scale": dict(SCALE)}) as b, \
            NodeProcess(tmp_path_factory.mktemp("pexit-a"), {"scale": dict(SCALE)}) as a:
        a.scale, b.scale = ScaleClient(a), ScaleClient(b)
        r = b.scale("POST", "/users", {"username": "peeruser", "password": "pw-peer"})
        assert r.status == 201, r.text
        b.peeruser = r.json()["id"]
        r = a.scale("POST", "/clients", {"name": "b", "addr": b.config["listen"],
                                         "password": "peeruser:pw-peer", "insecure": True})
        assert r.status == 201, r.text
        a.socks = free_tcp_port()
        r = a.scale("POST", "/proxies", {"id": "s5", "protocol": "socks5",
                                         "listen": f"127.0.0.1:{a.socks}", "enabled": True})
        assert r.status == 200, r.text
        r = a.scale("POST", "/users", {"username": "exa", "password": "pw-exa", "exit_via": "b"})
        assert r.status == 201, r.text
        a.exa = r.json()["id"]
        yield a, b


def test_socks5_traffic_of_an_exit_user_crosses_b_counted_on_both(pair, targets):
    a, b = pair
    server, origin = payload_server(BODY)
    try:
        c = curl("--socks5-hostname", f"exa:pw-exa@127.0.0.1:{a.socks}", f"http://127.0.0.1:{origin}/")
        assert c.returncode == 0, c.stderr
        assert c.stdout == BODY
    finally:
        server.shutdown()
    b0, a0 = settle(lambda: used(b.scale, b.peeruser)), settle(lambda: used(a.scale, a.exa))
    n = 3 << 20
    with socks5_auth(a.socks, "exa", "pw-exa", targets.source) as s:
        s.sendall(struct.pack(">QQ", n, 9))
        got = 0
        while got < n:
            data = s.recv(1 << 20)
            assert data
            got += len(data)
    moved_a = settle(lambda: used(a.scale, a.exa)) - a0
    moved_b = settle(lambda: used(b.scale, b.peeruser)) - b0
    assert moved_a == 16 + n
    assert moved_b == moved_a                   # every byte crossed B


def test_udp_of_an_exit_user_crosses_b(pair, targets, tmp_path):
    a, b = pair
    local = free_udp_port()
    config = {"log": {"level": "warn"}, "inbounds": [udp_forward(local, targets.udp, "in")],
              "outbounds": [{"type": "socks", "tag": "node", "server": "127.0.0.1",
                             "server_port": a.socks, "version": "5", "username": "exa",
                             "password": "pw-exa"}], "route": {"final": "node"}}
    b0, a0 = settle(lambda: used(b.scale, b.peeruser)), settle(lambda: used(a.scale, a.exa))
    sizes = [10, 500, 1200, 64, 1000]
    with SingBox(tmp_path, config, name="sing-box-udp-exit") as box:
        time.sleep(0.5)
        box.alive()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            for n in sizes:
                payload = os.urandom(n)
                for attempt in range(3):        # the exit's UDP session opens with the first
                    s.sendto(payload, ("127.0.0.1", local))
                    try:
                        got, _ = s.recvfrom(65536)
                        break
                    except socket.timeout:
                        continue
                assert got == payload
    moved_a = settle(lambda: used(a.scale, a.exa)) - a0
    moved_b = settle(lambda: used(b.scale, b.peeruser)) - b0
    assert moved_a >= 2 * sum(sizes)
    assert moved_b >= 2 * sum(sizes) and moved_b <= moved_a


def test_a_disabled_exit_fails_the_stream_and_nothing_is_dialed_from_a(pair, targets):
    a, _b = pair
    recorder = Recorder(targets)
    assert a.scale("PUT", "/clients/b/disable", {"disabled": True}).status == 200
    try:
        time.sleep(0.5)
        s = socket.create_connection(("127.0.0.1", a.socks), 10)
        s.sendall(b"\x05\x01\x02")
        assert recv_exact(s, 2) == b"\x05\x02"
        s.sendall(b"\x01\x03exa\x06pw-exa")
        assert recv_exact(s, 2) == b"\x01\x00"
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", recorder.port))
        rep = recv_exact(s, 10)
        assert rep[1] != 0                      # refused
        s.close()
        assert recorder.accepted == 0
    finally:
        assert a.scale("PUT", "/clients/b/disable", {"disabled": False}).status == 200
