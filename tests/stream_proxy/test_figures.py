"""The figures of /streams and /stats* computed from real shared-memory slots: a counter
segment created here, slots opened and counted through ShardWriters exactly as the workers do
(one stream slot per worker, viewer slots owned by their stream's slot), read back through a
read-only attach as the control process does."""
from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastpath.control.stream_proxy import bodies
from fastpath.control.stream_proxy.errors import ProxyError
from fastpath.control.stream_proxy.figures import Rates, overview, performance
from fastpath.control.stream_proxy.live import read_live
from tests.oracles.live import split_client_text
from fastpath.control.stream_proxy.views import stream_view
from fastpath.shm import (
    KIND_MEDIA_CLIENT,
    KIND_MEDIA_STREAM,
    STATE_CLOSED,
    STATE_CONNECT,
    STATE_ESTAB,
    CounterTable,
)
from fastpath.store import StateStore
from fastpath.store.media_store import (
    MediaStream,
    fold_counts,
    list_streams,
    put_stream,
)

X_URL_INDEX, X_FAILOVERS, X_LAST_FAILOVER_NS, X_CACHE_HITS = range(4)


@pytest.fixture
def world(tmp_path):
    path = str(tmp_path / "counters")
    table = CounterTable.create(path, 2, 256, 42)
    store = StateStore(tmp_path / "state.db")
    hls, _ = put_stream(store, MediaStream(id="", url="http://o.example/a.m3u8", kind="hls",
                                           failover_urls=["http://b.example/a.m3u8"]))
    ts, _ = put_stream(store, MediaStream(id="", url="http://o.example/b.ts", kind="direct",
                                          failover_urls=["http://b.example/b.ts",
                                                         "http://c.example/b.ts"]))
    idle, _ = put_stream(store, MediaStream(id="", url="http://o.example/c.ts", kind="direct"))
    reader = CounterTable.attach(path, readonly=True)
    yield table, reader, store, hls, ts, idle
    reader.close()
    table.close()


def open_stream(w, stream, state, url_index=0):
    slot = w.open(KIND_MEDIA_STREAM, stream.id, text_a=stream.kind,
                  text_b=stream.urls[url_index], state=state)
    w.set_extra(slot, X_URL_INDEX, url_index)
    return slot


def open_client(w, stream_slot, stream_id, cid, ip, user, agent):
    return w.open(KIND_MEDIA_CLIENT, cid, conn_slot=stream_slot, text_a=stream_id,
                  text_b=f"{ip}\t{user}\t{agent}", state=STATE_ESTAB)


def test_figures_follow_the_slots(world):
    table, reader, store, hls, ts, idle = world
    w0, w1 = table.writer(0), table.writer(1)
    # HLS stream relayed by both workers; one viewer's requests landed on both.
    h0 = open_stream(w0, hls, STATE_ESTAB)
    h1 = open_stream(w1, hls, STATE_CLOSED)
    w0.add_counts(h0, 0, 50_000, 0, 0)  # upstream bytes
    w1.add_counts(h1, 0, 20_000, 0, 0)
    v0 = open_client(w0, h0, hls.id, "viewer-a", "10.0.0.1", "alice", "VLC/3.0")
    v1 = open_client(w1, h1, hls.id, "viewer-a", "10.0.0.1", "alice", "VLC/3.0")
    w0.add_counts(v0, 30_000, 0, 3, 0)
    w1.add_counts(v1, 10_000, 0, 1, 0)
    w0.set_extra(h0, X_CACHE_HITS, 2)
    w1.set_extra(h1, X_CACHE_HITS, 1)
    # Continuous stream on worker 0: switched to backup 2, one failover, errors, two viewers
    # (one of them gone idle), reconnecting now.
    t0 = open_stream(w0, ts, STATE_CONNECT, url_index=2)
    when = time.time_ns() - 5_000_000_000
    w0.set_extra(t0, X_FAILOVERS, 1)
    w0.set_extra(t0, X_LAST_FAILOVER_NS, when)
    w0.add_counts(t0, 0, 100_000, 0, 4)
    c1 = open_client(w0, t0, ts.id, "viewer-b", "10.0.0.2", "", "ffmpeg")
    c2 = open_client(w0, t0, ts.id, "viewer-c", "10.0.0.3", "bob", "Kodi")
    w0.add_counts(c1, 70_000, 0, 0, 0)
    w0.add_counts(c2, 90_000, 0, 0, 0)
    w0.set_state(c2, STATE_CLOSED)
    # Folded totals of earlier relays are in the store.
    fold_counts(store, ts.id, bytes_in=1_000, bytes_served=5_000, segments_served=0)

    view = read_live(reader)
    streams = {s.id: s for s in list_streams(store)}
    h = stream_view(streams[hls.id], view)
    assert h["client_count"] == 1 and h["is_active"] is True
    assert h["total_bytes_served"] == 40_000 and h["total_segments_served"] == 4
    assert h["current_url"] == hls.url and h["upstream_state"] == "reading"
    t = stream_view(streams[ts.id], view)
    assert t["client_count"] == 1  # viewer-c is no longer connected
    assert t["total_bytes_served"] == 5_000 + 160_000
    assert t["error_count"] == 4 and t["failover_attempts"] == 1
    assert t["current_failover_index"] == 1 and t["url_index"] == 2  # failover_urls[1]
    assert t["current_url"] == "http://c.example/b.ts"
    assert t["upstream_state"] == "connecting" and t["is_active"] is True
    assert abs(time.time() - 5 - _iso_seconds(t["last_failover_time"])) < 1
    i = stream_view(streams[idle.id], view)
    assert i["client_count"] == 0 and i["total_bytes_served"] == 0
    assert i["is_active"] is True and i["relaying"] is False  # registered, not relaying

    stats = overview(list(streams.values()), view, uptime=12.5)
    assert stats["total_streams"] == 3 and stats["active_streams"] == 2
    assert stats["total_clients"] == 3 and stats["active_clients"] == 2
    assert stats["total_bytes_served"] == 40_000 + 165_000
    assert stats["total_segments_served"] == 4 and stats["uptime_seconds"] == 12  # whole seconds
    merged = next(c for c in stats["clients"] if c["client_id"] == "viewer-a")
    assert merged == {**merged, "stream_id": hls.id, "ip_address": "10.0.0.1", "username": "alice",
                      "user_agent": "VLC/3.0", "bytes_served": 40_000, "segments_served": 4,
                      "is_connected": True}
    anon = next(c for c in stats["clients"] if c["client_id"] == "viewer-b")
    assert anon["username"] is None and anon["bytes_served"] == 70_000

    perf = performance(list(streams.values()), view, Rates())
    per = {p["stream_id"]: p for p in perf["performance_metrics"]["streams"]}
    assert per[hls.id]["cache_hits"] == 3 and per[hls.id]["cache_hit_rate"] == 0.75
    assert per[hls.id]["upstream_connections"] == 1 and per[hls.id]["relays"] == 2
    assert per[hls.id]["fanout_ratio"] == round(40_000 / 70_000, 3)
    assert per[ts.id]["bytes_in"] == 101_000 and per[ts.id]["error_count"] == 4
    assert per[ts.id]["average_out_bps"] > 0  # since the relay started: no earlier read yet
    assert perf["connection_pool"] == {"upstream_connections": 1, "connecting": 1, "idle": 1,
                                       "relays": 3}
    assert perf["failover_stats"]["total_failovers"] == 1
    assert perf["failover_stats"]["streams_on_backup"] == 1
    assert perf["error_stats"] == {"total_errors": 4, "streams_with_errors": 1,
                                   "by_stream": [{"stream_id": ts.id, "error_count": 4}]}
    assert perf["performance_metrics"]["cache_hit_rate"] == 0.75

    # A viewer slot that closes disappears; its stream's bytes stay (counted on the stream).
    w0.close(c2)
    view = read_live(reader)
    assert "viewer-c" not in view.clients
    assert stream_view(streams[ts.id], view)["total_bytes_served"] == 165_000


def test_throughput_between_reads(world):
    table, reader, _store, _hls, ts, _idle = world
    w0 = table.writer(0)
    s0 = open_stream(w0, ts, STATE_ESTAB)
    v = open_client(w0, s0, ts.id, "v", "10.0.0.9", "", "curl")
    rates = Rates()
    streams = [ts]
    w0.add_counts(s0, 0, 1_000_000, 0, 0)
    now = time.time()
    performance(streams, read_live(reader), rates, now=now)
    w0.add_counts(v, 3_000_000, 0, 0, 0)
    w0.add_counts(s0, 0, 500_000, 0, 0)
    perf = performance(streams, read_live(reader), rates, now=now + 2.0)
    p = perf["performance_metrics"]["streams"][0]
    assert p["throughput_window_seconds"] == 2.0
    assert p["throughput_out_bps"] == 3_000_000 * 8 / 2.0
    assert p["throughput_in_bps"] == 500_000 * 8 / 2.0
    assert perf["performance_metrics"]["throughput_out_bps"] == 12_000_000.0


def _iso_seconds(text: str) -> float:
    import datetime
    return datetime.datetime.fromisoformat(text).timestamp()


@given(st.text(max_size=200))
def test_client_text_split_never_fails(text):
    ip, user, agent = split_client_text(text)
    assert isinstance(ip, str) and isinstance(agent, str) and (user is None or user)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                     max_leaves=12)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(["url", "failover_urls", "metadata", "headers",
                                        "strict_live_ts", "user_agent", "events", "timeout",
                                        "retry_attempts"]), _json | st.text(max_size=60)))
def test_body_checks_answer_422_or_clean_values(body):
    """Whatever JSON arrives, each check returns a clean value or a 422, never anything else."""
    checks = [lambda: bodies.http_url(body.get("url"), "url"),
              lambda: bodies.url_list(body, "failover_urls"),
              lambda: bodies.metadata(body), lambda: bodies.headers(body),
              lambda: bodies.flag(body, "strict_live_ts"),
              lambda: bodies.optional_text(body, "user_agent"), lambda: bodies.events(body),
              lambda: bodies.number(body, "timeout", 10, 0.1, 300),
              lambda: bodies.integer(body, "retry_attempts", 3, 0, 10)]
    for check in checks:
        try:
            value = check()
        except ProxyError as exc:
            assert exc.status.startswith("422")
            continue
        if isinstance(value, dict):
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        if isinstance(value, str) and value.startswith("http"):
            assert value.split(":", 1)[0].lower() in ("http", "https")


def test_partial_views_count_the_same(world):
    """Listings that build no client objects (or only one stream's) count what the full view
    counts."""
    table, reader, store, hls, ts, _idle = world
    w0, w1 = table.writer(0), table.writer(1)
    h0, h1 = open_stream(w0, hls, STATE_ESTAB), open_stream(w1, hls, STATE_ESTAB)
    t0 = open_stream(w0, ts, STATE_ESTAB)
    for n in range(30):
        w, s = (w0, h0) if n % 2 else (w1, h1)
        c = open_client(w, s, hls.id, f"h{n % 10}", "10.1.0.1", "", "tv")  # 10 viewers, 3 slots each
        w.add_counts(c, 1000, 0, 1, 0)
        if n >= 27:
            w.set_state(c, STATE_CLOSED)
    for n in range(5):
        open_client(w0, t0, ts.id, f"t{n}", "10.2.0.1", "", "tv")
    full, none, one = read_live(reader), read_live(reader, False), read_live(reader, hls.id)
    streams = list_streams(store)
    for s in streams:
        views = [stream_view(s, v) for v in (full, none, one)]
        assert views[0] == views[1] == views[2]
    assert stream_view(hls, full)["client_count"] == 10
    assert stream_view(ts, none)["client_count"] == 5
    assert none.clients == {} and set(one.clients) == {f"h{i}" for i in range(10)}
    assert one.clients["h0"].workers == 3 and one.clients["h0"].bytes_out == 3000
