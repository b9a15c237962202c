"""Which client stream is a proxy request and which is HTTP/3: decided by its first varint.

aioquic's H3Connection would take every client bidirectional stream as an HTTP/3 request and
silently skip an unknown frame type such as 0x401, so each new stream is held back until its
first varint is complete: 0x401 on an authenticated connection makes it a proxy stream, which
H3 never sees; anything else (and everything before auth) goes to H3 with the bytes held.
"""
from __future__ import annotations

from fastpath.hy2.wire.varint import decode as varint_decode

TCP_REQUEST_ID = 0x401
ROUTE_PENDING, ROUTE_PROXY, ROUTE_H3, ROUTE_DROP = 0, 1, 2, 3


def is_client_bidi(stream_id: int) -> bool:
    return stream_id & 0x3 == 0


class StreamRouter:
    """Remembers the route of each client stream; ``route`` returns (route, data to pass on)."""

    def __init__(self) -> None:
        self.routes: dict[int, int] = {}
        self._held: dict[int, bytes] = {}

    def route(self, stream_id: int, data: bytes, end_stream: bool,
              authenticated: bool) -> tuple[int, bytes]:
        known = self.routes.get(stream_id)
        if known is not None:
            return known, data
        if not is_client_bidi(stream_id):
            self.routes[stream_id] = ROUTE_H3
            return ROUTE_H3, data
        held = self._held.pop(stream_id, b"") + data
        try:
            value, _ = varint_decode(held)
        except ValueError:
            if not end_stream:                    # the varint is not complete yet
                self._held[stream_id] = held
                return ROUTE_PENDING, b""
            value = None
        route = ROUTE_PROXY if (value == TCP_REQUEST_ID and authenticated) else ROUTE_H3
        self.routes[stream_id] = route
        return route, held

    def drop(self, stream_id: int) -> None:
        """The stream is over for us: late data on it is ignored (never handed to H3)."""
        self.routes[stream_id] = ROUTE_DROP
        self._held.pop(stream_id, None)

    def prune(self, live: "set[int] | dict") -> None:
        """Forget streams the QUIC connection has discarded (it ignores their late frames)."""
        for sid in [s for s in self.routes if s not in live]:
            del self.routes[sid]
