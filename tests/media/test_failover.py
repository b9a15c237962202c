"""Failover with real origin processes: the primary is killed mid-stream, viewers stay connected
and move to the backup within 3 s, a webhook says so; manual switch; return to the primary."""
from __future__ import annotations

import time

import pytest
from fastpath.media.ts_packets import scan_packets

from fastpath.shm import KIND_MEDIA_STREAM
from fastpath.store import StateStore, media_store
from tests.media.support import (
    LiveReader,
    OriginProcess,
    WebhookReceiver,
    add_webhook,
    command,
    media_get,
    media_node,
    register,
)
from tests.media.test_live import slots, wait_until


@pytest.fixture
def hooks():
    with WebhookReceiver() as w:
        yield w


def stream_slot(node, sid):
    found = [s for s in slots(node, KIND_MEDIA_STREAM) if s["key"] == sid]
    return found[0] if found else None


def test_killing_the_primary_moves_every_viewer_to_the_backup(tmp_path, media_dir, hooks):
    primary = OriginProcess(media_dir).start()
    backup = OriginProcess(media_dir).start()
    try:
        with media_node(tmp_path, {"returnToPrimary": False}) as node:
            add_webhook(node, hooks.url, ["failover_triggered", "stream_started"])
            sid = register(node, primary.base + "/live/stream.ts",
                           failover_urls=[backup.base + "/live/stream.ts"])
            viewers = [LiveReader(node.media_port, f"/stream/{sid}") for _ in range(5)]
            wait_until(lambda: all(len(v.body) > 100_000 for v in viewers))
            hooks.wait_for("stream_started")
            assert backup.stats()["live_connections"] == 0
            killed_at = time.monotonic()
            primary.kill()
            wait_until(lambda: backup.stats()["live_connections"] == 1, 5)
            time.sleep(2.5)
            for v in viewers:
                assert not v.closed, "viewers stay connected through the switch"
                gap = v.max_gap(killed_at - 0.5)
                assert gap < 3.0, f"gap of {gap:.2f}s"
                print(f"failover gap {gap:.3f}s")
                assert any(t > killed_at + 1.0 for t, _ in v.times), "bytes keep coming after the switch"
                assert scan_packets(bytes(v.body))[1] > 1000
            event = hooks.wait_for("failover_triggered")[0]
            assert event["stream_id"] == sid
            assert event["data"]["to_url"] == backup.base + "/live/stream.ts"
            # m3u-proxy's keys: index into failover_urls, old/new URL, attempt, viewers.
            assert event["data"]["new_url"] == backup.base + "/live/stream.ts"
            assert event["data"]["old_url"] == primary.base + "/live/stream.ts"
            assert event["data"]["failover_index"] == 0 and event["data"]["url_index"] == 1
            assert event["data"]["attempt_number"] == 1 and event["data"]["client_count"] == 5
            assert set(event) == {"event_id", "event_type", "stream_id", "timestamp", "data"}
            st = stream_slot(node, sid)
            assert st["extra"][0] == 1 and st["extra"][1] >= 1 and st["extra"][2] > 0
            assert st["text_b"] == backup.base + "/live/stream.ts"
            assert st["rx_packets"] >= 1
            stored = media_store.get_stream(StateStore(node.data_dir / "state.db"), sid)
            assert stored.failover_index == 1 and stored.failover_attempts >= 1
            for v in viewers:
                v.close()
    finally:
        primary.kill()
        backup.kill()


def test_manual_failover_and_return_to_the_recovered_primary(tmp_path, media_dir, hooks):
    primary = OriginProcess(media_dir).start()
    backup = OriginProcess(media_dir).start()
    try:
        with media_node(tmp_path, {"primaryRecheck": "1s"}) as node:
            add_webhook(node, hooks.url, ["failover_triggered"])
            sid = register(node, primary.base + "/live/stream.ts",
                           failover_urls=[backup.base + "/live/stream.ts"], strict_live_ts=True)
            viewer = LiveReader(node.media_port, f"/stream/{sid}")
            wait_until(lambda: len(viewer.body) > 50_000)
            # The control face writes the index, then tells the workers.
            media_store.record_failover(StateStore(node.data_dir / "state.db"), sid, 1)
            result = command(node, "media_failover", {"stream_id": sid, "index": 1})
            assert result == [{"active_clients": 1}]
            wait_until(lambda: backup.stats()["live_connections"] == 1, 5)
            assert hooks.wait_for("failover_triggered")[0]["data"]["reason"] == "manual failover"
            # On the backup, the primary is probed and taken back (returnToPrimary, 1 s here).
            connections = primary.stats()["live_connections"]
            wait_until(lambda: primary.stats()["live_connections"] >= connections + 2, 8)
            wait_until(lambda: stream_slot(node, sid)["extra"][0] == 0, 5)
            assert not viewer.closed
            size = len(viewer.body)
            wait_until(lambda: len(viewer.body) > size + 50_000, 5)
            viewer.close()
    finally:
        primary.kill()
        backup.kill()


def test_hls_playlist_fails_over_to_the_backup(tmp_path, media_dir, hooks):
    primary = OriginProcess(media_dir).start()
    backup = OriginProcess(media_dir).start()
    try:
        with media_node(tmp_path) as node:
            add_webhook(node, hooks.url, ["failover_triggered"])
            sid = register(node, primary.base + "/hls/master.m3u8",
                           failover_urls=[backup.base + "/hls/master.m3u8"])
            master = media_get(node, f"/hls/{sid}/playlist.m3u8").text
            variant = next(u for u in master.splitlines() if u.startswith("playlist.m3u8"))
            assert media_get(node, f"/hls/{sid}/{variant}").status == 200
            primary.kill()
            time.sleep(1.2)       # the cached media playlist expires (target duration 1 s)
            # The viewer's variant reference names the primary; it is served from the backup.
            r = media_get(node, f"/hls/{sid}/{variant}")
            assert r.status == 200, r.body
            seg = next(u for u in r.text.splitlines() if u.startswith("segment"))
            assert media_get(node, f"/hls/{sid}/{seg}").status == 200
            assert backup.stats()["requests"].get("/hls/playlist.m3u8", 0) >= 1
            data = hooks.wait_for("failover_triggered")[0]["data"]
            assert data["failover_index"] == 0 and data["url_index"] == 1
    finally:
        primary.kill()
        backup.kill()


def test_a_stalled_primary_is_left_within_the_stall_timeout(tmp_path, media_dir):
    primary = OriginProcess(media_dir).start()
    backup = OriginProcess(media_dir).start()
    try:
        with media_node(tmp_path, {"returnToPrimary": False, "stallTimeout": "1s"}) as node:
            sid = register(node, primary.base + "/live/stream.ts?stall=2",
                           failover_urls=[backup.base + "/live/stream.ts"])
            viewer = LiveReader(node.media_port, f"/stream/{sid}")
            wait_until(lambda: backup.stats()["live_connections"] == 1, 8)
            time.sleep(1.5)
            assert not viewer.closed
            first = viewer.times[0][0]
            gap = viewer.max_gap(first)
            assert gap < 3.0, f"gap of {gap:.2f}s"
            assert primary.stats()["live_connections"] == 1
            viewer.close()
    finally:
        primary.kill()
        backup.kill()


@pytest.mark.parametrize("sticky", [True, False])
def test_sticky_sessions_keep_the_redirect_target(tmp_path, media_dir, sticky):
    with OriginProcess(media_dir) as origin, media_node(tmp_path) as node:
        sid = register(node, origin.base + "/redirect/stream.ts", sticky=sticky)
        viewer = LiveReader(node.media_port, f"/stream/{sid}")
        wait_until(lambda: len(viewer.body) > 20_000)
        # Reconnect the upstream (a switch to the URL it is on).
        assert command(node, "media_failover", {"stream_id": sid, "index": 0}) == [{"active_clients": 1}]
        wait_until(lambda: origin.stats()["live_connections"] == 2, 5)
        requests = origin.stats()["requests"]
        # Sticky: the second connection went straight to the final URL, not through the redirect.
        assert requests["/redirect/stream.ts"] == (1 if sticky else 2)
        assert not viewer.closed
        viewer.close()
