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
    ({"id": "x", "expiry": 12345}, 400, "expiry 12345 is unix seconds in 1970"),
    ({"id": "x", "expiry": 86400.5}, 400, "is unix seconds in 1970"),
    ({"id": "x", "expiry": 1767225600000}, 400, "too large for unix seconds (milliseconds?)"),
    ({"id": "x", "expiry": True}, 400, "must be an ISO 8601 time, unix seconds, or null"),
    ({"id": "x", "colour": "red"}, 400, "unknown field 'colour'"),
    ({"id": "default"}, 409, "already exists"),
])
def test_bad_bodies_get_a_clear_4xx_and_change_nothing(node, body, status, message):
    before = node.get("/api/v1/users").json()["total"]
    r = node.post("/api/v1/users", body)
    assert r.status == status
    assert message in r.json()["message"]
    assert node.get("/api/v1/users").json()["total"] == before


def test_expiry_as_unix_seconds_or_iso_time(node):
    """Numbers are unix seconds from 2001 on (a smaller one is refused above: it would make an
    expired user); an ISO time is taken as given, a past one disabling the user."""
    r = node.post("/api/v1/users", {"id": "carol", "expiry": 1893456000})
    assert r.status == 201 and r.json()["expiry"] == "2030-01-01T00:00:00Z"
    r = node.request("PATCH", "/api/v1/users/carol", {"expiry": 12345})
    assert r.status == 400 and node.get("/api/v1/users/carol").json()["expiry"] == "2030-01-01T00:00:00Z"
    r = node.request("PATCH", "/api/v1/users/carol", {"expiry": "2001-01-01T00:00:00Z"})
    assert r.status == 200 and r.json()["refused"] == "expired"
    r = node.request("PATCH", "/api/v1/users/carol", {"expiry": None})
    assert r.status == 200 and r.json()["expiry"] is None
    node.request("DELETE", "/api/v1/users/carol")


def test_kick_and_reset_of_an_unknown_user_are_both_404(node):
    for action in ("kick", "reset"):
        r = node.post(f"/api/v1/users/nobody/{action}")
        assert r.status == 404, (action, r.status, r.text)
        assert r.json()["message"] == "user 'nobody' not found"
    r = node.post("/api/v1/users/default/kick")
    assert r.status == 200 and r.json()["closed"] == 0


def test_node_lists_its_listeners(node):
    info = node.get("/api/v1/node").json()
    listeners = {item["name"]: item for item in info["listeners"]}
    assert listeners["listen (Hysteria 2)"]["protocol"] == "udp"
    assert listeners["control.listen"] == {"name": "control.listen", "protocol": "tcp",
                                           "listen": f"127.0.0.1:{node.control_port}"}
    assert info["control"]["listen"] == listeners["control.listen"]["listen"]
    hy2 = listeners["listen (Hysteria 2)"]["listen"]
    assert hy2.rsplit(":", 1)[1].isdigit() and int(hy2.rsplit(":", 1)[1]) > 0


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
