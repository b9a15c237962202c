"""Stream objects from templates (``stream_json``) against ``json.dumps(stream_view(...))``,
byte for byte, and ``/stats`` from parts against ``overview``: random stored streams (URLs,
agents and metadata with quotes, ``%``, control characters and non-ASCII; transcode
profiles, failover resolvers and their answers) and random live figures, including none."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from fastpath.control.stream_proxy import figures
from fastpath.control.stream_proxy.live import LiveClient, LiveStream, LiveView
from fastpath.control.stream_proxy.stream_json import StreamTemplate, streams_array
from fastpath.control.stream_proxy.views import client_view, stream_view
from fastpath.shm import STATE_CLOSED, STATE_CONNECT, STATE_ESTAB
from fastpath.store.media_store import MediaStream

texts = st.text(alphabet=st.sampled_from(['"', "\\", "%", "s", "\n", "\x00", "a", "é", "😀", "\u2028", "/"]),
                max_size=8)
counts = st.integers(0, 2**48)
times = st.one_of(st.none(), st.floats(0, 4e9, allow_nan=False))


@st.composite
def stored(draw, i):
    kind = draw(st.sampled_from(["hls", "direct", "vod", "transcode"]))
    return MediaStream(
        id=f"s{i}" + draw(texts), url="http://h/" + draw(texts), kind=kind,
        failover_urls=draw(st.lists(texts.map(lambda t: "http://b/" + t), max_size=3)),
        user_agent=draw(st.one_of(st.none(), texts)),
        strict_live_ts=draw(st.booleans()), sticky=draw(st.booleans()),
        metadata=draw(st.dictionaries(texts, texts, max_size=3)),
        profile=draw(texts) if kind == "transcode" else None,
        profile_variables=draw(st.dictionaries(texts, texts, max_size=2)) if kind == "transcode" else {},
        failover_index=draw(st.integers(-1, 4)), failover_attempts=draw(counts),
        last_failover=draw(times), error_count=draw(counts), bytes_in=draw(counts),
        bytes_served=draw(counts), segments_served=draw(counts),
        created=draw(st.floats(0, 4e9, allow_nan=False)), last_access=draw(times),
        failover_resolver_url=draw(st.one_of(st.none(), texts.map(lambda t: "http://r/" + t))),
        resolved_url=draw(st.one_of(st.none(), texts.map(lambda t: "http://n/" + t))),
        resolved_count=draw(st.integers(0, 5)))


@st.composite
def scene(draw):
    streams = [draw(stored(i)) for i in range(draw(st.integers(0, 6)))]
    view = LiveView()
    for s in streams:
        if draw(st.booleans()):
            view.streams[s.id] = LiveStream(
                s.id, s.kind, url_index=draw(st.one_of(st.none(), st.integers(0, 5))),
                state=draw(st.sampled_from([STATE_ESTAB, STATE_CONNECT, STATE_CLOSED])),
                workers=1, bytes_in=draw(counts), bytes_out=draw(counts), segments=draw(counts),
                errors=draw(counts), failovers=draw(counts), last_failover_ns=draw(st.integers(0, 2**62)),
                last_active_ns=draw(st.integers(0, 2**62)))
        n = draw(st.integers(0, 3))
        if n:
            view.connected[s.id] = n
        if draw(st.booleans()):
            view.client_last_ns[s.id] = draw(st.integers(1, 2**62))
    agent = draw(st.one_of(st.none(), texts))
    return streams, view, agent


@settings(max_examples=300, deadline=None)
@given(scene())
def test_templates_render_what_stream_view_encodes(sc):
    streams, view, agent = sc
    templates = [StreamTemplate(s, agent) for s in streams]
    text, active, served, segments = streams_array(templates, view)
    objs = [stream_view(s, view, agent) for s in streams]
    assert text == json.dumps(objs, ensure_ascii=False)
    assert active == sum(o["relaying"] for o in objs)
    assert (served, segments) == (sum(o["total_bytes_served"] for o in objs),
                                  sum(o["total_segments_served"] for o in objs))


@settings(max_examples=100, deadline=None)
@given(scene(), st.floats(0, 1e6, allow_nan=False))
def test_stats_from_parts_is_the_overview(sc, uptime):
    streams, view, agent = sc
    for i, s in enumerate(streams):
        c = view.clients[f"c{i}"] = LiveClient(f"c{i}", s.id, "1.2.3.4", None, "a\"b", 5, 1, 10**18, 0, i % 2 == 0)
        view.by_stream.setdefault(s.id, []).append(c)
    objs = [client_view(c) for c in view.clients.values()]
    clients = (json.dumps(objs, ensure_ascii=False).encode(), len(objs), sum(o["is_connected"] for o in objs))
    body = figures.overview_json([StreamTemplate(s, agent) for s in streams], view, uptime, clients)
    assert body == json.dumps(figures.overview(streams, view, uptime, agent), ensure_ascii=False).encode()


def test_stream_cache_follows_own_and_other_connections_writes(tmp_path):
    """Reused while nothing changed; reloaded after a write on this connection
    (``total_changes``) and after a commit of another connection (``data_version``), e.g. a
    worker folding its counters."""
    from fastpath.control.stream_proxy.stream_cache import StreamCache
    from fastpath.store import StateStore
    from fastpath.store.media_store import fold_counts, put_stream

    mine = StateStore(tmp_path / "state.db")
    other = StateStore(tmp_path / "state.db")
    cache = StreamCache(mine, "agent/1")
    assert cache.streams() == []
    a, _ = put_stream(mine, MediaStream(id="", url="http://o/a.ts", kind="direct"))
    first = cache.streams()
    assert [s.id for s in first] == [a.id]
    assert cache.streams() is first and cache.templates() is cache.templates()
    b, _ = put_stream(other, MediaStream(id="", url="http://o/b.ts", kind="direct"))
    assert [s.id for s in cache.streams()] == [a.id, b.id]
    fold_counts(other, b.id, bytes_served=5)
    assert [s.bytes_served for s in cache.streams()] == [0, 5]
    tpl = cache.templates()
    assert '"user_agent": "agent/1"' in tpl[0].fmt
