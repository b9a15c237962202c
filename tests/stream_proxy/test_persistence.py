"""Streams (with their failover state) and webhooks live in the state store: a restarted node
answers the same."""
from __future__ import annotations

import pytest

from tests.stream_proxy.conftest import media_node

pytestmark = pytest.mark.integration


def test_streams_and_webhooks_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    first = media_node(tmp_path / "a", data_dir=data)
    (tmp_path / "a").mkdir()
    with first:
        hls = first.post("/streams", {"url": "http://p.example/ch.m3u8",
                                      "failover_urls": ["http://b.example/ch.m3u8"],
                                      "user_agent": "UA/1", "strict_live_ts": True,
                                      "use_sticky_session": True,
                                      "metadata": {"tvg": "c1"}}).json()["stream_id"]
        first.post(f"/streams/{hls}/failover")
        ts = first.post("/transcode", {"url": "http://p.example/src.ts", "profile": "hq",
                                       "profile_variables": {"crf": 28}}).json()["stream_id"]
        first.post("/webhooks", {"url": "http://127.0.0.1:9/persist", "events": ["stream_error"],
                                 "timeout": 3, "retry_attempts": 2})
        before = {s["stream_id"]: s for s in first.get("/streams").json()["streams"]}
        hooks_before = first.get("/webhooks").json()
    second = media_node(tmp_path / "b", data_dir=data)
    (tmp_path / "b").mkdir()
    with second:
        after = {s["stream_id"]: s for s in second.get("/streams").json()["streams"]}
        assert set(after) == set(before) == {hls, ts}
        for sid, now in after.items():
            assert now == before[sid]
        s = after[hls]
        assert s["current_failover_index"] == 0 and s["url_index"] == 1
        assert s["current_url"] == "http://b.example/ch.m3u8"
        assert s["failover_attempts"] == 1 and s["strict_live_ts"] and s["use_sticky_session"]
        assert after[ts]["profile_variables"] == {"crf": "28"}
        assert second.get("/webhooks").json() == hooks_before
        # Dedup holds across the restart, too.
        again = second.post("/streams", {"url": "http://p.example/ch.m3u8"}).json()
        assert again["stream_id"] == hls
