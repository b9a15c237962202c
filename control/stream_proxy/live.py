"""What the workers publish in shared memory, gathered per stream and per viewer.

One scan per request (the contract's slots: one ``KIND_MEDIA_STREAM`` per worker and active
stream, one ``KIND_MEDIA_CLIENT`` per viewer per worker).  Figures are never asked of a worker.
An HLS viewer's requests can land on several workers, so client slots are merged by client id.

``read_live`` folds the slots in C (``fastpath.views.media_view``); ``tests/oracles/live.py``
holds the same folding over ``scan_slots`` dicts, the readable reference the compiled view is
tested against.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fastpath.views.media_view import render_clients
from fastpath.views.media_scan import scan_media

from fastpath.shm import (
    STATE_CLOSED,
    STATE_CONNECT,
    STATE_ESTAB,
)

STATE_WORDS = {STATE_ESTAB: "reading", STATE_CONNECT: "connecting", STATE_CLOSED: "idle"}


@dataclass(slots=True)
class LiveStream:
    stream_id: str
    kind: str = ""
    url: str = ""
    url_index: int | None = None
    state: int = STATE_CLOSED
    workers: int = 0
    slot_states: dict[str, int] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0
    segments: int = 0
    errors: int = 0
    failovers: int = 0
    last_failover_ns: int = 0
    cache_hits: int = 0
    created_ns: int = 0
    last_active_ns: int = 0

    @property
    def upstream_state(self) -> str:
        return STATE_WORDS.get(self.state, "idle")

    @property
    def reading(self) -> bool:
        return self.state in (STATE_ESTAB, STATE_CONNECT)


@dataclass(slots=True)
class LiveClient:
    client_id: str
    stream_id: str
    ip: str = ""
    username: str | None = None
    user_agent: str = ""
    bytes_out: int = 0
    segments: int = 0
    created_ns: int = 0
    last_active_ns: int = 0
    connected: bool = False
    workers: int = 0


@dataclass(slots=True)
class LiveView:
    streams: dict[str, LiveStream] = field(default_factory=dict)
    clients: dict[str, LiveClient] = field(default_factory=dict)
    by_stream: dict[str, list[LiveClient]] = field(default_factory=dict)
    # Always kept, also when client objects are not built: the number of distinct connected
    # client ids (streams with none are absent) and the latest activity of any viewer, per
    # stream.
    connected: dict[str, int] = field(default_factory=dict)
    client_last_ns: dict[str, int] = field(default_factory=dict)

    def stream_clients(self, stream_id: str) -> list[LiveClient]:
        return self.by_stream.get(stream_id, [])

    def connected_count(self, stream_id: str) -> int:
        return self.connected.get(stream_id, 0)


def read_live(table, clients_of: bool | str = True) -> LiveView:
    """The compiled scan: the same view, folded in C; Python objects only for the result."""
    streams, connected, client_last, clients = scan_media(table, clients_of)
    view = LiveView(connected=connected, client_last_ns=client_last)
    view.streams = {t[0]: LiveStream(*t) for t in streams}
    by_stream = view.by_stream
    out = view.clients
    for t in clients:
        c = out[t[0]] = LiveClient(*t)
        group = by_stream.get(c.stream_id)
        if group is None:
            by_stream[c.stream_id] = [c]
        else:
            group.append(c)
    return view


def clients_json(table) -> tuple[bytes, int, int]:
    """Every viewer as the JSON array of ``views.client_view`` objects, written in C:
    ``(bytes, viewers, connected viewers)``."""
    return render_clients(table)
