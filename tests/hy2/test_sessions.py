"""The sans-I/O session cores against each other, with two in-memory QUIC connections: what the
spec says about auth, stream dispatch, malformed requests and UDP, without a socket."""
from __future__ import annotations

import ssl

from aioquic.quic import events as qe

from fastpath.hy2.wire import auth_protocol as ap
from fastpath.hy2.client.client_session import ClientSession
from fastpath.hy2.config import QuicSettings
from fastpath.hy2.wire.events import (AuthRequested, AuthResult, HttpRequest, StreamClosed, TcpData,
                                 TcpRequested, TcpResponse, UdpReceived)
from fastpath.hy2.wire.frames import encode_tcp_request, encode_udp_message
from fastpath.hy2.quic.quic_connection import Hy2QuicConnection, quic_configuration
from fastpath.hy2.server.server_session import ServerSession

CLIENT_ADDR = ("127.0.0.1", 40000)
SERVER_ADDR = ("127.0.0.1", 8443)


class Pair:
    """A client and a server QUIC connection wired back to back; the clock is ours."""

    def __init__(self, tls_files, *, client_cid_length=0):
        cfg = quic_configuration(is_client=False, quic_settings=QuicSettings())
        cfg.load_cert_chain(*tls_files)
        ccfg = quic_configuration(is_client=True, quic_settings=QuicSettings(),
                                  server_name="localhost", connection_id_length=client_cid_length)
        ccfg.verify_mode = ssl.CERT_NONE
        self.now = 1.0
        self.client = Hy2QuicConnection(configuration=ccfg)
        self.client.connect(SERVER_ADDR, now=self.now)
        self.server = None
        self.server_cfg = cfg
        self.server_events: list = []
        self.client_events: list = []

    def pump(self, rounds: int = 20) -> None:
        for _ in range(rounds):
            moved = False
            for data, _ in self.client.datagrams_to_send(self.now):
                if self.server is None:
                    self.server = Hy2QuicConnection(configuration=self.server_cfg,
                                                    original_destination_connection_id=self.client._peer_cid.cid)
                self.server.receive_datagram(data, CLIENT_ADDR, self.now)
                moved = True
            if self.server is not None:
                for data, _ in self.server.datagrams_to_send(self.now):
                    self.client.receive_datagram(data, SERVER_ADDR, self.now)
                    moved = True
                self.server_events += _drain(self.server)
            self.client_events += _drain(self.client)
            self.now += 0.001
            if not moved:
                break


def _drain(conn) -> list:
    out = []
    while (e := conn.next_event()) is not None:
        out.append(e)
    return out


class Harness:
    """Pair + the two session cores, returning the cores' events."""

    def __init__(self, tls_files, *, auth="secret", udp=True, client_cid_length=0):
        self.pair = Pair(tls_files, client_cid_length=client_cid_length)
        self.pair.pump()
        self.server = ServerSession(self.pair.server, udp_enabled=udp)
        self.client = ClientSession(self.pair.client, auth, rx_rate=1_000_000)
        self.server_out: list = []
        self.client_out: list = []
        self.step()

    def step(self) -> None:
        for _ in range(10):
            self.pair.pump()
            sev, cev = self.pair.server_events, self.pair.client_events
            self.pair.server_events, self.pair.client_events = [], []
            if not sev and not cev:
                break
            for e in sev:
                self.server_out += self.server.handle(e, self.pair.now)
            for e in cev:
                self.client_out += self.client.handle(e, self.pair.now)

    def take(self, kind, side="server") -> list:
        box = self.server_out if side == "server" else self.client_out
        hits = [e for e in box if isinstance(e, kind)]
        box[:] = [e for e in box if not isinstance(e, kind)]
        return hits

    def authenticate(self) -> None:
        self.client.start_auth()
        self.step()
        [req] = self.take(AuthRequested)
        self.server.accept_auth(req.stream_id, "alice", 0)
        self.step()


def test_zero_length_client_connection_id_handshakes(tls_files):
    pair = Pair(tls_files, client_cid_length=0)
    pair.pump()
    assert pair.client.host_cid == b""
    assert any(isinstance(e, qe.HandshakeCompleted) for e in pair.client_events)
    # No NEW_CONNECTION_ID may be announced for a zero-length ID (the peer would close).
    pair.pump()
    assert not any(isinstance(e, qe.ConnectionTerminated) for e in pair.server_events + pair.client_events)


def test_auth_request_reaches_the_core_and_233_comes_back(tls_files):
    h = Harness(tls_files)
    h.client.start_auth()
    h.step()
    [req] = h.take(AuthRequested)
    assert req.auth == "secret" and req.client_rx == 1_000_000
    h.server.accept_auth(req.stream_id, "alice", 125_000)
    h.step()
    [res] = h.take(AuthResult, "client")
    assert res.ok and res.udp and res.server_rx == 125_000 and res.status == 233
    assert h.server.authenticated and h.server.auth_id == "alice"


def test_second_auth_on_an_authenticated_connection_is_answered_without_the_authenticator(tls_files):
    h = Harness(tls_files)
    h.authenticate()
    h.take(AuthResult, "client")
    h.client.start_auth()
    h.step()
    assert h.take(AuthRequested) == []
    [res] = h.take(AuthResult, "client")
    assert res.ok


def test_failed_auth_goes_to_the_masquerade(tls_files):
    h = Harness(tls_files)
    h.client.start_auth()
    h.step()
    [req] = h.take(AuthRequested)
    [http] = h.server.reject_auth(req.stream_id)
    assert isinstance(http, HttpRequest)
    h.server.send_http_response(http.stream_id, 404, [("content-type", "text/plain")], b"nope")
    h.step()
    [res] = h.take(AuthResult, "client")
    assert not res.ok and res.status == 404


def test_ordinary_request_is_an_http_request_event(tls_files):
    h = Harness(tls_files)
    h3 = h.client.h3
    sid = h.pair.client.get_next_available_stream_id()
    h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                          (b":authority", b"example.com"), (b":path", b"/")], end_stream=True)
    h.step()
    [req] = h.take(HttpRequest)
    assert dict(req.headers)[b":path"] == b"/"


def test_tcp_request_before_auth_is_not_a_proxy_request(tls_files):
    h = Harness(tls_files)
    h.client.open_tcp("127.0.0.1:80")
    h.step()
    assert h.take(TcpRequested) == []
    assert h.take(TcpResponse, "client") == []


def test_tcp_request_after_auth_with_early_data(tls_files):
    h = Harness(tls_files)
    h.authenticate()
    sid = h.client.open_tcp("example.com:443", early=b"hello")
    h.step()
    [req] = h.take(TcpRequested)
    assert (req.stream_id, req.address) == (sid, "example.com:443")
    more = h.take(TcpData)
    assert req.early + b"".join(d.data for d in more) == b"hello"
    h.server.tcp_response(sid, True, "Connected")
    h.pair.server.send_stream_data(sid, b"answer")
    h.step()
    [resp] = h.take(TcpResponse, "client")
    data = resp.early + b"".join(d.data for d in h.take(TcpData, "client"))
    assert resp.ok and resp.message == "Connected" and data == b"answer"


def test_malformed_request_closes_that_stream_only(tls_files):
    h = Harness(tls_files)
    h.authenticate()
    sid = h.pair.client.get_next_available_stream_id()
    # 0x401, then an address length of 0: malformed.
    h.pair.client.send_stream_data(sid, b"\x44\x01\x00\x00")
    h.step()
    [closed] = h.take(StreamClosed)
    assert closed.stream_id == sid
    good = h.client.open_tcp("example.com:80")
    h.step()
    [req] = h.take(TcpRequested)
    assert req.stream_id == good


def test_request_split_across_packets(tls_files):
    h = Harness(tls_files)
    h.authenticate()
    sid = h.pair.client.get_next_available_stream_id()
    raw = encode_tcp_request("split.example:1234", padding_len=100)
    for i in range(len(raw)):
        h.pair.client.send_stream_data(sid, raw[i:i + 1])
        h.step()
    [req] = h.take(TcpRequested)
    assert req.address == "split.example:1234"


def test_udp_roundtrip_with_fragmentation(tls_files):
    h = Harness(tls_files)
    h.authenticate()
    payload = bytes(range(256)) * 12          # 3072 bytes: several fragments
    assert h.client.send_udp(7, "127.0.0.1:5353", payload) >= 3
    h.step()
    [got] = h.take(UdpReceived)
    assert got.session.session_id == 7 and got.payload == payload and got.created
    assert h.server.send_udp(7, "127.0.0.1:5353", payload) >= 3
    h.step()
    [back] = h.take(UdpReceived, "client")
    assert back.payload == payload and back.address == "127.0.0.1:5353"


def test_datagrams_are_dropped_before_auth_and_when_udp_is_off(tls_files):
    h = Harness(tls_files, udp=False)
    h.pair.client.queue_datagram(encode_udp_message(1, 0, 0, 1, "1.1.1.1:53", b"x"))
    h.step()
    h.authenticate()
    h.pair.client.queue_datagram(encode_udp_message(1, 0, 0, 1, "1.1.1.1:53", b"x"))
    h.step()
    assert h.take(UdpReceived) == []


def test_oversized_datagram_is_refused_not_queued(tls_files):
    h = Harness(tls_files)
    room = h.pair.client.datagram_room()
    assert room == 1200 - 22 - len(h.pair.client._peer_cid.cid)
    assert not h.pair.client.queue_datagram(b"x" * (room + 1))
    assert h.pair.client.queue_datagram(b"x" * room)


def test_auth_headers_follow_the_spec():
    headers = dict(ap.auth_request_headers("pw", 123))
    assert headers[b":method"] == b"POST" and headers[b":authority"] == b"hysteria"
    assert headers[b":path"] == b"/auth" and headers[b"hysteria-cc-rx"] == b"123"
    pad = headers[b"hysteria-padding"]
    assert 256 <= len(pad) <= 2047 and pad.isalnum()
    resp = dict(ap.auth_response_headers(True, None))
    assert resp[b":status"] == b"233" and resp[b"hysteria-udp"] == b"true"
    assert resp[b"hysteria-cc-rx"] == b"auto"
    assert not ap.is_auth_request({b":method": b"POST", b":authority": b"hysteria", b":path": b"/auth/"})
    assert not ap.is_auth_request({b":method": b"GET", b":authority": b"hysteria", b":path": b"/auth"})
