"""The JSON objects of m3u-proxy's API, built from the store (what lasts) and the live view
(what the workers publish now)."""
from __future__ import annotations

import time

from fastpath.control.stream_proxy.kinds import TYPE_NAMES
from fastpath.control.stream_proxy.live import LiveClient, LiveStream, LiveView
from fastpath.store.media_store import MediaStream

_SECONDS: dict[int, str] = {}


def ns_iso(ns: int) -> str | None:
    """ISO 8601 UTC with microseconds and ``+00:00``, as Python's ``isoformat`` of an aware
    time writes it (m3u-proxy's format; clients parse it).  Viewer lists format two times per viewer, and
    ``datetime.isoformat`` costs ~4 µs each (80 ms for 10k viewers); the second's text is
    cached instead (viewers of one moment share it)."""
    if not ns:
        return None
    sec, rem = divmod(int(ns), 1_000_000_000)
    prefix = _SECONDS.get(sec)
    if prefix is None:
        if len(_SECONDS) > 8192:
            _SECONDS.clear()
        prefix = _SECONDS[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{prefix}.{rem // 1000:06d}+00:00"


def iso(ts: float | None) -> str | None:
    return None if ts is None else ns_iso(round(ts * 1e9))


def current_index(stream: MediaStream, live: LiveStream | None) -> int:
    """The URL the relay uses now: the worker's published index when it has one, else the
    stored one (which every failover also writes)."""
    urls = len(stream.urls)
    if live is not None and live.url_index is not None and 0 <= live.url_index < urls:
        return live.url_index
    return stream.failover_index if 0 <= stream.failover_index < urls else 0


def stream_figures(stream: MediaStream, live: LiveStream | None) -> dict:
    """Totals across restarts: folded totals in the store plus the live relays' counters.
    Errors and failovers are written to the store as they happen, and also counted per
    worker; the larger of the two is the total (adding them would count twice)."""
    bytes_out = stream.bytes_served + (live.bytes_out if live else 0)
    bytes_in = stream.bytes_in + (live.bytes_in if live else 0)
    segments = stream.segments_served + (live.segments if live else 0)
    errors = max(stream.error_count, live.errors if live else 0)
    failovers = max(stream.failover_attempts, live.failovers if live else 0)
    last_failover = stream.last_failover
    if live and live.last_failover_ns and (last_failover is None or live.last_failover_ns / 1e9 > last_failover):
        last_failover = live.last_failover_ns / 1e9
    last_access = stream.last_access
    return {"bytes_out": bytes_out, "bytes_in": bytes_in, "segments": segments, "errors": errors,
            "failovers": failovers, "last_failover": last_failover, "last_access": last_access}


def stream_view(stream: MediaStream, view: LiveView, default_agent: str | None = None) -> dict:
    """One stream object; ``user_agent`` is the one sent upstream (the node's default when the
    stream names none, as m3u-proxy answers)."""
    live = view.streams.get(stream.id)
    fig = stream_figures(stream, live)
    idx = current_index(stream, live)
    last = fig["last_access"]
    for ns in (live.last_active_ns if live else 0, view.client_last_ns.get(stream.id, 0)):
        if ns and (last is None or ns / 1e9 > last):
            last = ns / 1e9
    connected = view.connected_count(stream.id)
    return {
        "stream_id": stream.id,
        "original_url": stream.url,
        "current_url": stream.urls[idx],
        "user_agent": stream.user_agent or default_agent,
        "client_count": connected,
        "total_bytes_served": fig["bytes_out"],
        "total_segments_served": fig["segments"],
        "error_count": fig["errors"],
        # A registered stream is active (m3u-proxy: until it is deleted or expires); whether
        # it relays now is ``upstream_state``.
        "is_active": True,
        "has_failover": stream.has_failover,
        "failover_urls": list(stream.failover_urls),
        "failover_resolver_url": stream.failover_resolver_url,
        # m3u-proxy's index (``MediaStream.failover_position``); ours is ``url_index``.
        "current_failover_index": stream.failover_position(idx),
        "failover_attempts": fig["failovers"],
        "last_failover_time": iso(fig["last_failover"]),
        "stream_type": TYPE_NAMES.get(stream.kind, stream.kind),
        "created_at": iso(stream.created),
        "last_access": iso(last if last is not None else stream.created),
        "metadata": dict(stream.metadata),
        "headers": dict(stream.headers),
        "url_index": idx,
        "relaying": bool(connected or (live is not None and live.reading)),
        "strict_live_ts": stream.strict_live_ts,
        "use_sticky_session": stream.sticky,
        "upstream_state": live.upstream_state if live else "idle",
        **({"profile": stream.profile, "profile_variables": dict(stream.profile_variables)}
           if stream.kind == "transcode" else {}),
    }


def client_view(c: LiveClient) -> dict:
    return {
        "client_id": c.client_id,
        "stream_id": c.stream_id,
        "user_agent": c.user_agent,
        "ip_address": c.ip,
        "username": c.username,
        "bytes_served": c.bytes_out,
        "segments_served": c.segments,
        "created_at": ns_iso(c.created_ns),
        "last_access": ns_iso(c.last_active_ns or c.created_ns),
        "is_connected": c.connected,
    }
