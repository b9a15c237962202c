"""Viewer identity (client ids, trusted proxies) and stream type detection from content."""
from __future__ import annotations

import ipaddress

from fastpath.media.config import parse_media_config
from fastpath.media.tracking import client_identity, make_client_id
from fastpath.store import StateStore, media_store
from tests.media.support import (
    LiveReader,
    OriginProcess,
    media_get,
    media_node,
    register,
)
from tests.media.test_live import wait_until


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    settings = parse_media_config({"trustedProxies": ["10.0.0.0/8", "127.0.0.1"]})
    assert settings.trusted_proxies[0] == ipaddress.ip_network("10.0.0.0/8")
    headers = {"x-forwarded-for": "203.0.113.9, 10.1.1.1", "user-agent": "vlc", "x-username": "ann"}
    assert client_identity(settings, "10.2.3.4", headers, {}) == ("203.0.113.9", "ann", "vlc")
    assert client_identity(settings, "198.51.100.7", headers, {})[0] == "198.51.100.7"
    # A forged, non-address X-Forwarded-For from a trusted proxy falls back to the peer.
    assert client_identity(settings, "127.0.0.1", {"x-forwarded-for": "<script>"}, {})[0] == "127.0.0.1"
    # The username may come from the query.
    assert client_identity(settings, "1.2.3.4", {}, {"username": "bob"})[1] == "bob"


def test_client_ids_are_stable_short_and_keyed():
    a = make_client_id(b"k1", "s", "1.2.3.4", "vlc", "ann")
    assert a == make_client_id(b"k1", "s", "1.2.3.4", "vlc", "ann") and len(a) == 16
    assert a != make_client_id(b"k2", "s", "1.2.3.4", "vlc", "ann")
    assert a != make_client_id(b"k1", "s", "1.2.3.5", "vlc", "ann")
    assert a != make_client_id(b"k1", "s", "1.2.3.4", "vlc", "")


def test_a_direct_url_that_serves_a_playlist_becomes_hls(tmp_path, media_dir):
    with OriginProcess(media_dir) as origin, media_node(tmp_path) as node:
        sid = register(node, origin.base + "/hls/playlist.m3u8?as-direct", kind="direct")
        viewer = LiveReader(node.media_port, f"/stream/{sid}")
        wait_until(lambda: viewer.closed, 10)
        viewer.close()
        stored = media_store.get_stream(StateStore(node.data_dir / "state.db"), sid)
        assert stored.kind == "hls"
        r = media_get(node, f"/stream/{sid}")        # follows the 302 to the playlist
        assert r.status == 200 and r.text.startswith("#EXTM3U")
        assert "segment.ts?r=" in r.text


def test_lifecycle_webhooks_of_a_live_stream(tmp_path, media_dir):
    from tests.media.support import WebhookReceiver, add_webhook
    with WebhookReceiver() as hooks, OriginProcess(media_dir) as origin, media_node(tmp_path) as node:
        add_webhook(node, hooks.url, [])                       # every event
        sid = register(node, origin.base + "/live/stream.ts")
        viewer = LiveReader(node.media_port, f"/stream/{sid}", headers={"User-Agent": "hooked"})
        wait_until(lambda: len(viewer.body) > 20_000)
        viewer.close()
        stopped = hooks.wait_for("stream_stopped", 10)[0]     # after the linger time (2 s)
        assert stopped["stream_id"] == sid and stopped["data"]["bytes_served"] > 20_000
        started = hooks.of_type("stream_started")[0]
        connected = hooks.of_type("client_connected")[0]
        gone = hooks.wait_for("client_disconnected")[0]
        assert connected["data"]["user_agent"] == "hooked"
        assert gone["data"]["client_id"] == connected["data"]["client_id"]
        assert gone["data"]["bytes_served"] >= len(viewer.body)
        order = [e["body"]["event_type"] for e in hooks.events]
        assert order.index("stream_started") < order.index("stream_stopped")
        assert started["data"]["url"] == origin.base + "/live/stream.ts"
