"""m3u-proxy 0.2.49's API shapes, held here as facts, checked against a real node.

The facts come from m3u-proxy's source at v0.2.49 (commit bddd17d: ``src/api.py``,
``src/stream_manager.py`` ``get_stats``, ``src/events.py``, ``src/models.py``): for every route
the keys of its answer, their types and status codes; for every webhook event the keys of its
``data``.  Our node may add keys (clients ignore unknown ones), so a fact is "these keys are
there, with these types", never "only these".  Where we differ on purpose the test says so.

The second half is a client written the way an IPTV manager drives m3u-proxy: register
channels with metadata, poll the stats, keep an account at one connection with
``oldest-by-metadata``, and receive every webhook event.
"""
from __future__ import annotations

import importlib.util
import re
import time
import urllib.request
from urllib.parse import quote, urljoin

import pytest

from tests.stream_proxy.conftest import TOKEN, media_node
from tests.stream_proxy.origin import Origin, make_media
from tests.stream_proxy.receiver import Receiver
from tests.stream_proxy.resolver import Resolver
from tests.stream_proxy.viewers import Viewer, wait_until

pytestmark = pytest.mark.integration

if importlib.util.find_spec("fastpath.media.service") is None:
    pytest.skip("the media data plane (fastpath.media.service) is not in this build",
                allow_module_level=True)

M3U_PROXY_VERSION = "0.2.49"

# -- the facts ------------------------------------------------------------------------------
STR, INT, BOOL, LIST, DICT, NUM = str, int, bool, list, dict, (int, float)
OPT_STR = (str, type(None))

CREATE = {"stream_id": STR, "primary_url": STR, "failover_urls": LIST, "user_agent": STR,
          "stream_type": STR, "stream_endpoint": STR, "playlist_url": STR, "direct_url": STR,
          "message": STR}
TRANSCODE = {"stream_id": STR, "primary_url": STR, "failover_urls": LIST, "user_agent": STR,
             "stream_type": STR, "stream_endpoint": STR, "playlist_url": type(None),
             "direct_url": STR, "format": STR, "profile": STR, "profile_variables": DICT,
             "ffmpeg_args": LIST, "message": STR}
STREAM = {"stream_id": STR, "original_url": STR, "current_url": STR, "user_agent": STR,
          "client_count": INT, "total_bytes_served": INT, "total_segments_served": INT,
          "error_count": INT, "is_active": BOOL, "has_failover": BOOL, "failover_urls": LIST,
          "failover_resolver_url": OPT_STR, "current_failover_index": INT,
          "failover_attempts": INT, "last_failover_time": OPT_STR, "stream_type": STR,
          "created_at": STR, "last_access": STR, "metadata": DICT, "headers": DICT}
CLIENT = {"client_id": STR, "stream_id": STR, "user_agent": STR, "ip_address": STR,
          "username": OPT_STR, "bytes_served": INT, "segments_served": INT, "created_at": STR,
          "last_access": STR, "is_connected": BOOL}
PROXY_STATS = {"total_streams": INT, "active_streams": INT, "total_clients": INT,
               "active_clients": INT, "total_bytes_served": INT, "total_segments_served": INT,
               "uptime_seconds": INT}
ROOT = {"status": STR, "message": STR, "version": STR, "uptime": INT, "stats": DICT}
HEALTH = {"status": STR, "root_path": STR, "version": STR, "uptime_seconds": INT,
          "active_streams": INT, "active_clients": INT, "total_bytes_served": INT, "stats": DICT}
INFO = {"version": STR, "ffmpeg_version": OPT_STR, "hardware_acceleration": DICT, "redis": DICT,
        "transcoding": DICT, "configuration": DICT, "worker": DICT}
INFO_PARTS = {
    "hardware_acceleration": {"enabled", "type", "device", "ffmpeg_args"},
    "redis": {"enabled", "pooling_enabled", "host", "port", "password", "db",
              "max_clients_per_stream", "stream_timeout", "sharing_strategy"},
    "transcoding": {"enabled", "profiles"},
    "configuration": {"default_user_agent", "client_timeout", "stream_timeout",
                      "cleanup_interval", "max_retries"},
    "worker": {"worker_id", "heartbeat_interval", "multi_worker_mode"},
}
PROFILE_NAMES = {"default", "hq", "lowlatency", "720p", "1080p", "hevc", "audio"}
DEFAULT_VARIABLES = {"input_url", "output_args", "video_bitrate", "audio_bitrate", "format", "crf"}
BY_METADATA = {"filter": DICT, "active_only": BOOL, "matching_streams": LIST,
               "total_matching": INT, "total_clients": INT}
MATCHING = {"stream_id": STR, "client_count": INT, "metadata": DICT, "last_access": STR,
            "is_active": BOOL, "url": STR, "stream_type": STR}
DELETE_BY_METADATA = {"message": STR, "deleted_streams": LIST, "skipped_streams": LIST,
                      "deleted_count": INT}
DELETE_OLDEST = {"message": STR, "deleted_stream": STR, "stream_age_seconds": NUM,
                 "deleted_count": INT}
DELETE_OLDEST_NONE = {"message": STR, "deleted_stream": type(None), "deleted_count": INT}
FAILOVER = {"message": STR, "new_url": STR, "failover_index": INT, "failover_attempts": INT,
            "active_clients": INT, "stream_type": STR}
TEST_OK = {"success": BOOL, "message": STR, "status_code": INT, "url_tested": STR}
TEST_FAILED = {"success": BOOL, "message": STR, "error": STR, "url_tested": STR}
WEBHOOK_ADDED = {"message": STR, "webhook_url": STR, "events": LIST}
WEBHOOK_LISTED = {"url": STR, "events": LIST, "timeout": NUM, "retry_attempts": INT}
VALIDATION_ITEM = {"type": STR, "loc": LIST, "msg": STR}
EVENT = {"event_id": STR, "event_type": STR, "stream_id": STR, "timestamp": STR, "data": DICT}
# The ``data`` keys m3u-proxy sends with each event (the API's and the stream manager's).
EVENT_DATA = {
    "stream_started": {"primary_url", "failover_urls", "user_agent", "stream_type"},
    "stream_stopped": {"reason", "was_transcoded"},
    "client_connected": {"client_id", "user_agent", "ip_address", "username", "stream_client_count"},
    "client_disconnected": {"client_id", "bytes_served", "segments_served"},
    "failover_triggered": {"old_url", "new_url", "failover_index", "attempt_number", "reason",
                           "client_count"},
    "stream_failed": {"error", "error_type"},
}
ALL_EVENTS = set(EVENT_DATA)
# Every route of m3u-proxy's API (``src/api.py``'s decorators; the UI's own ``/static`` and
# ``/favicon.ico`` are left out) and its documentation pages: ``/docs`` (Swagger UI 5), ``/redoc``
# and ``/openapi.json``, the FastAPI defaults it keeps.
M3U_ROUTES = {
    ("GET", "/"), ("GET", "/info"), ("POST", "/streams"), ("POST", "/transcode"),
    ("GET", "/transcode/profiles"), ("GET", "/hls/{stream_id}/playlist.m3u8"),
    ("GET", "/hls/{stream_id}/segment"), ("GET", "/hls/{stream_id}/segment.ts"),
    ("GET", "/stream/{stream_id}"), ("HEAD", "/stream/{stream_id}"),
    ("DELETE", "/hls/{stream_id}/clients/{client_id}"), ("GET", "/stats"), ("GET", "/stats/detailed"),
    ("GET", "/stats/performance"), ("GET", "/stats/streams"), ("GET", "/stats/clients"),
    ("GET", "/clients"), ("GET", "/streams"), ("GET", "/streams/by-metadata"),
    ("GET", "/streams/{stream_id}"), ("DELETE", "/streams/oldest-by-metadata"),
    ("DELETE", "/streams/by-metadata"), ("DELETE", "/streams/{stream_id}"),
    ("POST", "/streams/{stream_id}/failover"), ("GET", "/health"), ("POST", "/test-connection"),
    ("POST", "/webhooks"), ("GET", "/webhooks"), ("DELETE", "/webhooks"), ("POST", "/webhooks/test"),
}
DOC_PAGES = ("/docs", "/redoc", "/openapi.json")
# Aware ``isoformat`` (objects) and naive UTC ``isoformat`` (webhook timestamps).
OBJECT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


def shaped(obj: dict, fact: dict, what: str) -> dict:
    """``obj`` has every key of ``fact`` with a value of its type (extra keys allowed)."""
    assert isinstance(obj, dict), (what, obj)
    missing = set(fact) - set(obj)
    assert not missing, (what, missing, obj)
    for key, kind in fact.items():
        value = obj[key]
        if kind is INT or kind == (int, float):
            assert not isinstance(value, bool), (what, key, value)
        assert isinstance(value, kind), (what, key, type(value).__name__, value)
    return obj


def ok(r, fact: dict, what: str) -> dict:
    assert r.status == 200, (what, r.status, r.text)
    return shaped(r.json(), fact, what)


def unprocessable(r, where: str, field: str | None = None) -> list:
    """FastAPI's 422: ``detail`` is a list of ``{type, loc, msg, input}``."""
    assert r.status == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail
    for item in detail:
        shaped(item, VALIDATION_ITEM, "validation item")
        assert "input" in item and item["loc"][0] == where
    if field is not None:
        assert detail[0]["loc"][1] == field, detail
    return detail


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    o = Origin(make_media(tmp_path_factory.mktemp("parity-media")))
    o.segment_type = "text/vnd.trolltech.linguist"   # what Python's mimetypes says for .ts
    yield o
    o.close()


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    with media_node(tmp_path_factory.mktemp("parity"), media={"clientTimeout": "2s",
                                                              "stallTimeout": "2s"}) as n:
        yield n


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


# -- route by route -------------------------------------------------------------------------
def test_create_and_read_streams(relay, origin):
    url = origin.base + "/parity-a.ts"
    body = {"url": url, "failover_urls": [origin.base + "/parity-b.ts"], "user_agent": "Client/1",
            "headers": {"Referer": "http://portal.example/"}, "metadata": {"id": "7", "n": 3}}
    created = ok(relay.post("/streams", body), CREATE, "POST /streams")
    sid = created["stream_id"]
    assert created["stream_type"] == "direct" and created["message"] == "Stream created successfully (direct)"
    # Relative: the client prefixes its own base URL.
    assert created["stream_endpoint"] == created["direct_url"] == created["playlist_url"] == f"/stream/{sid}"
    assert created["metadata"] == {"id": "7", "n": "3"}
    hls = ok(relay.post("/streams", {"url": origin.base + "/hls/index.m3u8"}), CREATE, "POST /streams hls")
    assert hls["stream_type"] == "hls" and hls["playlist_url"] == f"/hls/{hls['stream_id']}/playlist.m3u8"

    listing = ok(relay.get("/streams"), {"streams": LIST, "total": INT}, "GET /streams")
    obj = shaped(next(s for s in listing["streams"] if s["stream_id"] == sid), STREAM, "stream object")
    assert obj["is_active"] is True                 # registered, no viewer yet
    assert obj["headers"] == {"Referer": "http://portal.example/"}
    assert obj["has_failover"] is True and obj["current_failover_index"] == 0
    assert obj["stream_type"] == "Live Continuous" and obj["user_agent"] == "Client/1"
    assert OBJECT_TIME.match(obj["created_at"]) and OBJECT_TIME.match(obj["last_access"])
    one = ok(relay.get(f"/streams/{sid}"), {"stream": DICT, "clients": LIST, "client_count": INT},
             "GET /streams/{id}")
    shaped(one["stream"], STREAM, "stream object")
    ok(relay.get("/stats/streams"), {"total_streams": INT, "streams": LIST}, "GET /stats/streams")
    for path in ("/stats/clients", "/clients"):
        ok(relay.get(path), {"total_clients": INT, "clients": LIST}, path)
    stats = ok(relay.get("/stats"), {**PROXY_STATS, "streams": LIST, "clients": LIST}, "GET /stats")
    for s in stats["streams"]:
        shaped(s, STREAM, "stats stream")
    ok(relay.get("/stats/detailed"), {"proxy_stats": DICT, "connection_pool_stats": DICT,
                                      "failover_stats": DICT, "performance_metrics": DICT,
                                      "error_stats": DICT, "stream_count": INT, "client_count": INT},
       "GET /stats/detailed")
    ok(relay.get("/stats/performance"), {"connection_pool": DICT, "performance_metrics": DICT,
                                         "failover_stats": DICT, "error_stats": DICT, "timestamp": STR},
       "GET /stats/performance")
    for s in (sid, hls["stream_id"]):
        assert relay.request("DELETE", f"/streams/{s}").json() == {"message": f"Stream {s} deleted"}


def test_status_health_info_and_profiles(relay, origin):
    root = ok(relay.get("/", headers={"Accept": "application/json"}), ROOT, "GET /")
    assert root["status"] == "running" and root["message"] == "m3u proxy is running"
    assert root["version"] == M3U_PROXY_VERSION
    shaped(root["stats"], PROXY_STATS, "root stats")
    # A browser on the control port gets the node's dashboard (the shared root), not JSON.
    page = relay.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status == 200 and '<base href="/dashboard/"' in page.text

    health = ok(relay.get("/health"), HEALTH, "GET /health")
    assert health["status"] == "healthy" and health["version"] == M3U_PROXY_VERSION
    assert health["fastpath_version"] != M3U_PROXY_VERSION   # ours, under its own key
    shaped(health["stats"], PROXY_STATS, "health stats")

    info = ok(relay.get("/info"), INFO, "GET /info")
    assert info["version"] == M3U_PROXY_VERSION
    for part, keys in INFO_PARTS.items():
        assert keys <= set(info[part]), (part, info[part])
    assert info["redis"]["enabled"] is False and info["transcoding"]["enabled"] is True
    assert PROFILE_NAMES <= set(info["transcoding"]["profiles"])
    if info["ffmpeg_version"] is not None:          # ffmpeg is on this machine for the media tests
        assert info["ffmpeg_version"].startswith("ffmpeg version")

    profiles = ok(relay.get("/transcode/profiles"), {"profiles": LIST, "hardware_acceleration": DICT,
                                                     "default_variables": DICT}, "GET /transcode/profiles")
    for p in profiles["profiles"]:
        shaped(p, {"name": STR, "description": STR, "parameters": STR}, "profile")
    assert PROFILE_NAMES <= {p["name"] for p in profiles["profiles"]}
    assert {"available", "type"} <= set(profiles["hardware_acceleration"])
    assert DEFAULT_VARIABLES <= set(profiles["default_variables"])


def test_docs_pages_and_the_document_cover_every_route(relay):
    """``/docs``, ``/redoc`` and ``/openapi.json`` answer where m3u-proxy has them (public here:
    they hold no data), and the document names every m3u-proxy route.  (Deliberate difference:
    HLS segments take ``?r=<signed ref>`` where m3u-proxy takes ``?url=&client_id=``, so the node
    never fetches a URL a viewer names; the paths are the same.)"""
    import re as _re
    for page in DOC_PAGES:
        r = relay.get(page)
        assert r.status == 200, (page, r.status)
    assert "swagger-ui-bundle.js" in relay.get("/docs").text
    assert "redoc.standalone.js" in relay.get("/redoc").text
    doc = relay.get("/openapi.json").json()

    def shape(path):
        return _re.sub(r"\{[^}]+\}", "{}", path)
    documented = {(m.upper(), shape(p)) for p, item in doc["paths"].items()
                  for m, op in item.items() if isinstance(op, dict) and "responses" in op}
    missing = {r for r in M3U_ROUTES if (r[0], shape(r[1])) not in documented}
    assert not missing, sorted(missing)


def test_test_connection(relay, origin):
    good = ok(relay.post("/test-connection", {"url": origin.base + "/hls/index.m3u8"}), TEST_OK,
              "test-connection 200")
    assert good["success"] is True and good["status_code"] == 200
    missing = ok(relay.post("/test-connection", {"url": origin.base + "/hls/nope.m3u8"}), TEST_OK,
                 "test-connection 404")
    assert missing["success"] is False and missing["status_code"] == 404
    # A closed port on loopback (loopback is allowed for these tests by allowUpstreamNetworks).
    dead = ok(relay.post("/test-connection", {"url": "http://127.0.0.1:9/"}), TEST_FAILED,
              "test-connection refused")
    assert dead["success"] is False and dead["url_tested"] == "http://127.0.0.1:9"
    unprocessable(relay.post("/test-connection", {}), "body", "url")


def test_transcode_shapes(relay, origin):
    body = {"url": origin.base + "/parity-t.ts", "profile": "hq",
            "profile_variables": {"crf": "28"}, "metadata": {"id": "t1"}}
    t = ok(relay.post("/transcode", body), TRANSCODE, "POST /transcode")
    assert t["stream_type"] == "transcoded" and t["direct_url"] == f"/stream/{t['stream_id']}"
    # The variables the profile ran with: m3u-proxy lists input_url, output_args and format.
    assert {"input_url", "output_args", "format", "crf"} <= set(t["profile_variables"])
    assert t["profile_variables"]["output_args"] == "pipe:1" and t["profile_variables"]["crf"] == "28"
    listed = shaped(relay.get(f"/streams/{t['stream_id']}").json()["stream"], STREAM, "transcoded")
    meta = listed["metadata"]
    assert meta["transcoding"] == "true" and meta["profile"] == "hq" and meta["id"] == "t1"
    assert meta["profile_variables"] == "{'crf': '28'}" and meta["ffmpeg_args"] == " ".join(t["ffmpeg_args"])
    assert listed["stream_type"] == "Transcoding"
    # m3u-proxy's by-metadata finds transcoded streams by that key.
    found = relay.get("/streams/by-metadata?field=transcoding&value=true&active_only=false").json()
    assert t["stream_id"] in {m["stream_id"] for m in found["matching_streams"]}
    assert relay.post("/transcode", {**body, "profile": "nope"}).status == 400    # m3u-proxy: 400
    relay.request("DELETE", f"/streams/{t['stream_id']}")


def test_by_metadata_routes(relay, origin):
    ids = {}
    for name, meta in (("m1", {"playlist_uuid": "acct-x", "id": "1"}),
                       ("m2", {"playlist_uuid": "acct-x", "id": "2"}),
                       ("m3", {"playlist_uuid": "acct-x", "id": "3"}),
                       ("m4", {"playlist_uuid": "acct-y", "id": "4"})):
        ids[name] = relay.post("/streams", {"url": f"{origin.base}/{name}.ts", "metadata": meta}).json()["stream_id"]
        time.sleep(0.01)                      # distinct creation times: "oldest" is defined
    got = ok(relay.get("/streams/by-metadata?field=playlist_uuid&value=acct-x&active_only=false"),
             BY_METADATA, "GET by-metadata")
    assert got["total_matching"] == 3
    for m in got["matching_streams"]:
        shaped(m, MATCHING, "matching stream")

    oldest = ok(relay.request("DELETE", "/streams/oldest-by-metadata?field=playlist_uuid&value=acct-x"
                                        "&exclude_channel_id=1"), DELETE_OLDEST, "DELETE oldest")
    assert oldest["deleted_stream"] == ids["m2"] and oldest["deleted_count"] == 1   # m1 kept
    assert oldest["message"] == "Deleted oldest stream matching playlist_uuid=acct-x"
    none = ok(relay.request("DELETE", "/streams/oldest-by-metadata?field=playlist_uuid&value=nobody"),
              DELETE_OLDEST_NONE, "DELETE oldest, none")
    assert none["deleted_count"] == 0 and none["message"] == "No streams found matching playlist_uuid=nobody"

    bulk = ok(relay.request("DELETE", "/streams/by-metadata?field=playlist_uuid&value=acct-x"
                                      "&exclude_channel_id=3"), DELETE_BY_METADATA, "DELETE by-metadata")
    assert bulk["deleted_streams"] == [ids["m1"]] and bulk["deleted_count"] == 1
    assert bulk["skipped_streams"] == [{"stream_id": ids["m3"], "reason": "excluded_by_channel_id"}]
    assert bulk["message"] == "Deleted 1 stream(s) matching playlist_uuid=acct-x"
    left = {s["stream_id"] for s in relay.get("/streams").json()["streams"]}
    assert ids["m3"] in left and ids["m4"] in left and not {ids["m1"], ids["m2"]} & left
    # FastAPI's 422 for missing query parameters, on GET and on both deletes.
    for method, path in (("GET", "/streams/by-metadata?value=x"),
                         ("DELETE", "/streams/by-metadata?value=x"),
                         ("DELETE", "/streams/oldest-by-metadata?field=x")):
        unprocessable(relay.request(method, path), "query")
    for s in (ids["m3"], ids["m4"]):
        relay.request("DELETE", f"/streams/{s}")


# m3u-proxy 0.2.49's failover resolver (src/stream_manager.py ``_resolve_next_failover_url``),
# as facts: on every failover it POSTs this JSON to the stream's ``failover_resolver_url``
# (10 s timeout), takes ``next_url`` from a 2xx JSON answer as the new current URL and adds 1
# to current_failover_index.  The resolver is preferred over failover_urls; with it, POST
# /streams/{id}/failover is allowed without failover_urls, and ``has_failover`` is true.
# Deliberate difference: where m3u-proxy does not fail over when the resolver fails (a non-2xx
# answer, no ``next_url``, an error), the node walks failover_urls instead
# (tests/stream_proxy/test_failover_resolver.py), and a manual failover with nothing to walk is
# a 502 rather than m3u-proxy's 500.
RESOLVER_REQUEST_KEYS = {"current_url", "metadata", "current_failover_index"}
RESOLVER_ANSWER_KEY = "next_url"


def test_failover_resolver_url_is_asked_on_failover(relay, origin):
    resolver = Resolver({RESOLVER_ANSWER_KEY: origin.base + "/parity-resolved.ts"})
    meta = {"playlist_uuid": "acct-res", "id": "9"}
    created = ok(relay.post("/streams", {"url": origin.base + "/parity-res.ts", "metadata": meta,
                                         "failover_resolver_url": resolver.url}), CREATE, "create")
    sid = created["stream_id"]
    try:
        obj = shaped(relay.get(f"/streams/{sid}").json()["stream"], STREAM, "stream")
        assert obj["failover_resolver_url"] == resolver.url and obj["has_failover"] is True
        viewer = Viewer(relay.media_url + created["direct_url"])
        wait_until(lambda: viewer.bytes > 50_000, 15, "bytes from the primary")
        origin.down.add("/parity-res.ts")
        wait_until(lambda: resolver.bodies(), 15, "a call of the resolver")
        body = resolver.bodies()[0]
        assert set(body) == RESOLVER_REQUEST_KEYS
        assert body == {"current_url": origin.base + "/parity-res.ts", "metadata": meta,
                        "current_failover_index": 0}
        wait_until(lambda: relay.get(f"/streams/{sid}").json()["stream"]["current_url"]
                   == origin.base + "/parity-resolved.ts", 15, "the answer as the current URL")
        size = viewer.bytes
        wait_until(lambda: viewer.bytes > size + 50_000, 15, "bytes from the answer")
        assert not viewer.ended.is_set()
        obj = shaped(relay.get(f"/streams/{sid}").json()["stream"], STREAM, "stream")
        assert obj["current_failover_index"] == 1
        # The manual failover asks it too, without failover_urls.
        resolver.answer = {RESOLVER_ANSWER_KEY: origin.base + "/parity-resolved-2.ts"}
        out = ok(relay.post(f"/streams/{sid}/failover"), FAILOVER, "failover")
        assert out["new_url"] == origin.base + "/parity-resolved-2.ts" and out["failover_index"] == 2
        assert set(resolver.bodies()[-1]) == RESOLVER_REQUEST_KEYS
        viewer.stop = True
    finally:
        resolver.close()
        relay.request("DELETE", f"/streams/{sid}")


def test_validation_errors_are_fastapi_422s(relay):
    before = relay.get("/streams").json()["total"]
    unprocessable(relay.post("/streams", {}), "body", "url")
    item = unprocessable(relay.post("/streams", {"url": "ftp://x.example/a.ts"}), "body", "url")[0]
    assert item["input"] == "ftp://x.example/a.ts" and item["type"] == "value_error"
    assert unprocessable(relay.post("/streams", {"url": "http://x.example/a.ts",
                                                 "failover_urls": ["gopher://b/"]}), "body")[0]["loc"] \
        == ["body", "failover_urls", 0]
    unprocessable(relay.post("/streams", "not json"), "body")
    unprocessable(relay.post("/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["bogus"]}), "body", "events")
    assert relay.get("/streams").json()["total"] == before
    # Refusals about the state of things stay 400 with a text detail, as on m3u-proxy.
    sid = relay.post("/streams", {"url": "http://x.example/nofo.ts"}).json()["stream_id"]
    r = relay.post(f"/streams/{sid}/failover")
    assert r.status == 400 and isinstance(r.json()["detail"], str)
    assert relay.get("/streams/nope").status == 404
    relay.request("DELETE", f"/streams/{sid}")


def test_auth_statuses(tmp_path):
    with media_node(tmp_path, token=TOKEN) as node:
        for method, path in (("GET", "/health"), ("GET", "/info"), ("GET", "/streams"),
                             ("GET", "/transcode/profiles"), ("POST", "/test-connection"),
                             ("DELETE", "/streams/by-metadata?field=a&value=b")):
            r = node.request(method, path, {} if method == "POST" else None,
                             headers={"Accept": "application/json"})
            assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer", (path, r.status)
            assert isinstance(r.json()["detail"], str)
            r = node.request(method, path, {} if method == "POST" else None,
                             headers={"X-API-Token": "wrong", "Accept": "application/json"})
            assert r.status == 403 and r.headers["WWW-Authenticate"] == "Bearer", (path, r.status)
        assert node.get("/", headers={"Accept": "application/json"}).status == 401
        assert node.get(f"/?api_token={TOKEN}").json()["version"] == M3U_PROXY_VERSION
        assert node.get("/health", headers={"X-API-Token": TOKEN}).status == 200


def test_hls_segments_and_stream_heads(relay, origin):
    created = relay.post("/streams", {"url": origin.base + "/hls/index.m3u8"}).json()
    base = relay.media_url
    playlist_url = base + created["playlist_url"]
    text = urllib.request.urlopen(playlist_url, timeout=10).read().decode()
    uri = next(line for line in text.splitlines() if line and not line.startswith("#"))
    with urllib.request.urlopen(urljoin(playlist_url, uri), timeout=10) as seg:
        assert seg.status == 200 and seg.read(1) == b"\x47"
        # The origin called it text/vnd.trolltech.linguist; m3u-proxy answers video/MP2T.
        assert seg.headers["Content-Type"] == "video/MP2T"
        assert seg.headers["Cache-Control"] == "no-cache"
    live = relay.post("/streams", {"url": origin.base + "/parity-head.ts"}).json()
    req = urllib.request.Request(base + live["direct_url"], method="HEAD")
    with urllib.request.urlopen(req, timeout=10) as head:
        assert head.status == 200 and head.headers["Access-Control-Allow-Origin"] == "*"
        assert head.headers["Accept-Ranges"] == "none" and head.headers["Content-Length"] is None
    # An unknown viewer of a known stream: 200, as m3u-proxy answers.
    r = relay.request("DELETE", f"/hls/{created['stream_id']}/clients/nobody")
    assert r.status == 200 and r.json()["message"] == "Client nobody disconnected"
    for s in (created["stream_id"], live["stream_id"]):
        relay.request("DELETE", f"/streams/{s}")


def _raw_get(url: str, version: str, want: int) -> tuple[bytes, bytes]:
    """(head, at least ``want`` bytes of body as sent) of a GET over a plain socket."""
    import socket
    host, _, rest = url.removeprefix("http://").partition("/")
    name, _, port = host.partition(":")
    with socket.create_connection((name, int(port)), timeout=10) as sock:
        sock.sendall(f"GET /{rest} {version}\r\nHost: {host}\r\nUser-Agent: Raw/1\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < want:
            more = sock.recv(65536)
            assert more, data[:300]
            data += more
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_direct_stream_is_chunked_for_http11_viewers(relay, origin):
    """m3u-proxy's StreamingResponse is chunked on HTTP/1.1; an HTTP/1.0 viewer gets the bytes
    ended by the close.  Either way the media inside is whole TS packets."""
    from tests.media.test_compiled import dechunk
    sid = relay.post("/streams", {"url": origin.base + "/parity-chunked.ts"}).json()["stream_id"]
    url = f"{relay.media_url}/stream/{sid}"
    try:
        head, body = _raw_get(url, "HTTP/1.1", 200_000)
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 200 OK"
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
        assert headers["access-control-allow-origin"] == "*"
        chunks, _rest = dechunk(body)
        media = b"".join(chunks)
        assert len(chunks) > 3 and len(media) % 188 == 0 and media[::188] == b"\x47" * (len(media) // 188)

        head10, body10 = _raw_get(url, "HTTP/1.0", 50_000)
        assert b"transfer-encoding" not in head10.lower()
        assert body10[0] == 0x47 and body10[188] == 0x47
    finally:
        relay.request("DELETE", f"/streams/{sid}")


# -- a client, end to end -------------------------------------------------------------------
def test_an_iptv_manager_drives_the_node(relay, origin, receiver):
    """Register channels of two accounts, play them, poll the stats, keep account A at one
    connection with oldest-by-metadata ("latest wins"), fail a channel over, lose one
    upstream, clear an account with by-metadata; every webhook event arrives with m3u-proxy's
    keys."""
    hook = relay.post("/webhooks", {"url": receiver.url, "timeout": 5, "retry_attempts": 1})
    added = ok(hook, WEBHOOK_ADDED, "POST /webhooks")
    assert set(added["events"]) == ALL_EVENTS
    listed = relay.get("/webhooks").json()["webhooks"]
    shaped(next(h for h in listed if h["url"] == receiver.url), WEBHOOK_LISTED, "webhook listed")
    base = relay.media_url                  # the client's base URL for viewers

    def register(name, account, channel, **extra):
        body = {"url": f"{origin.base}/{name}.ts",
                "metadata": {"playlist_uuid": account, "id": channel, "type": "channel"}, **extra}
        return ok(relay.post("/streams", body), CREATE, "register")["stream_id"]

    def play(sid, user):
        return Viewer(base + f"/stream/{sid}", {"User-Agent": "TiviMate/5", "X-Username": user})

    def connections(account):
        r = relay.get(f"/streams/by-metadata?field=playlist_uuid&value={quote(account)}").json()
        return r["total_clients"]

    # Account A: one connection allowed.  Channel 1 plays.
    ch1 = register("e2e-ch1", "acct-A", "101")
    v1 = play(ch1, "alice")
    wait_until(lambda: connections("acct-A") == 1, what="channel 1 connected")
    stats = wait_until(lambda: (lambda s: s if s["active_clients"] >= 1 and s["total_bytes_served"] > 0
                                else None)(relay.get("/stats").json()), what="stats show the viewer")
    viewer = shaped(next(c for c in stats["clients"] if c["stream_id"] == ch1), CLIENT, "client")
    assert viewer["username"] == "alice" and viewer["is_connected"] is True
    assert OBJECT_TIME.match(viewer["created_at"])
    assert v1.response_headers.get("Content-Type", "").lower() == "video/mp2t"
    assert v1.response_headers.get("Transfer-Encoding") == "chunked"

    # The user zaps to channel 2 of the same account: the manager makes room first.
    ch2 = register("e2e-ch2", "acct-A", "102", failover_urls=[f"{origin.base}/e2e-ch2-backup.ts"])
    assert connections("acct-A") == 1
    freed = ok(relay.request("DELETE", "/streams/oldest-by-metadata?field=playlist_uuid&value=acct-A"
                                       "&exclude_channel_id=102"), DELETE_OLDEST, "make room")
    assert freed["deleted_stream"] == ch1
    assert v1.ended.wait(10), "the oldest channel's viewer is cut"
    v2 = play(ch2, "alice")
    wait_until(lambda: connections("acct-A") == 1 and relay.get(f"/streams/{ch2}").json()["client_count"] == 1,
               what="channel 2 connected")

    # Account B plays too; its channel's upstream dies without a backup.
    ch3 = register("e2e-ch3", "acct-B", "201")
    v3 = play(ch3, "bob")
    wait_until(lambda: connections("acct-B") == 1, what="account B connected")
    origin.down.add("/e2e-ch3.ts")

    # The operator fails channel 2 over.
    fo = ok(relay.post(f"/streams/{ch2}/failover"), FAILOVER, "failover")
    assert fo["failover_index"] == 0 and fo["new_url"] == f"{origin.base}/e2e-ch2-backup.ts"
    wait_until(lambda: origin.requests["/e2e-ch2-backup.ts"] >= 1, what="backup read")
    s2 = relay.get(f"/streams/{ch2}").json()["stream"]
    assert s2["current_failover_index"] == 0 and s2["current_url"] == fo["new_url"]

    # Account A is cleared in one call (the user logged out).
    cleared = ok(relay.request("DELETE", "/streams/by-metadata?field=playlist_uuid&value=acct-A"),
                 DELETE_BY_METADATA, "clear account")
    assert cleared["deleted_streams"] == [ch2]
    assert v2.ended.wait(10)
    # Account B's dead channel is announced before the manager removes it (deleting it first
    # could beat the relay to the upstream's end, and then nothing failed).
    receiver.wait_for(lambda e: e["event_type"] == "stream_failed" and e["stream_id"] == ch3, timeout=20)
    relay.request("DELETE", f"/streams/{ch3}")
    assert v3.ended.wait(10)

    # Every event, each with m3u-proxy's keys and format.
    for event_type in ALL_EVENTS:
        receiver.wait_for(lambda e, t=event_type: e["event_type"] == t, timeout=20)
    # The deleted channels' stops are checked below: wait for each (the webhook queue delivers
    # them after the deletes answer).
    for sid in (ch1, ch2):
        receiver.wait_for(lambda e, s=sid: e["event_type"] == "stream_stopped" and e["stream_id"] == s,
                          timeout=20)
    events = receiver.events()
    for e in events:
        shaped(e, EVENT, "event")
        assert EVENT_TIME.match(e["timestamp"]), e["timestamp"]
        missing = EVENT_DATA[e["event_type"]] - set(e["data"])
        assert not missing, (e["event_type"], missing, e["data"])

    def of(event_type, sid):
        return [e for e in events if e["event_type"] == event_type and e["stream_id"] == sid]
    started = of("stream_started", ch2)[0]["data"]
    assert started["primary_url"] == f"{origin.base}/e2e-ch2.ts" and started["stream_type"] == "direct"
    assert started["failover_urls"] == [f"{origin.base}/e2e-ch2-backup.ts"]
    connected = of("client_connected", ch1)[0]["data"]
    assert connected["username"] == "alice" and connected["stream_client_count"] == 1
    gone = of("client_disconnected", ch1)[0]["data"]
    assert gone["bytes_served"] > 0 and gone["segments_served"] == 0   # no segments in a TS stream
    switched = of("failover_triggered", ch2)[0]["data"]
    assert switched["old_url"] == f"{origin.base}/e2e-ch2.ts" and switched["new_url"] == fo["new_url"]
    assert switched["failover_index"] == 0 and switched["attempt_number"] == 1
    assert switched["client_count"] == 1
    assert {e["data"]["reason"] for e in of("stream_stopped", ch1)} == {"oldest_stream_deletion"}
    assert {e["data"]["reason"] for e in of("stream_stopped", ch2)} == {"metadata_filter_deletion"}
    assert all(e["data"]["was_transcoded"] is False for e in of("stream_stopped", ch2))
    assert of("stream_failed", ch3), "the dead upstream is announced"
    relay.request("DELETE", f"/webhooks?webhook_url={receiver.url}")
