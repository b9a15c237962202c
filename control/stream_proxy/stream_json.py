"""Stream objects (``views.stream_view``) as JSON text, from per-stream templates.

A listing of 1k streams built as dicts and encoded by ``json.dumps`` costs ~10 ms a request,
yet most of each object (URLs, metadata, flags, times of creation) changes only when the store
does.  That part is encoded once per stream and kept with the cached streams
(``StreamCache``); a request fills in the live figures with one ``%`` a stream.  The text is
what ``json.dumps(stream_view(...), ensure_ascii=False)`` gives (tests compare them).
"""
from __future__ import annotations

import json

from fastpath.control.stream_proxy.kinds import TYPE_NAMES
from fastpath.control.stream_proxy.live import LiveView
from fastpath.control.stream_proxy.views import current_index, iso
from fastpath.store.media_store import MediaStream


def _j(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _lit(text: str) -> str:
    """Static JSON inside a ``%`` template."""
    return text.replace("%", "%%")


class StreamTemplate:
    """The static parts of one stream's object, and its URLs pre-encoded."""

    __slots__ = ("fmt", "stream", "urls")

    def __init__(self, stream: MediaStream, default_agent: str | None):
        s = stream
        self.stream = s
        self.urls = [_j(u) for u in s.urls]
        profile = (f', "profile": {_j(s.profile)}, "profile_variables": {_j(dict(s.profile_variables))}'
                   if s.kind == "transcode" else "")
        self.fmt = (
            _lit(f'{{"stream_id": {_j(s.id)}, "original_url": {_j(s.url)}, "current_url": ')
            + "%s"
            + _lit(f', "user_agent": {_j(s.user_agent or default_agent)}, "client_count": ')
            + '%d, "total_bytes_served": %d, "total_segments_served": %d, "error_count": %d, '
              '"is_active": true, '
            + _lit(f'"has_failover": {_j(s.has_failover)}, "failover_urls": {_j(list(s.failover_urls))}, '
                   f'"failover_resolver_url": {_j(s.failover_resolver_url)}, "current_failover_index": ')
            + '%d, "failover_attempts": %d, "last_failover_time": %s, '
            + _lit(f'"stream_type": {_j(TYPE_NAMES.get(s.kind, s.kind))}, "created_at": {_j(iso(s.created))}, '
                   '"last_access": ')
            + "%s"
            + _lit(f', "metadata": {_j(dict(s.metadata))}, "headers": {_j(dict(s.headers))}, "url_index": ')
            + '%d, "relaying": %s, '
            + _lit(f'"strict_live_ts": {_j(s.strict_live_ts)}, '
                   f'"use_sticky_session": {_j(s.sticky)}, "upstream_state": ')
            + "%s"
            + _lit(profile + "}")
        )


def _time(ts: float | None) -> str:
    text = iso(ts)
    return "null" if text is None else f'"{text}"'


def render(t: StreamTemplate, view: LiveView) -> tuple[str, bool, int, int]:
    """One stream object as JSON text, with its is_active, total_bytes_served and
    total_segments_served (for the sums of ``/stats``).  The figures are
    ``views.stream_figures``'s, computed inline (no dict a stream)."""
    stream = t.stream
    live = view.streams.get(stream.id)
    last = stream.last_access
    last_failover = stream.last_failover
    if live is None:
        out, seg = stream.bytes_served, stream.segments_served
        errors, failovers = stream.error_count, stream.failover_attempts
        active = False
        state = '"idle"'
    else:
        out = stream.bytes_served + live.bytes_out
        seg = stream.segments_served + live.segments
        errors = max(stream.error_count, live.errors)
        failovers = max(stream.failover_attempts, live.failovers)
        if live.last_failover_ns and (last_failover is None or live.last_failover_ns / 1e9 > last_failover):
            last_failover = live.last_failover_ns / 1e9
        ns = live.last_active_ns
        if ns and (last is None or ns / 1e9 > last):
            last = ns / 1e9
        active = live.reading
        state = f'"{live.upstream_state}"'
    ns = view.client_last_ns.get(stream.id, 0)
    if ns and (last is None or ns / 1e9 > last):
        last = ns / 1e9
    connected = view.connected.get(stream.id, 0)
    active = bool(connected or active)
    idx = current_index(stream, live)
    text = t.fmt % (
        t.urls[idx], connected, out, seg, errors, stream.failover_position(idx), failovers,
        _time(last_failover), _time(last if last is not None else stream.created), idx,
        "true" if active else "false", state)
    return text, active, out, seg


def streams_array(templates: list[StreamTemplate], view: LiveView) -> tuple[str, int, int, int]:
    """``[stream objects]`` as JSON text; (text, active streams, bytes served, segments)."""
    parts = []
    active = served = segments = 0
    for t in templates:
        text, is_active, out, seg = render(t, view)
        parts.append(text)
        active += is_active
        served += out
        segments += seg
    return "[" + ", ".join(parts) + "]", active, served, segments
