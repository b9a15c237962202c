"""Hysteria 2 on one client-side QUIC connection, without I/O.

It sends the auth request, opens proxy streams (request written at once, the server's
response parsed as it arrives), and reassembles UDP replies.  Fed aioquic events, it returns
``fastpath.hy2.wire.events``; only the auth stream and HTTP/3's own streams reach H3.
"""
from __future__ import annotations

from aioquic.h3.events import HeadersReceived
from aioquic.quic import events as qe

from fastpath.hy2.wire import auth_protocol as ap
from fastpath.hy2.wire.events import (AuthResult, SendStopped, StreamClosed, TcpData, TcpResponse, Terminated)
from fastpath.hy2.wire.frames import (TcpResponseParser, encode_tcp_request, fragment_udp_message)
from fastpath.hy2.wire.h3_compat import LenientH3Connection
from fastpath.hy2.quic.quic_connection import abort_stream, finish_stream
from fastpath.hy2.wire.udp_sessions import UdpSessionTable

CLOSE_AUTH_FAILED = 0x101
STREAM_ABORTED = 0x10C


class ClientSession:
    def __init__(self, quic, auth: str, rx_rate: int = 0) -> None:
        self.quic = quic
        self.auth = auth
        self.rx_rate = rx_rate
        # Made now: the server's control and QPACK streams may arrive before our request.
        self.h3 = LenientH3Connection(quic)
        self.auth_stream: int | None = None
        self.authenticated = False
        self.udp_enabled = False
        self.server_rx: int | None = 0
        self._responses: dict[int, TcpResponseParser] = {}   # streams awaiting the response
        self._open: set[int] = set()                          # streams relaying payload
        self.udp = UdpSessionTable(idle_timeout=float("inf"))

    # -- output -----------------------------------------------------------------------------
    def start_auth(self) -> int:
        sid = self.quic.get_next_available_stream_id()
        self.auth_stream = sid
        self.h3.send_headers(sid, ap.auth_request_headers(self.auth, self.rx_rate), end_stream=True)
        return sid

    def open_tcp(self, address: str, early: bytes = b"") -> int:
        """Open a proxy stream to ``address``; the request (and any early payload) is queued."""
        sid = self.quic.get_next_available_stream_id()
        self._responses[sid] = TcpResponseParser()
        self.quic.send_stream_data(sid, encode_tcp_request(address) + early)
        return sid

    def end_stream(self, stream_id: int) -> None:
        """Our side of a proxy stream is done: FIN ours, stop theirs (no half-close)."""
        self._forget(stream_id)
        finish_stream(self.quic, stream_id, STREAM_ABORTED)

    def reset_stream(self, stream_id: int) -> None:
        self._forget(stream_id)
        abort_stream(self.quic, stream_id, STREAM_ABORTED)

    def _forget(self, stream_id: int) -> None:
        self._responses.pop(stream_id, None)
        self._open.discard(stream_id)

    def send_udp(self, session_id: int, address: str, payload: bytes) -> int:
        try:
            frags = fragment_udp_message(session_id, address, payload, self.quic.datagram_room())
        except ValueError:
            return 0
        return sum(self.quic.queue_datagram(f) for f in frags)

    # -- input ------------------------------------------------------------------------------
    def handle(self, event, now: float = 0.0) -> list:
        t = type(event)
        if t is qe.StreamDataReceived:
            sid = event.stream_id
            if sid in self._open:
                if event.end_stream:
                    self._open.discard(sid)
                return [TcpData(sid, event.data, event.end_stream)]
            parser = self._responses.get(sid)
            if parser is not None:
                return self._response_data(sid, parser, event.data, event.end_stream)
            return self._to_h3(event) if self._is_h3(sid) else []
        if t is qe.DatagramFrameReceived:
            return self.udp.receive(event.data, now) if self.authenticated else []
        if t is qe.StopSendingReceived and event.stream_id in self._open:
            return [SendStopped(event.stream_id)]
        if t is qe.StreamReset or t is qe.StopSendingReceived:
            sid = event.stream_id
            if sid in self._open or sid in self._responses:
                self._open.discard(sid)
                self._responses.pop(sid, None)
                return [StreamClosed(sid, "reset by server")]
            return self._to_h3(event) if self._is_h3(sid) else []
        if t is qe.ConnectionTerminated:
            return [Terminated(event.error_code, event.reason_phrase)]
        return []

    def _is_h3(self, stream_id: int) -> bool:
        """Only the auth request and the server's unidirectional streams are HTTP/3's; our
        other bidirectional streams are proxy streams, open or finished."""
        return stream_id == self.auth_stream or bool(stream_id & 0x2)

    def _response_data(self, sid: int, parser, data: bytes, end: bool) -> list:
        parser.feed(data)
        if parser.error is not None:
            self.reset_stream(sid)
            return [StreamClosed(sid, f"bad response: {parser.error}")]
        if not parser.done:
            if end:
                self._responses.pop(sid, None)
                return [StreamClosed(sid, "stream ended before the response")]
            return []
        del self._responses[sid]
        if not end:
            self._open.add(sid)
        return [TcpResponse(sid, parser.ok, parser.message, parser.leftover, end)]

    def _to_h3(self, event) -> list:
        out = []
        for e in self.h3.handle_event(event):
            if isinstance(e, HeadersReceived) and e.stream_id == self.auth_stream:
                ok, udp, server_rx = ap.parse_auth_response(e.headers)
                status = ap.header_map(e.headers).get(b":status", b"0")
                self.authenticated = ok
                self.udp_enabled = udp
                self.server_rx = server_rx
                out.append(AuthResult(ok, udp, server_rx, int(status) if status.isdigit() else 0))
        return out
