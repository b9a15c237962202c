"""Native API over real HTTP: users CRUD, validation, auth, msgpack, OpenAPI, metrics."""
import msgpack
import pytest

from tests.support.node import NodeProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("native")
    with NodeProcess(tmp) as n:
        yield n


def test_users_crud(node):
    r = node.post("/api/v1/users", {"id": "alice", "traffic_limit": 1000, "expiry": "2030-01-01T00:00:00Z"})
    assert r.status == 201, r.text
    created = r.json()
    assert created["auth_secret"] and created["expiry"] == "2030-01-01T00:00:00Z"
    assert node.get("/api/v1/users/alice").json()["traffic_limit"] == 1000
    ids = [u["id"] for u in node.get("/api/v1/users").json()["users"]]
    assert "alice" in ids and "default" in ids
    r = node.request("PATCH", "/api/v1/users/alice", {"enabled": False})
    assert r.status == 200 and r.json()["enabled"] is False and r.json()["refused"] == "disabled"
    assert node.request("DELETE", "/api/v1/users/alice").status == 204
    assert node.get("/api/v1/users/alice").status == 404


@pytest.mark.parametrize("body, status, message", [
    ("{not json", 400, "not valid JSON"),
    ([1, 2], 400, "must be a JSON object"),
    ({}, 400, "'id' is required"),
    ({"id": "bad id!"}, 400, "not allowed"),
    ({"id": "x", "traffic_limit": -1}, 400, "traffic_limit must be an integer"),
    ({"id": "x", "enabled": "yes"}, 400, "enabled must be true or false"),
    ({"id": "x", "expiry": "tomorrow"}, 400, "not an ISO 8601 time"),
    ({"id": "x", "colour": "red"}, 400, "unknown field 'colour'"),
    ({"id": "default"}, 409, "already exists"),
])
def test_bad_bodies_get_a_clear_4xx_and_change_nothing(node, body, status, message):
    before = node.get("/api/v1/users").json()["total"]
    r = node.post("/api/v1/users", body)
    assert r.status == status
    assert message in r.json()["message"]
    assert node.get("/api/v1/users").json()["total"] == before


def test_patch_is_all_or_nothing(node):
    node.post("/api/v1/users", {"id": "bob", "traffic_limit": 5})
    r = node.request("PATCH", "/api/v1/users/bob", {"traffic_limit": 9, "enabled": "nope"})
    assert r.status == 400
    assert node.get("/api/v1/users/bob").json()["traffic_limit"] == 5


def test_msgpack_on_request(node):
    r = node.get("/api/v1/health", headers={"Accept": "application/msgpack"})
    assert r.headers["Content-Type"].startswith("application/msgpack")
    assert msgpack.unpackb(r.body)["status"] == "healthy"


def test_openapi_and_docs(node):
    doc = node.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/users/{user_id}" in doc["paths"]
    page = node.get("/docs")     # Swagger UI over the document (tests/control/test_docs_ui.py)
    assert page.status == 200 and "swagger-ui-bundle.js" in page.text and "/openapi.json" in page.text


def test_metrics_in_prometheus_text_format(node):
    r = node.get("/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    from prometheus_client.parser import text_string_to_metric_families
    names = {f.name for f in text_string_to_metric_families(r.text)}
    assert {"fastpath_user_tx_bytes", "fastpath_worker_slots", "fastpath_child_up"} <= names


def test_token_is_enforced_when_configured(tmp_path):
    with NodeProcess(tmp_path, {"control": {"token": "s3cret"}}) as node:
        assert node.get("/api/v1/health").status == 200  # health stays public
        r = node.get("/api/v1/users")
        assert r.status == 401 and "Bearer" in r.json()["message"]
        assert node.get("/api/v1/users", headers={"Authorization": "Bearer wrong"}).status == 401
        assert node.get("/api/v1/users", headers={"Authorization": "Bearer s3cret"}).status == 200
        assert node.get("/metrics").status == 401
