"""The control face with the data plane: real viewers through the node's media port raise the
figures the API reports, and the API's actions (disconnect, delete, failover) reach them."""
from __future__ import annotations

import urllib.request
from urllib.parse import urljoin

import pytest

from fastpath.config import load_config
from fastpath.shm import KIND_MEDIA_CLIENT, KIND_MEDIA_STREAM, CounterTable, scan_slots
from tests.stream_proxy.conftest import media_node
from tests.stream_proxy.viewers import Viewer, wait_until

pytestmark = pytest.mark.integration

# The media data plane is part of this tree: a broken import fails here, it is not skipped.
import fastpath.media.service  # noqa: E402,F401


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    with media_node(tmp_path_factory.mktemp("e2e"), media={"clientTimeout": "2s",
                                                           "stallTimeout": "2s"}) as n:
        yield n


def test_a_viewer_shows_in_the_figures_and_can_be_disconnected(relay, origin):
    created = relay.post("/streams", {"url": origin.base + "/chan1.ts",
                                      "metadata": {"group": "e2e"}}).json()
    sid = created["stream_id"]
    # As an m3u-proxy client does: its base URL (here the media listener) + the relative path.
    viewer = Viewer(relay.media_url + created["direct_url"], {"User-Agent": "e2e-player/1", "X-Username": "carol"})

    def one_client():
        s = relay.get(f"/streams/{sid}").json()
        return s if s["client_count"] == 1 and s["stream"]["total_bytes_served"] > 0 else None

    s = wait_until(one_client, what="client_count 1 with bytes")
    assert s["stream"]["is_active"] and s["stream"]["upstream_state"] in ("reading", "connecting")
    client = s["clients"][0]
    assert client["ip_address"] == "127.0.0.1" and client["username"] == "carol"
    assert client["user_agent"] == "e2e-player/1" and client["is_connected"] is True
    cid = client["client_id"]
    assert relay.get(f"/clients/{cid}").json()["stream_id"] == sid
    # The client's bytes are the viewer's bytes (as far as both have got).
    wait_until(lambda: relay.get(f"/clients/{cid}").json()["bytes_served"] >= 100_000,
               what="100 kB served")
    assert viewer.bytes > 0
    stats = relay.get("/stats").json()
    assert stats["active_clients"] >= 1 and stats["active_streams"] >= 1
    assert any(c["client_id"] == cid for c in stats["clients"])
    match = relay.get("/streams/by-metadata?field=group&value=e2e").json()
    assert match["total_matching"] == 1 and match["total_clients"] == 1
    health = relay.get("/health").json()
    assert health["active_clients"] >= 1 and health["total_bytes_served"] > 0
    perf = next(p for p in relay.get("/stats/performance").json()["performance_metrics"]["streams"]
                if p["stream_id"] == sid)
    assert perf["upstream_connections"] == 1 and perf["bytes_in"] > 0
    assert perf["throughput_out_bps"] and perf["throughput_out_bps"] > 0
    assert origin.requests["/chan1.ts"] == 1  # one upstream fetch

    # The API's figures are the node's shared-memory slots: read them directly (read-only,
    # as the control process does) before and after, and the API's answer lies in between.
    table = CounterTable.attach(load_config(relay.config_path, relay.data_dir).counter_segment_path,
                                readonly=True)
    try:
        def slot_bytes():
            recs = scan_slots(table, [KIND_MEDIA_STREAM, KIND_MEDIA_CLIENT])
            stream_tx = sum(r["tx"] for r in recs if r["kind"] == KIND_MEDIA_STREAM and r["key"] == sid)
            client_tx = sum(r["tx"] for r in recs if r["kind"] == KIND_MEDIA_CLIENT and r["key"] == cid)
            return stream_tx, client_tx
        lo = slot_bytes()
        api_stream = relay.get(f"/streams/{sid}").json()["stream"]["total_bytes_served"]
        api_client = relay.get(f"/clients/{cid}").json()["bytes_served"]
        hi = slot_bytes()
        assert lo[0] <= api_stream <= hi[0] and lo[1] <= api_client <= hi[1], (lo, api_stream, api_client, hi)
        assert hi[0] >= hi[1] > 0  # the viewer's bytes are also its stream's
    finally:
        table.close()

    r = relay.request("DELETE", f"/hls/{sid}/clients/{cid}")
    assert r.status == 200 and r.json()["message"] == f"Client {cid} disconnected"
    assert r.json()["closed"] == 1
    assert viewer.ended.wait(10), "the disconnected viewer's response did not end"
    wait_until(lambda: relay.get(f"/clients/{cid}").status == 404, what="client gone")
    relay.request("DELETE", f"/streams/{sid}")


def test_deleting_a_stream_ends_its_viewers(relay, origin):
    sid = relay.post("/streams", {"url": origin.base + "/chan2.ts"}).json()["stream_id"]
    viewers = [Viewer(f"{relay.media_url}/stream/{sid}", {"User-Agent": f"v{i}"}) for i in range(3)]
    wait_until(lambda: relay.get(f"/streams/{sid}").json()["client_count"] == 3, what="3 clients")
    assert relay.request("DELETE", f"/streams/{sid}").status == 200
    for v in viewers:
        assert v.ended.wait(10), "a viewer of the deleted stream is still served"
    r = urllib.request.Request(f"{relay.media_url}/stream/{sid}")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(r, timeout=5)
    assert err.value.code == 404


def test_manual_failover_moves_connected_viewers(relay, origin):
    primary, backup = origin.base + "/fo-primary.ts", origin.base + "/fo-backup.ts"
    sid = relay.post("/streams", {"url": primary, "failover_urls": [backup]}).json()["stream_id"]
    viewer = Viewer(f"{relay.media_url}/stream/{sid}")
    wait_until(lambda: relay.get(f"/streams/{sid}").json()["stream"]["total_bytes_served"] > 0,
               what="bytes before failover")
    r = relay.post(f"/streams/{sid}/failover").json()
    assert r["new_url"] == backup and r["failover_index"] == 0 and r["url_index"] == 1 and r["active_clients"] == 1
    wait_until(lambda: origin.requests["/fo-backup.ts"] >= 1, what="backup fetched")
    before = viewer.bytes
    wait_until(lambda: viewer.bytes > before + 50_000, what="bytes after failover")
    assert not viewer.ended.is_set()
    s = relay.get(f"/streams/{sid}").json()["stream"]
    assert s["current_url"] == backup and s["failover_attempts"] >= 1
    perf = relay.get("/stats/detailed").json()
    assert perf["failover_stats"]["total_failovers"] >= 1
    viewer.stop = True
    relay.request("DELETE", f"/streams/{sid}")


def test_hls_viewers_segments_and_cache_hits(relay, origin):
    created = relay.post("/streams", {"url": origin.base + "/hls/index.m3u8"}).json()
    sid = created["stream_id"]
    playlist_url = relay.media_url + created["playlist_url"]

    def fetch(url, agent):
        req = urllib.request.Request(url, headers={"User-Agent": agent})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read()

    segments = 0
    for agent in ("hls-a", "hls-b"):
        text = fetch(playlist_url, agent).decode()
        uris = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert uris
        for uri in uris[:3]:
            full = urljoin(playlist_url, uri)
            assert full.startswith(f"{relay.media_url}/hls/{sid}/")
            assert fetch(full, agent)[:1] == b"\x47"
            segments += 1
    clients = wait_until(lambda: [c for c in relay.get("/clients").json()["clients"]
                                  if c["stream_id"] == sid and c["segments_served"] >= 3] or None,
                         what="two HLS clients with 3 segments each")
    assert {c["user_agent"] for c in relay.get(f"/streams/{sid}").json()["clients"]} == {"hls-a", "hls-b"}
    assert all(c["segments_served"] == 3 for c in clients)
    s = relay.get(f"/streams/{sid}").json()["stream"]
    assert s["total_segments_served"] == segments and s["stream_type"] == "HLS"
    perf = next(p for p in relay.get("/stats/performance").json()["performance_metrics"]["streams"]
                if p["stream_id"] == sid)
    # The second viewer's three segments came from the cache.
    assert perf["cache_hits"] >= 3 and perf["cache_hit_rate"] >= 0.5
    assert origin.requests["/hls/seg000.ts"] == 1
    # Idle HLS viewers expire (clientTimeout 2 s here).
    wait_until(lambda: not [c for c in relay.get("/clients").json()["clients"]
                            if c["stream_id"] == sid and c["is_connected"]], timeout=15,
               what="idle HLS clients expired")
    relay.request("DELETE", f"/streams/{sid}")


def test_one_hls_viewer_is_one_client_across_two_workers(tmp_path, origin):
    """Each request on a new connection may land on either worker; the viewer is still one
    client, with every segment counted once."""
    with media_node(tmp_path, workers=2) as node:
        created = node.post("/streams", {"url": origin.base + "/hls/index.m3u8"}).json()
        sid, playlist_url = created["stream_id"], node.media_url + created["playlist_url"]
        fetched = 0
        for _ in range(2):
            req = urllib.request.Request(playlist_url, headers={"User-Agent": "two-workers",
                                                                "X-Username": "dave"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                text = resp.read().decode()
            for uri in [u for u in text.splitlines() if u and not u.startswith("#")][:3]:
                seg = urllib.request.Request(urljoin(playlist_url, uri), headers={
                    "User-Agent": "two-workers", "X-Username": "dave"})
                with urllib.request.urlopen(seg, timeout=10) as resp:
                    resp.read()
                fetched += 1
        clients = wait_until(
            lambda: [c for c in node.get("/clients").json()["clients"]
                     if c["stream_id"] == sid and c["segments_served"] == fetched] or None,
            what=f"one client with {fetched} segments")
        assert len(clients) == 1 and clients[0]["username"] == "dave"
        assert node.get(f"/streams/{sid}").json()["client_count"] == 1
        assert node.get(f"/streams/{sid}").json()["stream"]["total_segments_served"] == fetched
