"""``media.apiToken``: X-API-Token header (wins) or ?api_token=; missing 401, wrong 403;
/health, /openapi.json and /docs stay public; the node's own bearer auth is untouched."""
from __future__ import annotations

import pytest

from tests.stream_proxy.conftest import TOKEN, curl
from tests.support.node import http

pytestmark = pytest.mark.integration

PROTECTED = [("GET", "/streams"), ("POST", "/streams"), ("GET", "/streams/x"),
             ("DELETE", "/streams/x"), ("POST", "/streams/x/failover"),
             ("GET", "/streams/by-metadata?field=a&value=b"), ("POST", "/transcode"),
             ("GET", "/stats"), ("GET", "/stats/detailed"), ("GET", "/stats/performance"),
             ("GET", "/stats/streams"), ("GET", "/stats/clients"), ("GET", "/clients"),
             ("GET", "/clients/x"), ("DELETE", "/hls/x/clients/y"), ("GET", "/webhooks"),
             ("POST", "/webhooks"), ("DELETE", "/webhooks?webhook_url=http://a.example/"),
             ("POST", "/webhooks/test?webhook_url=http://a.example/")]


def _with_query(path: str, query: str) -> str:
    return path + ("&" if "?" in path else "?") + query


@pytest.mark.parametrize("method, path", PROTECTED)
def test_every_management_route_needs_the_token(token_node, method, path):
    body = {"url": "http://o.example/auth.ts"} if method == "POST" else None
    r = token_node.request(method, path, body)
    assert r.status == 401, r.text
    assert "API token required" in r.json()["detail"]
    r = token_node.request(method, path, body, headers={"X-API-Token": "wrong"})
    assert r.status == 403 and r.json()["detail"] == "Invalid API token"
    r = token_node.request(method, _with_query(path, "api_token=wrong"), body)
    assert r.status == 403
    # With the right token the request reaches the route (whatever it answers there).
    r = token_node.request(method, path, body, headers={"X-API-Token": TOKEN})
    assert r.status not in (401, 403), r.text


def test_token_in_query_and_header_precedence(token_node):
    base = token_node.base_url
    status, body = curl("GET", f"{base}/streams?api_token={TOKEN}")
    assert status == 200 and "streams" in body
    # The header wins: a right query token does not rescue a wrong header ...
    status, _ = curl("GET", f"{base}/streams?api_token={TOKEN}", headers={"X-API-Token": "nope"})
    assert status == 403
    # ... and a right header is enough whatever the query says.
    status, _ = curl("GET", f"{base}/streams?api_token=nope", headers={"X-API-Token": TOKEN})
    assert status == 200


def test_rejected_writes_store_nothing(token_node):
    h = {"X-API-Token": TOKEN}
    before = token_node.get("/streams", headers=h).json()["total"]
    assert token_node.post("/streams", {"url": "http://o.example/denied.ts"}).status == 401
    assert token_node.post("/streams", {"url": "http://o.example/denied.ts"},
                           headers={"X-API-Token": TOKEN + "x"}).status == 403
    assert token_node.get("/streams", headers=h).json()["total"] == before


def test_health_asks_the_token_as_m3u_proxy_does(token_node):
    # A client's "test connection" with a wrong token must fail (m3u-proxy: 401/403).
    r = token_node.get("/health")
    assert r.status == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert token_node.get("/health", headers={"X-API-Token": TOKEN + "x"}).status == 403
    r = token_node.get("/health", headers={"X-API-Token": TOKEN})
    assert r.status == 200
    health = r.json()
    assert health["status"] == "healthy"
    assert {"version", "uptime_seconds", "active_streams", "active_clients",
            "total_bytes_served"} <= set(health)
    # m3u-proxy's ``stats`` are counts only: no stream list, no URLs, no ids.
    assert set(health["stats"]) == {"total_streams", "active_streams", "total_clients",
                                    "active_clients", "total_bytes_served",
                                    "total_segments_served", "uptime_seconds"}
    assert "streams" not in health and "http" not in r.text
    assert token_node.get("/openapi.json").status == 200
    assert token_node.get("/docs").status == 200


def test_node_bearer_auth_is_not_weakened(token_node):
    # The control listener is on loopback without control.token, so /api/v1 is open here;
    # a media token must neither open nor close it.
    assert token_node.get("/api/v1/users").status == 200
    assert token_node.get("/api/v1/users", headers={"X-API-Token": TOKEN}).status == 200


def test_bearer_protected_node_keeps_api_v1_locked(tmp_path):
    from tests.stream_proxy.conftest import media_node
    node = media_node(tmp_path, token=TOKEN)
    node.config.setdefault("control", {})["token"] = "node-bearer"
    node.config["control"]["listen"] = f"127.0.0.1:{node.control_port}"
    with node:
        assert node.get("/api/v1/users").status == 401
        # The media token is no key to /api/v1, and the bearer token is none to /streams.
        assert node.get("/api/v1/users", headers={"X-API-Token": TOKEN}).status == 401
        assert node.get("/streams", headers={"Authorization": "Bearer node-bearer"}).status == 401
        assert node.get("/streams", headers={"X-API-Token": TOKEN}).status == 200
        assert node.get("/api/v1/users", headers={"Authorization": "Bearer node-bearer"}).status == 200
        assert http("GET", node.base_url + "/health").status == 401
        assert http("GET", node.base_url + "/health", headers={"X-API-Token": TOKEN}).status == 200


def test_no_token_configured_means_open(node):
    assert node.get("/streams").status == 200
    assert node.get("/streams", headers={"X-API-Token": "anything"}).status == 200
