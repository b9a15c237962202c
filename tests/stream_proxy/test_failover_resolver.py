"""m3u-proxy's ``failover_resolver_url`` on a real node: a real HTTP resolver on loopback records
what the node asks and answers ``next_url``; a real origin's stream dies under a curl viewer.

What is checked: the request m3u-proxy sends (``{current_url, metadata,
current_failover_index}``), the move to the answer with the viewer still receiving, the
fallback to ``failover_urls`` when the resolver is down or answers an address the outbound rule
refuses (with a log line saying why), the manual failover through the resolver, and 422s for
bad values with nothing stored.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from urllib.parse import urljoin

import pytest

from tests.stream_proxy.conftest import media_node
from tests.stream_proxy.origin import Origin
from tests.stream_proxy.receiver import Receiver
from tests.stream_proxy.resolver import Resolver
from tests.stream_proxy.viewers import wait_until
from tests.support.node import free_tcp_port, http

pytestmark = pytest.mark.integration

# The media data plane is part of this tree: a broken import fails here, it is not skipped.
import fastpath.media.service  # noqa: E402,F401


class CurlViewer:
    """``curl -N`` reading a continuous stream into a file, as a player would."""

    def __init__(self, url: str, path):
        self.path = path
        self.proc = subprocess.Popen(["curl", "-s", "-N", "--max-time", "120", "-o", str(path), url])

    def size(self) -> int:
        return os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def running(self) -> bool:
        return self.proc.poll() is None

    def close(self):
        self.proc.terminate()
        self.proc.wait(5)


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    # returnToPrimary off: the dead primary is not probed, so the switch is the only move.
    with media_node(tmp_path_factory.mktemp("resolver"),
                    media={"stallTimeout": "2s", "returnToPrimary": False}) as n:
        yield n


@pytest.fixture
def resolver():
    r = Resolver()
    yield r
    r.close()


def full_log(node) -> str:
    return node.log_path.read_text(errors="replace")


def stream_of(relay, sid) -> dict:
    r = relay.get(f"/streams/{sid}")
    assert r.status == 200, r.text
    return r.json()["stream"]


def watch_until_switched(relay, origin, tmp_path, sid, primary: str, target: str) -> CurlViewer:
    """A curl viewer on the stream; the primary dies once bytes flow; the node must then read
    ``target`` while the same viewer keeps receiving."""
    viewer = CurlViewer(f"{relay.media_url}/stream/{sid}", tmp_path / f"{sid}.ts")
    wait_until(lambda: viewer.size() > 100_000, 15, "bytes before the failure")
    origin.down.add(primary)
    wait_until(lambda: origin.requests[target] >= 1, 15, f"a request for {target}")
    size = viewer.size()
    wait_until(lambda: viewer.size() > size + 200_000, 15, "bytes after the switch")
    assert viewer.running(), "the viewer stays connected through the switch"
    return viewer


def test_the_upstream_dies_and_the_node_moves_to_the_resolvers_answer(relay, origin, resolver, tmp_path):
    resolver.answer = {"next_url": origin.base + "/res-next.ts"}
    meta = {"channel": "7", "playlist_uuid": "acct-r"}
    r = relay.post("/streams", {"url": origin.base + "/res-primary.ts", "metadata": meta,
                                "failover_resolver_url": resolver.url})
    assert r.status == 200, r.text
    sid = r.json()["stream_id"]
    before = stream_of(relay, sid)
    assert before["failover_resolver_url"] == resolver.url and before["has_failover"] is True
    assert before["failover_urls"] == [] and before["current_failover_index"] == 0
    viewer = watch_until_switched(relay, origin, tmp_path, sid, "/res-primary.ts", "/res-next.ts")
    try:
        # m3u-proxy's request: the failing URL, the metadata, its index; JSON, one call.
        assert resolver.bodies()[0] == {"current_url": origin.base + "/res-primary.ts",
                                        "metadata": meta, "current_failover_index": 0}
        assert resolver.calls[0]["content_type"].startswith("application/json")
        assert resolver.calls[0]["path"] == "/api/failover"
        now = stream_of(relay, sid)
        assert now["current_url"] == origin.base + "/res-next.ts"
        assert now["original_url"] == origin.base + "/res-primary.ts"
        assert now["current_failover_index"] == 1          # m3u-proxy adds 1 per answer
        assert now["failover_attempts"] >= 1 and now["last_failover_time"]
        assert now["failover_urls"] == []                  # the answer is not a list entry
        # A second failure asks again, from the answer, with index 1.
        resolver.answer = {"next_url": origin.base + "/res-third.ts"}
        origin.down.add("/res-next.ts")
        wait_until(lambda: origin.requests["/res-third.ts"] >= 1, 15, "the second answer used")
        assert resolver.bodies()[1] == {"current_url": origin.base + "/res-next.ts",
                                        "metadata": meta, "current_failover_index": 1}
        size = viewer.size()
        wait_until(lambda: viewer.size() > size + 200_000, 15, "bytes after the second switch")
        assert viewer.running()
        assert stream_of(relay, sid)["current_url"] == origin.base + "/res-third.ts"
        assert stream_of(relay, sid)["current_failover_index"] == 2
    finally:
        viewer.close()
        relay.request("DELETE", f"/streams/{sid}")


def test_a_resolver_that_is_down_falls_back_to_failover_urls(relay, origin, tmp_path):
    port = free_tcp_port()          # nothing listens there
    sid = relay.post("/streams", {"url": origin.base + "/down-primary.ts",
                                  "failover_urls": [origin.base + "/down-backup.ts"],
                                  "failover_resolver_url": f"http://127.0.0.1:{port}/next"}).json()["stream_id"]
    viewer = watch_until_switched(relay, origin, tmp_path, sid, "/down-primary.ts", "/down-backup.ts")
    try:
        assert stream_of(relay, sid)["current_url"] == origin.base + "/down-backup.ts"
        wait_until(lambda: f"failover resolver 127.0.0.1:{port} cannot be reached" in full_log(relay),
                   5, "a log line about the resolver")
    finally:
        viewer.close()
        relay.request("DELETE", f"/streams/{sid}")


@pytest.mark.parametrize("answer, why", [
    ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
    ("http://0.0.0.0:80/x.ts", "the unspecified address"),
])
def test_a_refused_next_url_is_not_fetched(relay, origin, resolver, tmp_path, answer, why):
    resolver.answer = {"next_url": answer}
    name = why.split()[1]
    sid = relay.post("/streams", {"url": origin.base + f"/ref-{name}.ts",
                                  "failover_urls": [origin.base + f"/ref-{name}-backup.ts"],
                                  "failover_resolver_url": resolver.url}).json()["stream_id"]
    viewer = watch_until_switched(relay, origin, tmp_path, sid, f"/ref-{name}.ts", f"/ref-{name}-backup.ts")
    try:
        assert resolver.bodies(), "the resolver was asked"
        now = stream_of(relay, sid)
        assert now["current_url"] == origin.base + f"/ref-{name}-backup.ts"
        assert answer not in json.dumps(now)
        wait_until(lambda: f"answered next_url {answer}, refused" in full_log(relay) and why in full_log(relay),
                   5, "a log line about the refused answer")
    finally:
        viewer.close()
        relay.request("DELETE", f"/streams/{sid}")


def test_an_hls_stream_asks_the_resolver_when_its_playlist_fails(relay, origin, resolver):
    other = Origin(origin.media)
    resolver.answer = {"next_url": other.base + "/hls/index.m3u8"}
    sid = relay.post("/streams", {"url": origin.base + "/hls/index.m3u8?res=1",
                                  "failover_resolver_url": resolver.url}).json()["stream_id"]
    playlist = f"{relay.media_url}/hls/{sid}/playlist.m3u8"
    try:
        # The primary's playlist fails (a VOD playlist would be served from the cache for
        # long, so it fails before the first fetch): the viewer's request waits for the answer.
        origin.down.add("/hls/index.m3u8")
        r = http("GET", playlist)
        assert r.status == 200 and "#EXTINF" in r.text, r.text
        assert other.requests["/hls/index.m3u8"] >= 1
        assert resolver.bodies()[0] == {"current_url": origin.base + "/hls/index.m3u8?res=1",
                                        "metadata": {}, "current_failover_index": 0}
        segment = next(line for line in r.text.splitlines() if line and not line.startswith("#"))
        seg = http("GET", urljoin(playlist, segment))
        assert seg.status == 200 and seg.body[:1] == b"\x47"
        assert stream_of(relay, sid)["current_url"] == other.base + "/hls/index.m3u8"
    finally:
        origin.down.discard("/hls/index.m3u8")
        other.close()
        relay.request("DELETE", f"/streams/{sid}")


def test_manual_failover_asks_the_resolver(relay, origin, resolver):
    resolver.answer = {"next_url": origin.base + "/manual-next.ts"}
    meta = {"id": "42"}
    sid = relay.post("/streams", {"url": origin.base + "/manual.ts", "metadata": meta,
                                  "failover_resolver_url": resolver.url}).json()["stream_id"]
    try:
        # Allowed without failover_urls (m3u-proxy's rule: a resolver is a failover mechanism).
        r = relay.post(f"/streams/{sid}/failover")
        assert r.status == 200, r.text
        out = r.json()
        assert out["new_url"] == origin.base + "/manual-next.ts" and out["failover_index"] == 1
        assert out["failover_attempts"] == 1
        assert resolver.bodies() == [{"current_url": origin.base + "/manual.ts", "metadata": meta,
                                      "current_failover_index": 0}]
        assert stream_of(relay, sid)["current_url"] == origin.base + "/manual-next.ts"
        # An empty answer with no failover_urls to walk: the node says so (502), nothing moves.
        resolver.answer = {"next_url": None}
        r = relay.post(f"/streams/{sid}/failover")
        assert r.status == 502 and "no failover_urls" in r.json()["detail"], r.text
        assert stream_of(relay, sid)["current_url"] == origin.base + "/manual-next.ts"
        # A resolver that fails: the same.
        resolver.status = 500
        assert relay.post(f"/streams/{sid}/failover").status == 502
        wait_until(lambda: "answered HTTP 500" in full_log(relay), 5, "a log line about the 500")
    finally:
        relay.request("DELETE", f"/streams/{sid}")


def test_manual_failovers_move_a_watched_stream_to_each_new_answer(relay, origin, resolver, tmp_path):
    """The second answer lands on the index the relay is already on (the resolver's slot): the
    relay still reconnects, to the new URL, and the viewer keeps receiving."""
    sid = relay.post("/streams", {"url": origin.base + "/mw.ts",
                                  "failover_resolver_url": resolver.url}).json()["stream_id"]
    viewer = CurlViewer(f"{relay.media_url}/stream/{sid}", tmp_path / "mw.ts")
    try:
        wait_until(lambda: viewer.size() > 100_000, 15, "bytes from the primary")
        for n, path in enumerate(("/mw-1.ts", "/mw-2.ts"), 1):
            resolver.answer = {"next_url": origin.base + path}
            r = relay.post(f"/streams/{sid}/failover")
            assert r.status == 200 and r.json()["new_url"] == origin.base + path, r.text
            assert r.json()["active_clients"] == 1 and r.json()["failover_index"] == n
            wait_until(lambda p=path: origin.requests[p] >= 1, 15, f"a request for {path}")
            size = viewer.size()
            wait_until(lambda s=size: viewer.size() > s + 100_000, 15, f"bytes from {path}")
            assert viewer.running()
        assert stream_of(relay, sid)["current_url"] == origin.base + "/mw-2.ts"
    finally:
        viewer.close()
        relay.request("DELETE", f"/streams/{sid}")


@pytest.mark.parametrize("value, words", [
    ("ftp://x.example/next", "http or https"),
    ("not a url", "spaces"),
    ("", "non-empty"),
    (42, "non-empty string"),
    (["http://x.example/next"], "non-empty string"),
    ("http://169.254.169.254/next", "cloud metadata"),
    ("http://[fe80::1]/next", "link-local"),
])
def test_bad_resolver_urls_are_422s_and_store_nothing(relay, value, words):
    before = relay.get("/streams").json()["total"]
    for route, extra in (("/streams", {}), ("/transcode", {"profile": "default"})):
        r = relay.post(route, {"url": "http://x.example/bad-res.ts", "failover_resolver_url": value,
                               **extra})
        assert r.status == 422, (route, r.status, r.text)
        detail = r.json()["detail"]
        assert isinstance(detail, list) and len(detail) == 1
        item = detail[0]
        assert item["loc"] == ["body", "failover_resolver_url"] and item["type"] == "value_error"
        assert item["input"] == value and words in item["msg"], item
    assert relay.get("/streams").json()["total"] == before


def test_the_field_is_stored_updated_and_survives_a_restart(tmp_path, resolver):
    with media_node(tmp_path) as node:
        sid = node.post("/streams", {"url": "http://x.example/keep.ts"}).json()["stream_id"]
        assert stream_of(node, sid)["failover_resolver_url"] is None
        assert stream_of(node, sid)["has_failover"] is False
        # The same URL again with a resolver: the stream takes it (as it takes failover_urls).
        again = node.post("/streams", {"url": "http://x.example/keep.ts",
                                       "failover_resolver_url": resolver.url}).json()
        assert again["stream_id"] == sid
        listed = {s["stream_id"]: s for s in node.get("/streams").json()["streams"]}
        assert listed[sid]["failover_resolver_url"] == resolver.url and listed[sid]["has_failover"]
        t = node.post("/transcode", {"url": "http://x.example/keep-t.ts", "profile": "default",
                                     "failover_resolver_url": resolver.url})
        assert t.status == 200, t.text
        tid = t.json()["stream_id"]
        assert stream_of(node, tid)["failover_resolver_url"] == resolver.url
    with media_node(tmp_path, data_dir=node.data_dir) as node:
        assert stream_of(node, sid)["failover_resolver_url"] == resolver.url
        assert stream_of(node, tid)["failover_resolver_url"] == resolver.url


def test_two_workers_take_one_answer_and_announce_it_once(tmp_path, origin, resolver):
    """Each worker relays the stream for its own viewers and sees the primary die; the node
    records one answer (the store's compare-and-set), counts one failover, fires one
    ``failover_triggered``, and every viewer moves to the answer."""
    resolver.answer = {"next_url": origin.base + "/two-next.ts"}
    hooks = Receiver()
    viewers = []
    with media_node(tmp_path, workers=2, media={"stallTimeout": "2s", "returnToPrimary": False}) as node:
        try:
            assert node.post("/webhooks", {"url": hooks.url, "events": ["failover_triggered"]}).status == 200
            sid = node.post("/streams", {"url": origin.base + "/two.ts",
                                         "failover_resolver_url": resolver.url}).json()["stream_id"]
            viewers = [CurlViewer(f"{node.media_url}/stream/{sid}", tmp_path / f"v{i}.ts") for i in range(6)]
            wait_until(lambda: all(v.size() > 50_000 for v in viewers), 15, "every viewer watching")
            relaying = origin.requests["/two.ts"]      # one reader per worker with viewers
            origin.down.add("/two.ts")
            wait_until(lambda: origin.requests["/two-next.ts"] >= relaying, 15, "every relay on the answer")
            sizes = [v.size() for v in viewers]
            wait_until(lambda: all(v.size() > s + 100_000 for v, s in zip(viewers, sizes)), 15,
                       "every viewer receiving after the switch")
            assert all(v.running() for v in viewers)
            assert 1 <= len(resolver.bodies()) <= relaying
            now = stream_of(node, sid)
            assert now["current_url"] == origin.base + "/two-next.ts" and now["failover_attempts"] == 1
            hooks.wait_for(lambda e: e["event_type"] == "failover_triggered")
            time.sleep(1.0)
            fired = [e for e in hooks.events() if e["event_type"] == "failover_triggered"]
            assert len(fired) == 1, fired
            assert fired[0]["data"]["new_url"] == origin.base + "/two-next.ts"
            assert fired[0]["data"]["old_url"] == origin.base + "/two.ts"
            assert fired[0]["data"]["failover_index"] == 1
        finally:
            for v in viewers:
                v.close()
            hooks.close()


def test_openapi_documents_the_field(relay):
    doc = relay.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for name in ("MediaStreamCreate", "MediaTranscodeCreate"):
        field = schemas[name]["properties"]["failover_resolver_url"]
        assert field["format"] == "uri" and "next_url" in field["description"]
        assert "failover_urls are walked" in field["description"]
    assert schemas["MediaStream"]["properties"]["failover_resolver_url"]["type"] == ["string", "null"]
    responses = doc["paths"]["/streams/{stream_id}/failover"]["post"]["responses"]
    assert {"400", "404", "502"} <= set(responses)
