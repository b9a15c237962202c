"""The Shadowsocks 2022 inbound: sing-box as the client with a user key alone and with identity
headers (several users on one port), 20 MiB both ways with SHA-256 and the user's bytes exact,
a replayed recording and wrong keys met with silence (and no log flood), old timestamps
refused, and the codecs and replay windows under hypothesis."""
from __future__ import annotations

import base64
import os
import socket
import struct
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

from fastpath.store import User

from fastpath.inbounds.shadowsocks_2022 import (METHODS_2022, TAG, ChunkError, Opener2022,
                                                PacketWindow, SaltWindow, Sealer2022,
                                                identity_header, session_aead, user_key,
                                                user_key_text)
from fastpath.proxy.socks5 import encode_address
from tests.hy2.singbox import echo_sha256, socks5_connect
from tests.inbounds.peers import (counted_both_ways, download_and_upload, sing_box_client,
                                  traffic, wait_traffic)
from tests.support.node import NodeProcess, free_tcp_port

pytestmark = pytest.mark.integration

SERVER_PSK = base64.b64encode(bytes(range(16))).decode()
SERVER_PSK_256 = base64.b64encode(bytes(range(100, 132))).decode()
# Dave's secret is a key (as a panel hands out); Erin's a plain secret, whose key is derived.
DAVE, DAVE_SECRET = "dave", base64.b64encode(os.urandom(32)).decode()
ERIN, ERIN_SECRET = "erin", "erin-plain-secret-0123456789"


# -- the codecs ---------------------------------------------------------------------------------

def test_user_keys_are_the_secret_when_it_is_a_key_else_derived():
    raw = os.urandom(16)
    assert user_key(base64.b64encode(raw).decode(), 16) == raw
    derived = user_key("some secret", 16)
    assert len(derived) == 16 and derived == user_key("some secret", 16)
    assert derived != user_key("other secret", 16)
    assert base64.b64decode(user_key_text("some secret", 32)) == user_key("some secret", 32)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=200_000), st.lists(st.integers(min_value=1, max_value=70_000), max_size=20))
def test_the_server_stream_opens_whatever_the_read_sizes(data, cuts):
    psk, request_salt, salt = os.urandom(32), os.urandom(32), os.urandom(32)
    wire = Sealer2022(psk, request_salt, salt).seal(data) if data else b""
    if not data:
        return
    assert wire[:32] == salt
    opener = Opener2022(session_aead(psk, salt))
    fixed = opener.open_exact(wire[32:32 + 1 + 8 + 32 + 2 + TAG])
    assert fixed[0] == 1 and fixed[9:41] == request_salt
    (first,) = struct.unpack(">H", fixed[41:43])
    body = wire[32 + 43 + TAG:]
    out = [opener.open_exact(body[:first + TAG])]
    body, i = body[first + TAG:], 0
    for cut in cuts + [len(body)]:
        out.append(opener.feed(body[i:i + cut]))
        i += cut
    assert b"".join(out) == data


def test_a_salt_window_remembers_for_the_window_and_stays_bounded():
    w = SaltWindow(limit=3, window=60)
    assert not w.seen(b"a", now=0) and w.seen(b"a", now=1)
    assert not w.seen(b"b", now=70)          # a new generation; "a" still remembered
    assert w.seen(b"a", now=71)
    assert not w.seen(b"a", now=200)         # both generations gone: long past the timestamp window
    for s in (b"c", b"d"):
        assert not w.seen(s, now=201)
    assert w.seen(b"e", now=202)             # full: refused, never forgetting a live salt
    assert w.full_refusals == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3000), max_size=200))
def test_the_packet_window_accepts_each_id_once(ids):
    w, accepted = PacketWindow(size=64), set()
    top = -1
    for i in ids:
        ok = w.accept(i)
        if i in accepted:
            assert not ok
        elif i > top - 64:
            assert ok
        if ok:
            accepted.add(i)
        top = max(top, i)


# -- a hand-made client (the tests' own: for old timestamps, replays and garbage) ---------------

def request(user_psk: bytes, address: str, payload: bytes, *, server_psk: bytes | None = None,
            stamp: float | None = None, salt: bytes | None = None) -> tuple[bytes, bytes]:
    """(salt, the first bytes of a request) as SIP022 lays them out."""
    size = len(user_psk)
    salt = salt or os.urandom(size)
    aead = session_aead(user_psk, salt)
    variable = encode_address(address) + struct.pack(">H", 0) + payload
    fixed = struct.pack(">BQH", 0, int(time.time() if stamp is None else stamp), len(variable))
    eih = identity_header(server_psk, salt, user_psk) if server_psk else b""
    return salt, (salt + eih + aead.encrypt(bytes(12), fixed, None)
                  + aead.encrypt((1).to_bytes(12, "little"), variable, None))


def silent(sock: socket.socket, seconds: float = 1.0) -> bool:
    sock.settimeout(seconds)
    try:
        sock.recv(1)
        return False                   # an answer, or a close: both tell a prober something
    except socket.timeout:
        return True


# -- a node with a single-key and a multi-user inbound --------------------------------------------

@pytest.fixture(scope="module")
def node(tmp_path_factory):
    ports = {"plain": free_tcp_port(), "eih": free_tcp_port(), "eih256": free_tcp_port()}
    config = {"inbounds": [
        {"type": "shadowsocks", "listen": f"127.0.0.1:{ports['plain']}", "tag": "ss22",
         "method": "2022-blake3-aes-128-gcm"},
        {"type": "shadowsocks", "listen": f"127.0.0.1:{ports['eih']}", "tag": "ss22-eih",
         "method": "2022-blake3-aes-128-gcm", "psk": SERVER_PSK},
        {"type": "shadowsocks", "listen": f"127.0.0.1:{ports['eih256']}", "tag": "ss22-eih256",
         "method": "2022-blake3-aes-256-gcm", "psk": SERVER_PSK_256}]}
    with NodeProcess(tmp_path_factory.mktemp("ss22"), config) as n:
        for uid, secret in ((DAVE, DAVE_SECRET), (ERIN, ERIN_SECRET)):
            assert n.post("/api/v1/users", {"id": uid, "auth_secret": secret}).status in (200, 201)
        n.ports = ports
        yield n


def outbound(port: int, method: str, password: str) -> dict:
    return {"type": "shadowsocks", "server": "127.0.0.1", "server_port": port, "method": method,
            "password": password}


def test_sing_box_with_the_user_key_alone_moves_20_mib_exactly(node, targets, tmp_path):
    password = user_key_text(ERIN_SECRET, 16)
    size = 20 << 20
    with sing_box_client(tmp_path, outbound(node.ports["plain"], "2022-blake3-aes-128-gcm",
                                            password)) as local:
        before = traffic(node, ERIN)
        download_and_upload(local, targets, size, 41)
        with socks5_connect(local, "127.0.0.1", targets.echo) as s:
            sent, got = echo_sha256(s, 1 << 20)
        assert sent == got
    tx, rx = counted_both_ways(size)
    expected = (before[0] + tx + (1 << 20), before[1] + rx + (1 << 20))
    assert wait_traffic(node, ERIN, expected) == expected


@pytest.mark.parametrize("method,port_name,server_psk,user,secret,size", [
    ("2022-blake3-aes-128-gcm", "eih", SERVER_PSK, ERIN, ERIN_SECRET, 20 << 20),
    ("2022-blake3-aes-256-gcm", "eih256", SERVER_PSK_256, DAVE, DAVE_SECRET, 4 << 20),
])
def test_sing_box_with_identity_headers_names_each_user(node, targets, tmp_path, method,
                                                         port_name, server_psk, user, secret, size):
    key = user_key_text(secret, METHODS_2022[method])
    with sing_box_client(tmp_path, outbound(node.ports[port_name], method,
                                            f"{server_psk}:{key}")) as local:
        before = {u: traffic(node, u) for u in (DAVE, ERIN)}
        download_and_upload(local, targets, size, 43)
    tx, rx = counted_both_ways(size)
    expected = (before[user][0] + tx, before[user][1] + rx)
    assert wait_traffic(node, user, expected) == expected
    other = ERIN if user == DAVE else DAVE
    assert traffic(node, other) == before[other]       # the other user on the port: untouched


def test_both_users_at_once_on_one_port(node, targets, tmp_path):
    port = node.ports["eih"]
    boxes = [(u, sing_box_client(tmp_path / u, outbound(port, "2022-blake3-aes-128-gcm",
                                                        f"{SERVER_PSK}:{user_key_text(s, 16)}")))
             for u, s in ((DAVE, DAVE_SECRET), (ERIN, ERIN_SECRET))]
    for u, _ in boxes:
        (tmp_path / u).mkdir()
    before = {u: traffic(node, u) for u, _ in boxes}
    errors = []
    with boxes[0][1] as local_a, boxes[1][1] as local_b:
        def run(local, seed):
            try:
                download_and_upload(local, targets, 2 << 20, seed)
            except Exception as exc:            # reported below, with the other's result
                errors.append(exc)
        threads = [threading.Thread(target=run, args=(p, 50 + i)) for i, p in enumerate((local_a, local_b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors, errors
    tx, rx = counted_both_ways(2 << 20)
    for u, _ in boxes:
        expected = (before[u][0] + tx, before[u][1] + rx)
        assert wait_traffic(node, u, expected) == expected


class Recorder:
    """A TCP relay in front of the node that keeps what the client sent first."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.first = bytearray()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(("127.0.0.1", self.upstream))

        def pipe(a, b, record):
            try:
                while data := a.recv(65536):
                    if record:
                        self.first += data
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        threading.Thread(target=pipe, args=(server, client, False), daemon=True).start()
        pipe(client, server, True)

    def close(self) -> None:
        self.listener.close()


def test_a_replayed_recording_of_sing_box_meets_silence(node, targets, tmp_path):
    recorder = Recorder(node.ports["eih"])
    key = user_key_text(ERIN_SECRET, 16)
    try:
        box = outbound(recorder.port, "2022-blake3-aes-128-gcm", f"{SERVER_PSK}:{key}")
        with sing_box_client(tmp_path, box) as local:
            with socks5_connect(local, "127.0.0.1", targets.echo) as s:
                s.sendall(b"recorded request")
                s.settimeout(10)
                assert s.recv(100) == b"recorded request"       # it worked the first time
    finally:
        recorder.close()
    recording = bytes(recorder.first)
    assert len(recording) > 16 + 16 + 27
    with socket.create_connection(("127.0.0.1", node.ports["eih"]), 5) as s:
        s.sendall(recording)
        assert silent(s)


def test_a_replay_of_our_own_request_and_an_old_timestamp_meet_silence(node, targets):
    psk = user_key(DAVE_SECRET, 16)
    echo = f"127.0.0.1:{targets.echo}"
    salt, first = request(psk, echo, b"ping", server_psk=base64.b64decode(SERVER_PSK))
    with socket.create_connection(("127.0.0.1", node.ports["eih"]), 5) as s:
        s.sendall(first)
        s.settimeout(5)
        answer = s.recv(4096)
        # salt, sealed fixed header (type, timestamp, request salt, length), sealed payload
        opener = Opener2022(session_aead(psk, answer[:16]))
        fixed = opener.open_exact(answer[16:16 + 1 + 8 + 16 + 2 + TAG])
        assert fixed[0] == 1 and fixed[9:25] == salt
        assert opener.open_exact(answer[16 + 27 + TAG:]) == b"ping"
    with socket.create_connection(("127.0.0.1", node.ports["eih"]), 5) as s:
        s.sendall(first)
        assert silent(s)
    _, stale = request(psk, echo, b"ping", server_psk=base64.b64decode(SERVER_PSK),
                       stamp=time.time() - 120)
    with socket.create_connection(("127.0.0.1", node.ports["eih"]), 5) as s:
        s.sendall(stale)
        assert silent(s)


def test_wrong_keys_meet_silence_without_a_log_flood(node, targets, tmp_path):
    before = len(node.log_path.read_bytes())
    echo = f"127.0.0.1:{targets.echo}"
    wrong = os.urandom(16)
    for i in range(40):
        with socket.create_connection(("127.0.0.1", node.ports["eih" if i % 2 else "plain"]), 5) as s:
            if i % 4 < 2:
                s.sendall(request(wrong, echo, b"x", server_psk=base64.b64decode(SERVER_PSK))[1])
            else:
                s.sendall(os.urandom(64 + i))
            if i < 4:
                assert silent(s, 0.5)
    # sing-box with a wrong user key: its stream gets nothing back
    box = outbound(node.ports["eih"], "2022-blake3-aes-128-gcm",
                   f"{SERVER_PSK}:{base64.b64encode(wrong).decode()}")
    with sing_box_client(tmp_path, box) as local:
        with socks5_connect(local, "127.0.0.1", targets.echo) as s:
            s.sendall(b"hello")
            assert silent(s, 1.5)
    grown = node.log_path.read_bytes()[before:].decode(errors="replace")
    assert grown.count("\n") < 5, grown


def test_a_config_psk_of_the_wrong_size_is_refused(tmp_path):
    from fastpath.config.fields import ConfigError
    from fastpath.inbounds.config import parse_inbounds_config
    with pytest.raises(ConfigError, match="16 bytes"):
        parse_inbounds_config([{"type": "shadowsocks", "listen": "127.0.0.1:1",
                                "method": "2022-blake3-aes-128-gcm", "psk": SERVER_PSK_256}])
    with pytest.raises(ConfigError, match="psk"):
        parse_inbounds_config([{"type": "shadowsocks", "listen": "127.0.0.1:1",
                                "method": "aes-128-gcm", "psk": SERVER_PSK}])


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_after_a_valid_salt_never_crashes_the_header_reader(blob):
    """The handshake's reader on arbitrary bytes: it asks for more, or refuses (ChunkError)."""
    from fastpath.inbounds.shadowsocks_2022_tcp import Handshake2022, Shadowsocks2022Inbound

    class Users:
        by_id = {"erin": User(id="erin", auth_secret=ERIN_SECRET)}

    class Core:
        users = Users()
    inbound = Shadowsocks2022Inbound(Core(), "2022-blake3-aes-128-gcm", SERVER_PSK)
    h = Handshake2022(inbound)
    h.buf += blob
    try:
        h._read_head()
    except ChunkError:
        pass
    assert h.state == "head"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_the_udp_servers_drop_garbage_silently(blob, with_psk):
    """Random datagrams at both Shadowsocks UDP servers: nothing sent, no session, no crash."""
    from fastpath.inbounds.shadowsocks import ShadowsocksInbound
    from fastpath.inbounds.shadowsocks_2022_tcp import Shadowsocks2022Inbound
    from fastpath.inbounds.shadowsocks_udp import Shadowsocks2022Udp, ShadowsocksUdp
    from fastpath.inbounds.socks5_udp import parse_datagram

    class Users:
        by_id = {"erin": User(id="erin", auth_secret=ERIN_SECRET),
                 "dave": User(id="dave", auth_secret=DAVE_SECRET)}

    class Core:
        users = Users()

    class Transport:
        sent = []

        def sendto(self, data, addr):
            self.sent.append(data)
    for server in (Shadowsocks2022Udp(Shadowsocks2022Inbound(Core(), "2022-blake3-aes-128-gcm",
                                                              SERVER_PSK if with_psk else None)),
                   ShadowsocksUdp(ShadowsocksInbound(Core(), "aes-128-gcm"))):
        server.transport = Transport()
        server.datagram_received(blob, ("127.0.0.1", 5000))
        assert server.transport.sent == [] and server.sessions == {}
    parsed = parse_datagram(blob)
    assert parsed is None or isinstance(parsed[0], str)
