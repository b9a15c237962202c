"""What the workers publish in shared memory, gathered per stream and per viewer.

One scan per request (the contract's slots: one ``KIND_MEDIA_STREAM`` per worker and active
stream, one ``KIND_MEDIA_CLIENT`` per viewer per worker).  Figures are never asked of a worker.
An HLS viewer's requests can land on several workers, so client slots are merged by client id.

``read_live`` folds the slots in C (``fastpath.shm.media_view``); ``gather`` is the same
folding over ``scan_slots`` dicts, kept as the readable reference the compiled view is tested
against.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fastpath.shm.media_view import render_clients, scan_media

from fastpath.shm import (
    KIND_MEDIA_CLIENT,
    KIND_MEDIA_STREAM,
    STATE_CLOSED,
    STATE_CONNECT,
    STATE_ESTAB,
    scan_slots,
)

KINDS = (KIND_MEDIA_STREAM, KIND_MEDIA_CLIENT)
_STATE_RANK = {STATE_ESTAB: 3, STATE_CONNECT: 2, STATE_CLOSED: 1}
STATE_WORDS = {STATE_ESTAB: "reading", STATE_CONNECT: "connecting", STATE_CLOSED: "idle"}
NO_EXTRA = (0, 0, 0, 0)


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


def split_client_text(text: str) -> tuple[str, str | None, str]:
    """``"<ip>\\t<username>\\t<user agent>"`` -> (ip, username or None, user agent)."""
    ip, _, rest = text.partition("\t")
    user, _, agent = rest.partition("\t")
    return ip, (user or None), agent


def gather(records: list[dict], clients_of: bool | str = True) -> LiveView:
    """Fold slot records (``scan_slots`` dicts) into per-stream and per-client figures.

    ``clients_of``: build client objects for every viewer (True), for none (False: stream
    listings need only counts, and 10k client objects are most of the cost), or for the
    viewers of one stream id."""
    view = LiveView()
    clients = view.clients
    streams = view.streams
    by_stream = view.by_stream
    connected = view.connected
    client_last = view.client_last_ns
    ranks = _STATE_RANK
    words = STATE_WORDS
    for rec in records:
        kind = rec["kind"]
        if kind == KIND_MEDIA_CLIENT:
            cid = rec["key"]
            owner = rec["text_a"]
            if rec["state"] == STATE_ESTAB:
                ids = connected.get(owner)
                if ids is None:
                    connected[owner] = {cid}
                else:
                    ids.add(cid)
            if rec["last_active_ns"] > client_last.get(owner, 0):
                client_last[owner] = rec["last_active_ns"]
            if clients_of is not True and clients_of != owner:
                continue
            c = clients.get(cid)
            if c is None:
                ip, user, agent = split_client_text(rec["text_b"])
                c = clients[cid] = LiveClient(cid, rec["text_a"], ip, user, agent,
                                              created_ns=rec["created_ns"])
                group = by_stream.get(c.stream_id)
                if group is None:
                    by_stream[c.stream_id] = [c]
                else:
                    group.append(c)
            elif rec["created_ns"] and rec["created_ns"] < c.created_ns:
                c.created_ns = rec["created_ns"]
            c.workers += 1
            c.bytes_out += rec["tx"]
            c.segments += rec["tx_packets"]
            if rec["state"] == STATE_ESTAB:
                c.connected = True
            c.last_active_ns = max(c.last_active_ns, rec["last_active_ns"])
        elif kind == KIND_MEDIA_STREAM:
            sid = rec["key"]
            s = streams.get(sid)
            if s is None:
                s = streams[sid] = LiveStream(sid, kind=rec["text_a"], created_ns=rec["created_ns"])
            extra = rec.get("extra") or NO_EXTRA
            state = rec["state"]
            s.workers += 1
            word = words.get(state, "idle")
            s.slot_states[word] = s.slot_states.get(word, 0) + 1
            s.bytes_in += rec["rx"]
            s.bytes_out += rec["tx"]
            s.segments += rec["tx_packets"]
            s.errors += rec["rx_packets"]
            s.failovers += extra[1]
            s.cache_hits += extra[3]
            s.last_failover_ns = max(s.last_failover_ns, extra[2])
            if ranks.get(state, 0) >= ranks.get(s.state, 0):
                # The most active worker tells the current URL.
                s.state = state
                s.url = rec["text_b"]
                s.url_index = extra[0] if rec.get("extra") is not None else None
            if rec["created_ns"] and (not s.created_ns or rec["created_ns"] < s.created_ns):
                s.created_ns = rec["created_ns"]
            s.last_active_ns = max(s.last_active_ns, rec["last_active_ns"])
    view.connected = {owner: len(ids) for owner, ids in connected.items()}
    return view


def read_live_python(table, clients_of: bool | str = True) -> LiveView:
    """The reference path: one dict per slot, folded by ``gather``."""
    return gather(scan_slots(table, KINDS), clients_of)


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
