"""The stream relay's live figures folded in plain Python over ``scan_slots`` dicts: the spec
``fastpath.views.media_view`` (``fastpath.control.stream_proxy.live.read_live``) is tested against."""
from __future__ import annotations

from fastpath.control.stream_proxy.live import STATE_WORDS, LiveClient, LiveStream, LiveView
from fastpath.shm import KIND_MEDIA_CLIENT, KIND_MEDIA_STREAM, STATE_CLOSED, STATE_CONNECT, STATE_ESTAB, scan_slots

KINDS = (KIND_MEDIA_STREAM, KIND_MEDIA_CLIENT)
NO_EXTRA = (0, 0, 0, 0)
_STATE_RANK = {STATE_ESTAB: 3, STATE_CONNECT: 2, STATE_CLOSED: 1}


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
