"""Hysteria 2 on one server-side QUIC connection, without I/O.

Fed aioquic's events (``handle``), it returns ``fastpath.hy2.wire.events``: auth requests, other HTTP
requests (for the masquerade), proxy stream requests and their data, complete UDP packets.  The
I/O layer does the slow parts (authenticator, dialing) and answers through ``accept_auth``,
``send_http_response``, ``tcp_response``, ``send_udp``.  Everything here can be driven by a test
with two in-memory QuicConnections.
"""
from __future__ import annotations

import logging

from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic import events as qe

from fastpath.hy2.quic import aioquic_seam
from fastpath.hy2.wire import auth_protocol as ap
from fastpath.hy2.wire.events import (AuthRequested, HttpRequest, SendStopped, StreamClosed, TcpData, TcpRequested,
                                 Terminated)
from fastpath.hy2.wire.frames import TcpRequestParser, encode_tcp_response, fragment_udp_message
from fastpath.hy2.wire.h3_compat import ServerH3Connection
from fastpath.hy2.quic.quic_connection import abort_stream, finish_stream
from fastpath.hy2.server.stream_router import ROUTE_DROP, ROUTE_H3, ROUTE_PROXY, StreamRouter
from fastpath.hy2.wire.udp_sessions import UdpSessionTable

log = logging.getLogger("fastpath.hy2.server")

# Application error codes on the wire.
CLOSE_NORMAL = 0x100
CLOSE_KICKED = 0x107
STREAM_ABORTED = 0x10C            # our code for resetting a single proxy stream
MAX_REQUEST_BODY = 1 << 20        # masquerade requests buffered at most this much


class ServerSession:
    def __init__(self, quic, *, udp_enabled: bool = True, udp_idle_timeout: float = 60.0) -> None:
        self.quic = quic
        self.h3 = None                       # made on first use: it opens its control streams
        self.router = StreamRouter()
        self.authenticated = False
        self.auth_id: str | None = None
        self.udp_enabled = udp_enabled
        self.udp = UdpSessionTable(udp_idle_timeout)
        self._parsers: dict[int, TcpRequestParser] = {}     # proxy streams before their request
        self._http: dict[int, list] = {}                    # stream -> [headers, body, is_auth]
        self._auth_pending: set[int] = set()

    # -- input ------------------------------------------------------------------------------
    def handle(self, event, now: float = 0.0) -> list:
        t = type(event)
        if t is qe.StreamDataReceived:
            return self._stream_data(event)
        if t is qe.DatagramFrameReceived:
            return self._datagram(event.data, now)
        if t is qe.StreamReset or t is qe.StopSendingReceived:
            route = self.router.routes.get(event.stream_id)
            if route == ROUTE_PROXY:
                if t is qe.StopSendingReceived and event.stream_id not in self._parsers:
                    return [SendStopped(event.stream_id)]
                self.router.drop(event.stream_id)
                self._parsers.pop(event.stream_id, None)
                return [StreamClosed(event.stream_id, "reset by peer")]
            if route == ROUTE_DROP:
                return []
            return self._to_h3(event)
        if t is qe.ConnectionTerminated:
            return [Terminated(event.error_code, event.reason_phrase)]
        if t is qe.ProtocolNegotiated or t is qe.HandshakeCompleted:
            self._ensure_h3()
        return []

    def _ensure_h3(self):
        if self.h3 is None:
            self.h3 = ServerH3Connection(self.quic)
        return self.h3

    def _stream_data(self, event) -> list:
        sid = event.stream_id
        known = sid in self.router.routes
        route, data = self.router.route(sid, event.data, event.end_stream, self.authenticated)
        if route == ROUTE_PROXY:
            parser = self._parsers.get(sid)
            if parser is None:
                if known:
                    return [TcpData(sid, data, event.end_stream)]
                parser = self._parsers[sid] = TcpRequestParser()
            parser.feed(data)
            if parser.error is not None:
                return self._abort_proxy(sid, parser.error)
            if not parser.done:
                if event.end_stream:
                    return self._abort_proxy(sid, "stream ended inside the request")
                return []
            del self._parsers[sid]
            return [TcpRequested(sid, parser.address, parser.leftover, event.end_stream)]
        if route != ROUTE_H3:
            return []
        if data is not event.data:
            event = qe.StreamDataReceived(data=data, end_stream=event.end_stream, stream_id=sid)
        return self._to_h3(event)

    def _abort_proxy(self, sid: int, reason: str) -> list:
        """A malformed request closes its stream only, without an answer."""
        self.reset_stream(sid)
        return [StreamClosed(sid, reason)]

    def _to_h3(self, event) -> list:
        out = []
        for h3e in self._ensure_h3().handle_event(event):
            if isinstance(h3e, HeadersReceived):
                out.extend(self._headers(h3e))
            elif isinstance(h3e, DataReceived):
                out.extend(self._body(h3e))
        return out

    def _headers(self, e) -> list:
        h = ap.header_map(e.headers)
        if ap.is_auth_request(h):
            if self.authenticated:
                self._send_auth_ok(e.stream_id, self._answer_rx)
                return []
            if e.stream_id in self._auth_pending:
                return []
            self._auth_pending.add(e.stream_id)
            auth = h.get(ap.HEADER_AUTH, b"").decode("utf-8", "replace")
            return [AuthRequested(e.stream_id, auth, ap.parse_rate(h.get(ap.HEADER_CC_RX)))]
        self._http[e.stream_id] = [e.headers, bytearray()]
        if e.stream_ended:
            return self._finish_http(e.stream_id)
        return []

    def _body(self, e) -> list:
        pending = self._http.get(e.stream_id)
        if pending is None:
            return []
        if len(pending[1]) < MAX_REQUEST_BODY:
            pending[1] += e.data[:MAX_REQUEST_BODY - len(pending[1])]
        if e.stream_ended:
            return self._finish_http(e.stream_id)
        return []

    def _finish_http(self, sid: int) -> list:
        headers, body = self._http.pop(sid)
        return [HttpRequest(sid, headers, bytes(body))]

    def _datagram(self, data: bytes, now: float) -> list:
        if not (self.authenticated and self.udp_enabled):
            return []
        return self.udp.receive(data, now)

    # -- answers ----------------------------------------------------------------------------
    _answer_rx: int | None = 0

    def accept_auth(self, stream_id: int, user_id: str, answer_rx: int | None) -> None:
        """Authenticated as ``user_id``; ``answer_rx`` is our receive rate for the client (None
        answers ``auto``)."""
        self._auth_pending.discard(stream_id)
        self.authenticated = True
        self.auth_id = user_id
        self._answer_rx = answer_rx
        self._send_auth_ok(stream_id, answer_rx)

    def reject_auth(self, stream_id: int) -> list:
        """Failed auth: the request goes to the masquerade like any other."""
        self._auth_pending.discard(stream_id)
        self._http[stream_id] = [[(b":method", b"POST"), (b":scheme", b"https"),
                                  (b":authority", ap.AUTHORITY), (b":path", ap.PATH)], bytearray()]
        return self._finish_http(stream_id)

    def _send_auth_ok(self, stream_id: int, answer_rx: int | None) -> None:
        headers = ap.auth_response_headers(self.udp_enabled, answer_rx)
        self._ensure_h3().send_headers(stream_id, headers, end_stream=True)

    def send_http_response(self, stream_id: int, status: int, headers: list, body: bytes) -> None:
        h3 = self._ensure_h3()
        out = [(b":status", str(status).encode())]
        out += [(k.lower() if isinstance(k, bytes) else k.lower().encode(),
                 v if isinstance(v, bytes) else str(v).encode()) for k, v in headers]
        try:
            h3.send_headers(stream_id, out, end_stream=not body)
            if body:
                h3.send_data(stream_id, body, end_stream=True)
        except Exception:
            # The stream went away (reset by the prober): nothing to answer.
            pass

    def tcp_response(self, stream_id: int, ok: bool, message: str) -> None:
        self.quic.send_stream_data(stream_id, encode_tcp_response(ok, message[:2048]))

    def reset_stream(self, stream_id: int) -> None:
        """Close both directions of a proxy stream abruptly."""
        self.router.drop(stream_id)
        self._parsers.pop(stream_id, None)
        abort_stream(self.quic, stream_id, STREAM_ABORTED)

    def end_proxy_stream(self, stream_id: int) -> None:
        """The relay is over: finish our side and stop the peer's (the reference closes both
        directions when either ends)."""
        self.router.drop(stream_id)
        finish_stream(self.quic, stream_id, STREAM_ABORTED)

    def housekeeping(self, now: float) -> list:
        """Once a second: forget discarded streams; the UDP sessions idle for too long."""
        self.router.prune(aioquic_seam.streams(self.quic))
        return self.udp.expire(now)

    def send_udp(self, session_id: int, address: str, payload: bytes) -> int:
        """Queue a reply packet (fragmented when needed); the number of datagrams queued."""
        room = self.quic.datagram_room()
        try:
            frags = fragment_udp_message(session_id, address, payload, room)
        except ValueError as exc:
            log.debug("UDP message of %d bytes from %s for session %d dropped: %s",
                      len(payload), address, session_id, exc)
            return 0
        sent = 0
        for frag in frags:
            sent += self.quic.queue_datagram(frag)
        if sent < len(frags):
            log.debug("UDP message of %d bytes from %s for session %d: %d of %d fragments "
                      "dropped (datagram room %d, queue full?)", len(payload), address,
                      session_id, len(frags) - sent, len(frags), room)
        return sent
