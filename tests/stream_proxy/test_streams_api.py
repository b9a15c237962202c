"""``/streams``, ``/streams/{id}``, failover, by-metadata and ``/transcode`` against a real node:
the exact JSON shapes of m3u-proxy, type detection, dedup, and bad bodies changing nothing."""
from __future__ import annotations

import hashlib
import re

import pytest

from tests.stream_proxy.conftest import curl

pytestmark = pytest.mark.integration

CREATE_KEYS = {"stream_id", "primary_url", "failover_urls", "user_agent", "stream_type",
               "stream_endpoint", "playlist_url", "direct_url", "message", "metadata"}
STREAM_KEYS = {"stream_id", "original_url", "current_url", "user_agent", "client_count",
               "total_bytes_served", "total_segments_served", "error_count", "is_active",
               "has_failover", "failover_urls", "current_failover_index", "failover_attempts",
               "last_failover_time", "stream_type", "created_at", "last_access", "metadata"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def create(node, body):
    r = node.post("/streams", body)
    assert r.status == 200, r.text
    return r.json()


def total(node) -> int:
    return node.get("/streams").json()["total"]


def test_create_hls_with_curl_has_the_reference_shape(node):
    url = "http://origin.example:8080/live/chan1/index.m3u8?token=abc"
    status, body = curl("POST", node.base_url + "/streams",
                        {"url": url, "failover_urls": ["https://backup.example/chan1.m3u8"],
                         "user_agent": "MyApp/1.0", "metadata": {"local_id": "channel_123", "n": 7,
                                                                 "hd": True}})
    assert status == 200, body
    assert set(body) == CREATE_KEYS | {"viewer_url"}
    sid = body["stream_id"]
    assert body["stream_type"] == "hls"
    assert body["stream_endpoint"] == f"/hls/{sid}/playlist.m3u8"
    # Relative, as m3u-proxy answers; the absolute URL on the media listener is viewer_url.
    assert body["playlist_url"] == body["stream_endpoint"]
    assert body["viewer_url"] == node.media_url + body["stream_endpoint"]
    assert body["message"] == "Stream created successfully (hls)"
    assert body["primary_url"] == url and body["user_agent"] == "MyApp/1.0"
    assert body["metadata"] == {"local_id": "channel_123", "n": "7", "hd": "True"}
    # Random ids, not the reference's md5 of the URL.
    assert re.fullmatch(r"[0-9a-f]{24}", sid) and sid != hashlib.md5(url.encode()).hexdigest()


@pytest.mark.parametrize("url, kind, listed", [
    ("http://o.example/live/chan.ts", "direct", "Live Continuous"),
    ("http://o.example/live/user/pass/1234", "direct", "Live Continuous"),
    ("http://o.example/anything", "direct", "Live Continuous"),
    ("http://o.example/movie/user/pass/99.mkv", "direct", "VOD"),
    ("http://o.example/files/film.MP4", "direct", "VOD"),
    ("http://o.example/series/user/pass/5", "direct", "VOD"),
    ("https://o.example/path/master.m3u8", "hls", "HLS"),
])
def test_stream_type_from_url(node, url, kind, listed):
    body = create(node, {"url": url})
    assert body["stream_type"] == kind
    sid = body["stream_id"]
    expected = f"/hls/{sid}/playlist.m3u8" if kind == "hls" else f"/stream/{sid}"
    assert body["stream_endpoint"] == expected
    assert body["direct_url"] == expected and body["viewer_url"] == node.media_url + expected
    assert body["message"] == f"Stream created successfully ({kind})"
    got = node.get(f"/streams/{sid}").json()["stream"]
    assert got["stream_type"] == listed


def test_same_url_twice_is_the_same_stream_and_takes_new_settings(node):
    url = "http://o.example/dedup/a.ts"
    first = create(node, {"url": url, "metadata": {"a": "1"}})
    before = total(node)
    second = create(node, {"url": url, "failover_urls": ["http://b.example/a.ts"]})
    assert second["stream_id"] == first["stream_id"]
    assert total(node) == before
    stream = node.get(f"/streams/{first['stream_id']}").json()["stream"]
    assert stream["failover_urls"] == ["http://b.example/a.ts"] and stream["has_failover"]
    assert stream["metadata"] == {"a": "1"}  # not named in the second body: kept
    other = create(node, {"url": url + "?x=1"})
    assert other["stream_id"] != first["stream_id"]


def test_list_and_get_shapes(node):
    sid = create(node, {"url": "http://o.example/shape/list.m3u8", "metadata": {"k": "v"}})["stream_id"]
    listing = node.get("/streams").json()
    assert set(listing) == {"streams", "total"} and listing["total"] == len(listing["streams"])
    obj = next(s for s in listing["streams"] if s["stream_id"] == sid)
    assert STREAM_KEYS <= set(obj)
    assert obj["original_url"] == obj["current_url"] == "http://o.example/shape/list.m3u8"
    assert obj["user_agent"].startswith("Mozilla/5.0")  # none given: the node's default
    # Registered is active on m3u-proxy; relaying says whether bytes flow now.
    assert obj["client_count"] == 0 and obj["is_active"] is True and obj["relaying"] is False
    assert obj["has_failover"] is False and obj["current_failover_index"] == 0
    assert obj["last_failover_time"] is None
    assert ISO.match(obj["created_at"]) and ISO.match(obj["last_access"])
    one = node.get(f"/streams/{sid}").json()
    assert set(one) == {"stream", "clients", "client_count"}
    assert one["stream"] == {**obj, "last_access": one["stream"]["last_access"]}
    assert one["clients"] == [] and one["client_count"] == 0


def test_unknown_ids_are_404(node):
    for method, path in (("GET", "/streams/nope"), ("DELETE", "/streams/nope"),
                         ("POST", "/streams/nope/failover"), ("GET", "/clients/nope"),
                         ("DELETE", "/hls/nope/clients/c1")):
        r = node.request(method, path)
        assert r.status == 404, (method, path, r.text)
        assert r.json()["detail"] in ("Stream not found", "Client not found")
    sid = create(node, {"url": "http://o.example/404/client.ts"})["stream_id"]
    # An unknown viewer of a known stream: 200, as m3u-proxy answers.
    r = node.request("DELETE", f"/hls/{sid}/clients/0123456789abcdef")
    assert r.status == 200 and r.json()["message"] == "Client 0123456789abcdef disconnected"
    assert r.json()["closed"] == 0


def test_delete(node):
    sid = create(node, {"url": "http://o.example/del/x.m3u8"})["stream_id"]
    before = total(node)
    status, body = curl("DELETE", f"{node.base_url}/streams/{sid}")
    assert status == 200 and body == {"message": f"Stream {sid} deleted"}
    assert node.get(f"/streams/{sid}").status == 404
    assert total(node) == before - 1
    assert node.request("DELETE", f"/streams/{sid}").status == 404


def test_manual_failover_walks_the_list_and_wraps(node):
    urls = ["http://p.example/fo.ts", "http://b1.example/fo.ts", "http://b2.example/fo.ts"]
    sid = create(node, {"url": urls[0], "failover_urls": urls[1:]})["stream_id"]
    for n, expect in enumerate([1, 2, 0, 1], start=1):
        r = node.post(f"/streams/{sid}/failover")
        assert r.status == 200, r.text
        body = r.json()
        assert set(body) == {"message", "new_url", "failover_index", "failover_attempts",
                             "active_clients", "stream_type", "url_index"}
        assert body["message"].startswith("Failover triggered successfully")
        # m3u-proxy's index is a position in failover_urls; url_index counts the primary as 0.
        assert body["failover_index"] == max(expect - 1, 0) and body["url_index"] == expect
        assert body["new_url"] == urls[expect]
        assert body["failover_attempts"] == n and body["stream_type"] == "Live Continuous"
        assert body["active_clients"] == 0
        s = node.get(f"/streams/{sid}").json()["stream"]
        assert s["current_url"] == urls[expect] and s["current_failover_index"] == max(expect - 1, 0)
        assert s["url_index"] == expect
        assert s["failover_attempts"] == n and ISO.match(s["last_failover_time"])


def test_failover_without_backups_is_400(node):
    sid = create(node, {"url": "http://p.example/nofo.ts"})["stream_id"]
    r = node.post(f"/streams/{sid}/failover")
    assert r.status == 400 and "no failover" in r.json()["detail"].lower()
    assert node.get(f"/streams/{sid}").json()["stream"]["failover_attempts"] == 0


def test_by_metadata(node):
    a = create(node, {"url": "http://m.example/a.ts", "metadata": {"group": "g-sports", "id": "1"}})
    b = create(node, {"url": "http://m.example/b.m3u8", "metadata": {"group": "g-sports"}})
    create(node, {"url": "http://m.example/c.ts", "metadata": {"group": "g-news"}})
    r = node.get("/streams/by-metadata?field=group&value=g-sports&active_only=false").json()
    assert set(r) == {"filter", "active_only", "matching_streams", "total_matching", "total_clients"}
    assert r["filter"] == {"field": "group", "value": "g-sports"} and r["active_only"] is False
    assert {m["stream_id"] for m in r["matching_streams"]} == {a["stream_id"], b["stream_id"]}
    assert r["total_matching"] == 2 and r["total_clients"] == 0
    m = next(m for m in r["matching_streams"] if m["stream_id"] == b["stream_id"])
    assert set(m) == {"stream_id", "client_count", "metadata", "last_access", "is_active", "url",
                      "stream_type"}
    assert m["url"] == "http://m.example/b.m3u8" and m["stream_type"] == "HLS"
    # Default active_only=true: no viewers, nothing matches.
    r = node.get("/streams/by-metadata?field=group&value=g-sports").json()
    assert r["active_only"] is True and r["matching_streams"] == [] and r["total_matching"] == 0
    assert node.get("/streams/by-metadata?field=id&value=1&active_only=0").json()["total_matching"] == 1
    assert node.get("/streams/by-metadata?field=group&value=none&active_only=false").json()["total_matching"] == 0
    for bad in ("?value=x", "?field=group", "?field=group&value=x&active_only=maybe"):
        resp = node.get("/streams/by-metadata" + bad)
        assert resp.status == 422, bad
        assert resp.json()["detail"][0]["loc"][0] == "query"


def test_transcode(node):
    body = {"url": "http://t.example/src.m3u8", "profile": "720p",
            "profile_variables": {"video_bitrate": "1500k", "height": 360},
            "metadata": {"ch": "t1"}}
    r = node.post("/transcode", body)
    assert r.status == 200, r.text
    t = r.json()
    sid = t["stream_id"]
    assert t["stream_type"] == "transcoded" and t["stream_endpoint"] == f"/stream/{sid}"
    assert t["profile"] == "720p" and t["format"] == "mpegts"
    # The variables in use: m3u-proxy's fixed ones, the profile's defaults, the caller's.
    assert t["profile_variables"] == {"input_url": body["url"], "output_args": "pipe:1",
                                      "format": "mpegts", "width": "1280", "video_bitrate": "1500k",
                                      "height": "360", "audio_bitrate": "128k"}
    assert "scale=1280:360" in t["ffmpeg_args"] and "1500k" in t["ffmpeg_args"]
    assert t["message"] == "Transcoded stream created successfully (direct MPEGTS pipe)"
    listed = node.get(f"/streams/{sid}").json()["stream"]
    assert listed["stream_type"] == "Transcoding"
    assert listed["metadata"] == {"ch": "t1", "transcoding": "true", "profile": "720p",
                                  "profile_variables": "{'video_bitrate': '1500k', 'height': '360'}",
                                  "ffmpeg_args": " ".join(t["ffmpeg_args"])}
    # One FFmpeg per (url, profile, variables).
    assert node.post("/transcode", body).json()["stream_id"] == sid
    other = node.post("/transcode", {**body, "profile_variables": {"video_bitrate": "900k"}}).json()
    assert other["stream_id"] != sid
    # The plain stream of the same URL is another stream.
    assert create(node, {"url": body["url"]})["stream_id"] not in (sid, other["stream_id"])
    audio = node.post("/transcode", {"url": "http://t.example/radio.ts", "profile": "audio"}).json()
    assert audio["format"] == "adts" and audio["content_type"] == "audio/aac"


@pytest.mark.parametrize("body, words", [
    ({"url": "http://t.example/x.ts", "profile": "nope"}, "not found"),
    ({"url": "http://t.example/x.ts", "profile": 5}, "profile"),
    ({"url": "http://t.example/x.ts", "profile_variables": {"video_bitrate": "2M -i /etc/passwd"}},
     "not allowed"),
    ({"url": "http://t.example/x.ts", "profile_variables": {"bad name": "1"}}, "variable name"),
    ({"url": "http://t.example/x.ts", "profile_variables": {"crf": True}}, "string or a number"),
    ({"url": "http://t.example/x.ts", "profile_variables": ["crf"]}, "object"),
    ({"url": "file:///etc/passwd", "profile": "hq"}, "http"),
    ({"profile": "hq"}, "url"),
])
def test_transcode_bad_bodies(node, body, words):
    before = total(node)
    r = node.post("/transcode", body)
    # An unknown profile is a 400 with a text detail (m3u-proxy's); the rest fail validation.
    if words == "not found":
        assert r.status == 400 and words in r.json()["detail"], r.text
    else:
        assert r.status == 422, r.text
        assert words in r.json()["message"] and r.json()["detail"][0]["loc"][0] == "body"
    assert total(node) == before


BAD_STREAM_BODIES = [
    ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ("", "JSON body is required"),
    ({}, "'url' is required"),
    ({"url": ""}, "non-empty"),
    ({"url": 42}, "non-empty string"),
    ({"url": "ftp://o.example/a.ts"}, "http or https"),
    ({"url": "file:///etc/passwd"}, "http or https"),
    ({"url": "javascript:alert(1)"}, "http or https"),
    ({"url": "http:///nohost.ts"}, "host"),
    ({"url": "http://o.example/a b.ts"}, "spaces"),
    ({"url": "http://o.example:99999/a.ts"}, "valid URL"),
    ({"url": "http://o.example/ok.ts", "failover_urls": "http://b.example/a.ts"}, "list"),
    ({"url": "http://o.example/ok.ts", "failover_urls": ["gopher://b.example/"]}, "failover_urls[0]"),
    ({"url": "http://o.example/ok.ts", "metadata": {"a": {"nested": 1}}}, "metadata"),
    ({"url": "http://o.example/ok.ts", "metadata": ["a"]}, "metadata"),
    ({"url": "http://o.example/ok.ts", "headers": {"Bad Header": "x"}}, "header name"),
    ({"url": "http://o.example/ok.ts", "headers": {"X-A": "a\r\nInjected: 1"}}, "control"),
    ({"url": "http://o.example/ok.ts", "strict_live_ts": "yes"}, "true or false"),
    ({"url": "http://o.example/ok.ts", "use_sticky_session": 1}, "true or false"),
    ({"url": "http://o.example/ok.ts", "user_agent": 5}, "user_agent"),
]


@pytest.mark.parametrize("body, words", BAD_STREAM_BODIES)
def test_bad_stream_bodies_change_nothing(node, body, words):
    before = node.get("/streams").json()
    r = node.post("/streams", body)
    assert r.status == 422, r.text
    err = r.json()
    # FastAPI's shape, as m3u-proxy answers; our text in message.
    assert words in err["message"] and len(err["detail"]) == 1
    item = err["detail"][0]
    assert {"type", "loc", "msg", "input"} <= set(item) and item["loc"][0] == "body"
    assert node.get("/streams").json()["total"] == before["total"]


def test_unknown_fields_are_ignored_like_the_reference(node):
    r = node.post("/streams", {"url": "http://o.example/extra.ts", "client_extra": {"x": 1}})
    assert r.status == 200


def test_openapi_lists_every_route(node):
    doc = node.get("/openapi.json").json()
    paths = doc["paths"]
    expected = {
        "/streams": {"get", "post"}, "/streams/{stream_id}": {"get", "delete"},
        "/streams/{stream_id}/failover": {"post"}, "/streams/by-metadata": {"get"},
        "/transcode": {"post"}, "/stats": {"get"}, "/stats/detailed": {"get"},
        "/stats/performance": {"get"}, "/stats/streams": {"get"}, "/stats/clients": {"get"},
        "/clients": {"get"}, "/clients/{client_id}": {"get"},
        "/hls/{stream_id}/clients/{client_id}": {"delete"}, "/health": {"get"},
        "/webhooks": {"get", "post", "delete"}, "/webhooks/test": {"post"},
        "/streams/oldest-by-metadata": {"delete"}, "/info": {"get"}, "/transcode/profiles": {"get"},
        "/test-connection": {"post"}, "/": {"get"},
        "/stream/{stream_id}": {"get"}, "/hls/{stream_id}/playlist.m3u8": {"get"},
    }
    expected["/streams/by-metadata"] = {"get", "delete"}
    for path, methods in expected.items():
        assert methods <= set(paths.get(path, {})), path
    # Validation errors are documented in FastAPI's shape; data-plane routes name their listener.
    assert "HTTPValidationError" in doc["components"]["schemas"]
    assert "422" in paths["/streams"]["post"]["responses"]
    assert paths["/stream/{stream_id}"]["servers"][0]["url"] == "{media}"
    assert "mediaToken" in doc["components"]["securitySchemes"]


def test_health_uptime_is_the_node_uptime(node):
    before = node.get("/api/v1/health").json()["uptime"]
    health = node.get("/health").json()["uptime_seconds"]
    stats = node.get("/stats").json()["uptime_seconds"]
    after = node.get("/api/v1/health").json()["uptime"]
    # The stream-proxy faces give whole seconds (m3u-proxy's integer), each read at its own
    # instant: the node's uptime at a moment between the two native readings (rounded to the
    # millisecond), truncated. Two of them can differ by one when a second turns between them.
    for whole in (health, stats):
        assert type(whole) is int and int(before - 0.001) <= whole <= after, (before, whole, after)


def test_viewer_urls_follow_public_url(tmp_path):
    from tests.stream_proxy.conftest import media_node
    with media_node(tmp_path, media={"publicUrl": "https://tv.example.com/relay/"}) as n:
        body = n.post("/streams", {"url": "http://o.example/pub.m3u8"}).json()
        sid = body["stream_id"]
        assert body["stream_endpoint"] == f"/hls/{sid}/playlist.m3u8"
        assert body["viewer_url"] == f"https://tv.example.com/relay/hls/{sid}/playlist.m3u8"
        assert body["playlist_url"] == body["stream_endpoint"]
        ts = n.post("/transcode", {"url": "http://o.example/pub.ts"}).json()
        assert ts["viewer_url"] == f"https://tv.example.com/relay/stream/{ts['stream_id']}"
        assert ts["direct_url"] == f"/stream/{ts['stream_id']}"
        assert n.get("/health").json()["root_path"] == "/relay"


@pytest.mark.parametrize("listen, base", [
    (("0.0.0.0", 8085), "http://127.0.0.1:8085"),
    (("::", 9000), "http://[::1]:9000"),
    (("192.0.2.7", 81), "http://192.0.2.7:81"),
    (("fd00::5", 81), "http://[fd00::5]:81"),
])
def test_public_base_from_the_listen_address(listen, base):
    from fastpath.control.stream_proxy.kinds import public_base
    from fastpath.media.config import MediaSettings
    assert public_base(MediaSettings(listen=listen)) == base
    assert public_base(MediaSettings(listen=listen, public_url="http://x.example")) == "http://x.example"


def test_listings_answer_json_and_msgpack_alike_and_follow_changes(node):
    """The pre-rendered JSON bodies and the msgpack answers (object path) carry the same
    objects; a stream created or deleted shows at once (the stream cache follows the store)."""
    import msgpack

    sid = create(node, {"url": "http://o.example/shape/cache \u00e9.m3u8".replace(" ", "%20"),
                        "metadata": {"q": 'a"b%s\u2028'}})["stream_id"]
    for path in ("/streams", "/stats/streams", "/stats", "/stats/clients"):
        as_json = node.get(path)
        assert as_json.status == 200 and as_json.headers["Content-Type"].startswith("application/json")
        packed = node.get(path, headers={"Accept": "application/msgpack"})
        assert packed.status == 200 and "msgpack" in packed.headers["Content-Type"]
        a, b = as_json.json(), msgpack.unpackb(packed.body)
        a.pop("uptime_seconds", None)
        b.pop("uptime_seconds", None)
        for obj in (a, b):  # last_access moves with the clock only for streams read meanwhile
            for s in obj.get("streams", []):
                s.pop("last_access")
        assert a == b, path
    listed = {s["stream_id"]: s for s in node.get("/streams").json()["streams"]}
    assert listed[sid]["metadata"] == {"q": 'a"b%s\u2028'}
    assert node.request("DELETE", f"/streams/{sid}").status == 200
    assert sid not in {s["stream_id"] for s in node.get("/streams").json()["streams"]}
    assert sid not in {s["stream_id"] for s in node.get("/stats").json()["streams"]}
