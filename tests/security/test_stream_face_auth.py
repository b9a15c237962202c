"""The stream API of an exposed node without media.apiToken asks the control token."""
from __future__ import annotations

import json

from tests.security.conftest import TOKEN, raw_request

ROUTES = ("/streams", "/webhooks", "/stats", "/stats/streams", "/stats/detailed", "/health")


def test_stream_api_falls_back_to_the_control_token(exposed):
    for path in ROUTES:
        r = raw_request(exposed, "GET", path)
        assert r.status == 401, path
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert raw_request(exposed, "GET", path, headers={"X-API-Token": "wrong"}).status == 403
        assert raw_request(exposed, "GET", path, headers={"X-API-Token": TOKEN}).status == 200, path
    assert raw_request(exposed, "GET", f"/stats?api_token={TOKEN}").status == 200


def test_a_stream_cannot_be_created_without_the_token(exposed):
    body = json.dumps({"url": "http://127.0.0.1:9/x.ts"}).encode()
    assert raw_request(exposed, "POST", "//streams", body, {"Content-Type": "application/json"}).status == 401
    r = raw_request(exposed, "GET", "/streams", headers={"X-API-Token": TOKEN})
    assert r.json() == [] or r.json().get("streams", []) == [] or r.status == 200
    assert "the stream API asks the control token" in exposed.log()
