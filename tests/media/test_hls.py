"""HLS through a real node: ffprobe, rewritten playlists, 50 viewers and one fetch per segment,
signed references, viewer tracking and idle expiry, client_connected once per viewer."""
from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import time
from collections import Counter

import aiohttp
import pytest

from fastpath.shm import KIND_MEDIA_CLIENT, KIND_MEDIA_STREAM
from tests.media.support import (
    OriginProcess,
    add_webhook,
    media_get,
    media_node,
    register,
)
from tests.media.test_live import slots, wait_until


@pytest.fixture(scope="module")
def node(tmp_path_factory, module_origin, module_hooks):
    with media_node(tmp_path_factory.mktemp("node"), {"clientTimeout": "3s"}) as n:
        add_webhook(n, module_hooks.url, ["client_connected", "client_disconnected"])
        yield n


def test_ffprobe_reads_hls_through_the_node(node, module_origin):
    sid = register(node, module_origin.base + "/hls/playlist.m3u8")
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                          "-of", "csv=p=0", f"{node.media_base}/hls/{sid}/playlist.m3u8"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert "h264" in out.stdout and "aac" in out.stdout


def test_playlist_text_is_kept_and_every_uri_goes_through_the_node(node, module_origin):
    sid = register(node, module_origin.base + "/hls/master.m3u8")
    master = media_get(node, f"/hls/{sid}/playlist.m3u8")
    assert master.status == 200
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    lines = master.text.splitlines()
    assert lines[1] == "#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=320x240"
    assert lines[2].startswith("playlist.m3u8?r=")
    assert "127.0.0.1" not in master.text
    media = media_get(node, f"/hls/{sid}/{lines[2]}")
    assert media.status == 200
    text = media.text
    assert "#EXTINF:1.0," in text and "#EXT-X-TARGETDURATION:1" in text
    uris = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(uris) == 4 and all(u.startswith("segment.ts?r=") for u in uris)
    seg = media_get(node, f"/hls/{sid}/{uris[0]}")
    assert seg.status == 200 and seg.body[0] == 0x47 and len(seg.body) > 10_000


def ref_url(uri: str) -> str:
    payload = uri.split("r=", 1)[1].split(".")[0]
    return base64.urlsafe_b64decode(payload + "==").decode().split("\n", 1)[1]


def test_fifty_viewers_cause_one_upstream_fetch_per_segment(node, module_origin):
    sid = register(node, module_origin.base + "/hls/playlist.m3u8?fifty")
    base = f"{node.media_base}/hls/{sid}/"
    before = Counter(module_origin.stats()["requests"])
    served: Counter = Counter()

    async def viewer(session: aiohttp.ClientSession, n: int):
        headers = {"User-Agent": f"viewer-{n}"}
        seen = set()
        for _ in range(3):
            async with session.get(base + "playlist.m3u8", headers=headers) as r:
                assert r.status == 200
                text = await r.text()
            uris = [u for u in text.splitlines() if u and not u.startswith("#")]
            for uri in uris:
                if uri in seen:
                    continue
                seen.add(uri)
                async with session.get(base + uri, headers=headers) as r:
                    assert r.status == 200
                    body = await r.read()
                    assert body[:1] == b"\x47"
                    served[uri] += 1
            await asyncio.sleep(1.0)

    async def main():
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(viewer(session, n) for n in range(50)))

    started = time.monotonic()
    asyncio.run(main())
    elapsed = time.monotonic() - started
    after = Counter(module_origin.stats()["requests"])
    delta = after - before
    segment_fetches = {p: n for p, n in delta.items() if p.endswith(".ts")}
    assert segment_fetches, delta
    assert all(n == 1 for n in segment_fetches.values()), segment_fetches
    # Every distinct segment the viewers asked for was fetched from upstream exactly once in all
    # (some may have been fetched, once, by an earlier test: the cache is per URL).
    paths = {ref_url(u).split("127.0.0.1", 1)[1].split("/", 1)[1] for u in served}
    assert paths and all(after["/" + p] == 1 for p in paths), (paths, after)
    assert sum(served.values()) >= 50 * 4
    # Playlists: about one upstream request per target duration (1 s), not one per viewer.
    assert delta["/hls/playlist.m3u8"] <= elapsed / 1.0 + 2, (delta, elapsed)


def test_references_are_checked(node, module_origin):
    sid = register(node, module_origin.base + "/hls/playlist.m3u8?refs")
    other = register(node, module_origin.base + "/hls/playlist.m3u8?refs-other")
    text = media_get(node, f"/hls/{sid}/playlist.m3u8").text
    uri = next(u for u in text.splitlines() if u.startswith("segment"))
    ref = uri.split("r=", 1)[1]
    assert media_get(node, f"/hls/{sid}/segment.ts?r={ref}").status == 200
    # The same reference is not valid for another stream.
    assert media_get(node, f"/hls/{other}/segment.ts?r={ref}").status == 403
    # A changed payload or MAC is refused; so is a raw URL and a missing reference.
    body, mac = ref.split(".")
    tampered = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac
    assert media_get(node, f"/hls/{sid}/segment.ts?r={tampered}").status == 403
    assert media_get(node, f"/hls/{sid}/segment.ts?r=file:///etc/passwd").status == 403
    assert media_get(node, f"/hls/{sid}/segment.ts?url=http://127.0.0.1/").status == 400
    assert media_get(node, f"/hls/{sid}/playlist.m3u8?r={ref}").status == 403


def test_viewers_are_tracked_expire_and_connect_once(node, module_origin, module_hooks):
    sid = register(node, module_origin.base + "/hls/playlist.m3u8?track")
    for agent in ("player-1", "player-2"):
        for _ in range(3):
            text = media_get(node, f"/hls/{sid}/playlist.m3u8", headers={"User-Agent": agent}).text
            uri = next(u for u in text.splitlines() if u.startswith("segment"))
            assert media_get(node, f"/hls/{sid}/{uri}", headers={"User-Agent": agent}).status == 200
    # A segment is counted once its last byte is written, which the player may see first.
    def viewers():
        return [c for c in slots(node, KIND_MEDIA_CLIENT) if c["text_a"] == sid]
    wait_until(lambda: sum(c["tx_packets"] for c in viewers()) >= 6, 5)
    clients = viewers()
    assert sorted(c["text_b"].split("\t")[2] for c in clients) == ["player-1", "player-2"]
    assert all(c["tx_packets"] == 3 and c["tx"] > 30_000 for c in clients)
    stream = next(s for s in slots(node, KIND_MEDIA_STREAM) if s["key"] == sid)
    assert stream["text_a"] == "hls" and stream["tx_packets"] == 6
    assert stream["extra"][3] >= 1      # the second viewer's segments came from the cache
    def events(kind):
        return [e for e in module_hooks.of_type(kind) if e["stream_id"] == sid]
    wait_until(lambda: len(events("client_connected")) >= 2, 5)
    time.sleep(0.3)
    assert len(events("client_connected")) == 2, "client_connected once per viewer, not per request"
    # Idle viewers expire after the client timeout (3 s here: a loaded machine may take over a
    # second between one viewer's requests above).
    wait_until(lambda: not [c for c in slots(node, KIND_MEDIA_CLIENT) if c["text_a"] == sid], 12)
    wait_until(lambda: len(events("client_disconnected")) >= 2, 5)
    gone = events("client_disconnected")
    assert len(gone) == 2 and {e["data"]["reason"] for e in gone} == {"idle"}


def test_variant_refs_name_their_slot(node, module_origin):
    sid = register(node, module_origin.base + "/hls/master.m3u8?slots")
    text = media_get(node, f"/hls/{sid}/playlist.m3u8").text
    ref = re.search(r"playlist\.m3u8\?r=(\S+)", text).group(1)
    payload = base64.urlsafe_b64decode(ref.split(".")[0] + "==").decode()
    assert payload.split("\n")[0] == "v0@0"


def test_the_newest_segment_is_prefetched_once(tmp_path, media_dir):
    with OriginProcess(media_dir) as origin, media_node(tmp_path) as fresh:
        sid = register(fresh, origin.base + "/hls/playlist.m3u8")
        text = media_get(fresh, f"/hls/{sid}/playlist.m3u8").text
        last = ref_url([u for u in text.splitlines() if u.startswith("segment")][-1])
        path = "/" + last.split("/", 3)[3]
        wait_until(lambda: origin.stats()["requests"].get(path) == 1, 5)
        # The player's request for it is a cache hit: still one upstream fetch.
        uri = [u for u in text.splitlines() if u.startswith("segment")][-1]
        assert media_get(fresh, f"/hls/{sid}/{uri}").status == 200
        assert origin.stats()["requests"][path] == 1
