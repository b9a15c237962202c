"""What the Hysteria 2 session cores tell their I/O layer (server and client alike).

The cores (``server_session``, ``client_session``) are fed aioquic events and hand these back;
the asyncio glue acts on them (dial, authenticate, relay) and answers through the core's methods.
"""
from __future__ import annotations


class Hy2Event:
    __slots__ = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({fields})"


class AuthRequested(Hy2Event):
    """The client asked to authenticate; answer with ``accept_auth`` or ``reject_auth``."""
    __slots__ = ("stream_id", "auth", "client_rx")

    def __init__(self, stream_id: int, auth: str, client_rx: int):
        self.stream_id, self.auth, self.client_rx = stream_id, auth, client_rx


class HttpRequest(Hy2Event):
    """Any other HTTP/3 request: for the masquerade to answer with ``send_http_response``."""
    __slots__ = ("stream_id", "headers", "body")

    def __init__(self, stream_id: int, headers: list, body: bytes):
        self.stream_id, self.headers, self.body = stream_id, headers, body


class TcpRequested(Hy2Event):
    """A proxy stream asked for ``address``; dial it, then call ``tcp_response``.  ``early`` are
    payload bytes the client sent right after the request."""
    __slots__ = ("stream_id", "address", "early", "end")

    def __init__(self, stream_id: int, address: str, early: bytes, end: bool):
        self.stream_id, self.address, self.early, self.end = stream_id, address, early, end


class TcpResponse(Hy2Event):
    """(client) The server's answer on a proxy stream; ``early`` is payload that followed it."""
    __slots__ = ("stream_id", "ok", "message", "early", "end")

    def __init__(self, stream_id: int, ok: bool, message: str, early: bytes, end: bool):
        self.stream_id, self.ok, self.message, self.early, self.end = stream_id, ok, message, early, end


class TcpData(Hy2Event):
    """Payload on an established proxy stream; ``end`` when the peer finished sending."""
    __slots__ = ("stream_id", "data", "end")

    def __init__(self, stream_id: int, data: bytes, end: bool):
        self.stream_id, self.data, self.end = stream_id, data, end


class StreamClosed(Hy2Event):
    """A proxy stream is over: the peer reset it, or its request was malformed."""
    __slots__ = ("stream_id", "reason")

    def __init__(self, stream_id: int, reason: str):
        self.stream_id, self.reason = stream_id, reason


class SendStopped(Hy2Event):
    """The peer no longer reads a proxy stream (STOP_SENDING): stop relaying toward it, but keep
    delivering what it still sends until its FIN."""
    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int):
        self.stream_id = stream_id


class UdpReceived(Hy2Event):
    """A complete UDP packet of a session (``created``: the first one of the session)."""
    __slots__ = ("session", "created", "address", "payload")

    def __init__(self, session, created: bool, address: str, payload: bytes):
        self.session, self.created, self.address, self.payload = session, created, address, payload


class AuthResult(Hy2Event):
    """(client) The server's answer to our auth request."""
    __slots__ = ("ok", "udp", "server_rx", "status")

    def __init__(self, ok: bool, udp: bool, server_rx, status: int):
        self.ok, self.udp, self.server_rx, self.status = ok, udp, server_rx, status


class Terminated(Hy2Event):
    __slots__ = ("error_code", "reason")

    def __init__(self, error_code: int, reason: str):
        self.error_code, self.reason = error_code, reason
