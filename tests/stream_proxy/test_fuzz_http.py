"""Random bodies and query strings against the real face: every answer is a 200 or a clear
4xx with a JSON message, never a 500, and a refused write stores nothing."""
from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

_scalar = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20)
_json = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
_url = st.sampled_from(["http://f.example/a.ts", "https://f.example/b.m3u8", "ftp://f.example/",
                        "http://", "http://[::1/x", "javascript:x", "", "http://f.example/\x00"]) | st.text(max_size=30)
_stream_body = st.fixed_dictionaries({}, optional={
    "url": _url, "failover_urls": st.lists(_url, max_size=3) | _json, "user_agent": _json,
    "headers": _json, "strict_live_ts": _json, "use_sticky_session": _json, "metadata": _json,
    "profile": st.sampled_from(["default", "hq", "audio", "nope", ""]) | _json,
    "profile_variables": st.dictionaries(st.text(max_size=12), _scalar, max_size=3) | _json,
    "events": st.lists(st.sampled_from(["stream_started", "client_connected", "bogus"]), max_size=3) | _json,
    "timeout": _json, "retry_attempts": _json})
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(r):
    assert r.status in (200, 400, 404, 422), (r.status, r.text)
    body = r.json()
    if r.status == 422:
        # FastAPI's validation shape (m3u-proxy's), our text in message.
        assert body["message"] and body["detail"]
        assert all({"type", "loc", "msg", "input"} <= set(d) for d in body["detail"])
    elif r.status != 200:
        assert body["detail"] and body["message"] == body["detail"]
    return body


def _snapshot(node):
    return (json.dumps(node.get("/streams").json()["total"]), node.get("/webhooks").json())


@FUZZ
@given(body=_stream_body, path=st.sampled_from(["/streams", "/transcode", "/webhooks"]))
def test_random_bodies(node, body, path):
    before = _snapshot(node)
    r = node.post(path, body)
    _check(r)
    if r.status != 200:
        assert _snapshot(node) == before


@FUZZ
@given(raw=st.binary(max_size=64))
def test_random_bytes(node, raw):
    before = _snapshot(node)
    for path in ("/streams", "/transcode", "/webhooks"):
        r = node.post(path, raw, headers={"Content-Type": "application/json"})
        _check(r)
    assert _snapshot(node) == before


@FUZZ
@given(field=st.text(max_size=10), value=st.text(max_size=10), active=st.text(max_size=6),
       ident=st.text(min_size=1, max_size=20))
def test_random_queries_and_ids(node, field, value, active, ident):
    q = f"field={quote(field)}&value={quote(value)}&active_only={quote(active)}"
    _check(node.get("/streams/by-metadata?" + q))
    seg = quote(ident, safe="")
    for method, path in (("GET", f"/streams/{seg}"), ("GET", f"/clients/{seg}"),
                         ("DELETE", f"/hls/{seg}/clients/{seg}"),
                         ("DELETE", f"/webhooks?webhook_url={seg}"),
                         ("POST", f"/webhooks/test?webhook_url={seg}")):
        r = node.request(method, path)
        assert r.status in (200, 400, 404, 422), (method, path, r.status, r.text)
