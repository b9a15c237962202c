"""A node with two workers (SO_REUSEPORT spreads the viewers): stream, viewer and failover events
and the stored failover count are per node, not per worker."""
from __future__ import annotations

import time

import pytest

from fastpath.shm import KIND_MEDIA_STREAM
from fastpath.store import StateStore, media_store
from tests.media.support import (
    LiveReader,
    OriginProcess,
    add_webhook,
    command,
    media_get,
    media_node,
    register,
)
from tests.media.test_live import slots, wait_until

ALL = ["stream_started", "stream_stopped", "stream_failed", "client_connected",
       "client_disconnected", "failover_triggered"]


def stream_slots(node, sid):
    return [s for s in slots(node, KIND_MEDIA_STREAM) if s["key"] == sid]


def settles_at(count, expected: int, window: float = 1.5, deadline: float = 8.0) -> None:
    """``count()`` reaches ``expected`` within ``deadline`` and then stays there, checked every
    50 ms for ``window`` seconds: a duplicate (the other worker's copy of an event) fails at
    the poll that sees it instead of after a fixed sleep.  The window is needed because the
    absence of a late duplicate cannot be observed otherwise; it is longer than one webhook
    delivery round on loopback."""
    wait_until(lambda: count() >= expected, deadline)
    end = time.monotonic() + window
    while True:
        seen = count()
        assert seen == expected, f"expected {expected}, saw {seen}"
        if time.monotonic() >= end:
            return
        time.sleep(0.05)


def events(hooks, sid, kind):
    return [e for e in hooks.of_type(kind) if e["stream_id"] == sid]


def test_two_workers_fire_live_events_and_count_failovers_once(tmp_path, media_dir, hooks):
    primary = OriginProcess(media_dir).start()
    backup = OriginProcess(media_dir).start()
    viewers = []
    try:
        with media_node(tmp_path, {"returnToPrimary": False}, workers=2) as node:
            add_webhook(node, hooks.url, ALL)
            sid = register(node, primary.base + "/live/stream.ts",
                           failover_urls=[backup.base + "/live/stream.ts"])
            # Viewers until both workers relay the stream (each has its own upstream reader).
            while len(stream_slots(node, sid)) < 2 and len(viewers) < 40:
                viewers.append(LiveReader(node.media_port, f"/stream/{sid}",
                                          headers={"User-Agent": f"player-{len(viewers)}"}))
                wait_until(lambda: len(viewers[-1].body) > 0, 5)
            assert len(stream_slots(node, sid)) == 2, "viewers did not reach both workers"
            wait_until(lambda: primary.stats()["live_connections"] == 2, 5)
            wait_until(lambda: len(events(hooks, sid, "client_connected")) >= len(viewers), 5)
            primary.kill()
            # Both workers' readers see the primary die; both move to the backup.
            wait_until(lambda: backup.stats()["live_connections"] == 2, 8)
            settles_at(lambda: len(events(hooks, sid, "failover_triggered")), 1)
            store = StateStore(node.data_dir / "state.db")
            assert media_store.get_stream(store, sid).failover_attempts == 1
            assert sum(s["extra"][1] for s in stream_slots(node, sid)) == 1
            assert all(s["extra"][0] == 1 for s in stream_slots(node, sid))
            # A manual switch: the control face counts it, then tells every worker.
            primary.start()
            media_store.record_failover(store, sid, 0)
            result = command(node, "media_failover", {"stream_id": sid, "index": 0})
            assert sum(r["active_clients"] for r in result) == len(viewers)
            wait_until(lambda: primary.stats()["live_connections"] == 2, 8)
            settles_at(lambda: len(events(hooks, sid, "failover_triggered")), 2)
            assert media_store.get_stream(store, sid).failover_attempts == 2
            assert len(events(hooks, sid, "stream_started")) == 1
            assert len(events(hooks, sid, "client_connected")) == len(viewers)
            for v in viewers:
                v.close()
            hooks.wait_for("stream_stopped", 10)            # after the linger time (2 s)
            settles_at(lambda: len(events(hooks, sid, "client_disconnected")), len(viewers))
            settles_at(lambda: len(events(hooks, sid, "stream_stopped")), 1, window=0.5)
    finally:
        for v in viewers:
            v.close()
        primary.kill()
        backup.kill()


def test_two_workers_connect_an_hls_viewer_once(tmp_path, media_dir, hooks):
    with OriginProcess(media_dir) as origin, \
            media_node(tmp_path, {"clientTimeout": "1.5s"}, workers=2) as node:
        add_webhook(node, hooks.url, ALL)
        sid = register(node, origin.base + "/hls/playlist.m3u8")
        # One viewer (one identity), a fresh connection per request, until both workers saw it.
        for _ in range(40):
            text = media_get(node, f"/hls/{sid}/playlist.m3u8", headers={"User-Agent": "tv"}).text
            assert text.startswith("#EXTM3U")
            if len(stream_slots(node, sid)) == 2:
                break
        assert len(stream_slots(node, sid)) == 2, "requests did not reach both workers"
        settles_at(lambda: len(events(hooks, sid, "client_connected")), 1)
        settles_at(lambda: len(events(hooks, sid, "stream_started")), 1, window=0.5)
        settles_at(lambda: len(events(hooks, sid, "client_disconnected")), 1)
