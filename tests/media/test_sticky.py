"""``use_sticky_session``: the relay keeps the redirect target while it works and goes back to
the URL it was given when it fails; an HLS viewer keeps the variant it started on."""
from __future__ import annotations

import time

import pytest

from tests.media.support import (
    LiveReader,
    OriginProcess,
    command,
    media_get,
    media_node,
    register,
)
from tests.media.test_live import wait_until


def test_a_failed_redirect_target_sends_the_relay_back_to_the_original_url(tmp_path, media_dir):
    balancer = OriginProcess(media_dir).start()
    target = OriginProcess(media_dir).start()
    try:
        with media_node(tmp_path) as node:
            # The first request is sent to the other origin, later ones to the balancer's own.
            url = f"{balancer.base}/redirect/stream.ts?to={target.base}/live/stream.ts"
            sid = register(node, url, sticky=True)
            viewer = LiveReader(node.media_port, f"/stream/{sid}")
            wait_until(lambda: target.stats()["live_connections"] == 1, 5)
            wait_until(lambda: len(viewer.body) > 20_000)
            # While the target works the relay stays on it: a reconnect skips the redirect.
            assert command(node, "media_failover", {"stream_id": sid, "index": 0}) == [{"active_clients": 1}]
            wait_until(lambda: target.stats()["live_connections"] == 2, 5)
            assert balancer.stats()["requests"]["/redirect/stream.ts"] == 1
            target.kill()
            # The target is gone: back to the URL we were given, which redirects elsewhere now.
            wait_until(lambda: balancer.stats()["live_connections"] == 1, 6)
            assert balancer.stats()["requests"]["/redirect/stream.ts"] == 2
            size = len(viewer.body)
            wait_until(lambda: len(viewer.body) > size + 50_000, 5)
            assert not viewer.closed
            viewer.close()
    finally:
        balancer.kill()
        target.kill()


def variant_requests(origin) -> int:
    return origin.stats()["requests"].get("/hls/playlist.m3u8", 0)


@pytest.mark.parametrize("sticky", [True, False])
def test_an_hls_viewer_keeps_its_variant_while_it_works(tmp_path, media_dir, sticky):
    primary = OriginProcess(media_dir).start()
    backup = OriginProcess(media_dir).start()
    try:
        with media_node(tmp_path) as node:
            sid = register(node, primary.base + "/hls/master.m3u8",
                           failover_urls=[backup.base + "/hls/master.m3u8"], sticky=sticky)
            master = media_get(node, f"/hls/{sid}/playlist.m3u8").text
            variant = next(u for u in master.splitlines() if u.startswith("playlist.m3u8"))
            assert media_get(node, f"/hls/{sid}/{variant}").status == 200
            # The operator moves the stream to the backup.
            assert command(node, "media_failover", {"stream_id": sid, "index": 1}) == [{"active_clients": 1}]
            time.sleep(1.2)             # the cached media playlist expires (target duration 1 s)
            before = variant_requests(primary), variant_requests(backup)
            r = media_get(node, f"/hls/{sid}/{variant}")
            assert r.status == 200, r.body
            after = variant_requests(primary), variant_requests(backup)
            if sticky:
                # The viewer's variant still works: it stays on it.
                assert after == (before[0] + 1, before[1])
            else:
                assert after == (before[0], before[1] + 1)
            # New viewers start on the backup either way.
            assert media_get(node, f"/hls/{sid}/playlist.m3u8").status == 200
            assert backup.stats()["requests"].get("/hls/master.m3u8", 0) >= 1
            primary.kill()
            time.sleep(1.2)
            # Its variant is gone: the same slot of the backup, no error for the viewer.
            r = media_get(node, f"/hls/{sid}/{variant}")
            assert r.status == 200, r.body
            seg = next(u for u in r.text.splitlines() if u.startswith("segment"))
            assert media_get(node, f"/hls/{sid}/{seg}").status == 200
    finally:
        primary.kill()
        backup.kill()
