"""Users of the face: CRUD round trip, the same rows through /api/v1 and the Traffic Stats
API, validation that changes nothing, and random JSON against the user routes."""
from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastpath.hy2.client.client import simple_client
from fastpath.worker.event_loop import run

pytestmark = pytest.mark.integration

GIB = 1024 ** 3


def test_crud_round_trip_is_the_nodes_user_table(node, scale, targets):
    r = scale("POST", "/users", {"username": "carol", "password": "pw-carol", "traffic_limit_gb": 2,
                                 "expiry_date": "2031-05-06", "exit_mode": "quality"})
    assert r.status == 201, r.text
    user = r.json()
    uid = user["id"]
    assert len(uid) == 8 and int(uid, 16) >= 0
    assert user["traffic_limit"] == 2 * GIB and user["traffic_used"] == 0
    assert user["expiry"].startswith("2031-05-06T00:00:00") and user["expiry_date"] == "2031-05-06"
    assert user["enabled"] is True and user["exit_via"] == "" and user["exit_mode"] == "quality"
    assert any(u["id"] == uid for u in scale.get("/users").json())
    # The node's own API sees the same user: secret username:password, limit, expiry.
    native = node.get(f"/api/v1/users/{uid}").json()
    assert native["auth_secret"] == "carol:pw-carol" and native["source"] == "hy2scale"
    assert native["traffic_limit"] == 2 * GIB and native["expiry"].startswith("2031-05-06")
    # Partial update: only the given fields change.
    r = scale("PUT", f"/users/{uid}", {"password": "pw2", "traffic_limit": 1000, "expiry": ""})
    assert r.status == 200, r.text
    assert r.json()["username"] == "carol" and r.json()["traffic_limit"] == 1000 and r.json()["expiry"] == ""
    assert node.get(f"/api/v1/users/{uid}").json()["auth_secret"] == "carol:pw2"
    # A change made through the native API shows here.
    assert node.request("PATCH", f"/api/v1/users/{uid}", {"enabled": False}).status == 200
    assert scale.get(f"/users/{uid}").json()["enabled"] is False
    r = scale("PUT", f"/users/{uid}/toggle")
    assert r.status == 200 and r.json()["enabled"] is True
    assert node.get(f"/api/v1/users/{uid}").json()["enabled"] is True
    # The Traffic Stats API lists it under its id once it moved bytes: 400 echoed (800 of
    # its 1000-byte limit).
    assert uid not in node.get("/traffic").json()

    async def echo():
        client = simple_client(node.hy2, "carol:pw2")
        try:
            await asyncio.wait_for(client.ensure_connected(), 15)
            reader, writer = await client.open_tcp(f"127.0.0.1:{targets.echo}")
            writer.write(b"c" * 400)
            assert await reader.readexactly(400) == b"c" * 400
            writer.close()
        finally:
            await client.close()

    run(echo())
    assert node.get("/traffic").json()[uid] == {"tx": 400, "rx": 400}
    assert scale("DELETE", f"/users/{uid}").status == 200
    assert scale.get(f"/users/{uid}").status == 404
    assert node.get(f"/api/v1/users/{uid}").status == 404
    assert scale("DELETE", f"/users/{uid}").status == 404


def test_native_users_are_listed_but_not_managed_here(node, scale):
    """One user table: the face lists and shows every user of the node, whichever face made
    it (under its id, without that face's secret), and refuses to change another face's."""
    assert node.post("/api/v1/users", {"id": "native-one", "auth_secret": "n1", "traffic_limit": 5000}).status == 201
    listed = {u["id"]: u for u in scale.get("/users").json()}
    assert listed["native-one"]["username"] == "native-one"
    assert listed["native-one"]["password"] == "" and listed["native-one"]["traffic_limit"] == 5000
    shown = scale.get("/users/native-one")
    assert shown.status == 200 and shown.json()["traffic_used"] == listed["native-one"]["traffic_used"] == 0
    for method, path, body in (("PUT", "/users/native-one", {"enabled": False}),
                               ("PUT", "/users/native-one/toggle", None),
                               ("PUT", "/users/native-one/reset-traffic", None),
                               ("DELETE", "/users/native-one", None)):
        r = scale(method, path, body)
        assert r.status == 409 and "managed by the native face" in r.json()["message"], (path, r.text)
    assert node.get("/api/v1/users/native-one").json()["enabled"] is True
    assert scale.get("/users/nobody-here").status == 404
    assert node.request("DELETE", "/api/v1/users/native-one").status == 204


@pytest.mark.parametrize("body, status, words", [
    ({"password": "x"}, 400, "username"),
    ({"username": "a:b", "password": "x"}, 400, "':'"),
    ({"username": "dave", "password": ""}, 400, "password"),
    ({"username": "dave", "password": "x", "traffic_limit": -1}, 400, "traffic_limit"),
    ({"username": "dave", "password": "x", "traffic_limit_gb": "lots"}, 400, "traffic_limit_gb"),
    ({"username": "dave", "password": "x", "expiry": "tomorrow"}, 400, "expiry"),
    ({"username": "dave", "password": "x", "expiry_date": "2030-13-01"}, 400, "expiry_date"),
    ({"username": "dave", "password": "x", "enabled": "yes"}, 400, "enabled"),
    ({"username": "dave", "password": "x", "exit_mode": "fastest"}, 400, "exit_mode"),
    ({"username": "dave", "password": "x", "colour": "red"}, 400, "colour"),
    ({"username": "dave", "password": "x", "exit_paths": ["us/us-east"]}, 400, "not a client"),
    ({"username": "dave", "password": "x", "exit_paths": ["us", "jp"]}, 400, "exit_mode 'quality' or 'aggregate'"),
    ({"username": "dave", "password": "x", "exit_paths": ["us/us"], "exit_mode": ""}, 400, "revisits"),
    ({"username": "dave", "password": "x", "exit_via": "us"}, 400, "not a client"),
])
def test_bad_bodies_are_refused_and_change_nothing(node, scale, body, status, words):
    before = node.get("/api/v1/users").json()["total"]
    r = scale("POST", "/users", body)
    assert r.status == status, r.text
    assert words in r.json()["message"]
    assert node.get("/api/v1/users").json()["total"] == before


def test_username_is_unique_and_a_failed_update_changes_nothing(scale):
    a = scale("POST", "/users", {"username": "erin", "password": "p1"}).json()
    assert scale("POST", "/users", {"username": "ERIN", "password": "p2"}).status == 409
    b = scale("POST", "/users", {"username": "frank", "password": "p3"}).json()
    r = scale("PUT", f"/users/{b['id']}", {"username": "erin", "traffic_limit": 5})
    assert r.status == 409
    r = scale("PUT", f"/users/{b['id']}", {"traffic_limit": 5, "enabled": "no"})
    assert r.status == 400
    after = scale.get(f"/users/{b['id']}").json()
    assert after["username"] == "frank" and after["traffic_limit"] == 0 and after["enabled"] is True
    for u in (a, b):
        scale("DELETE", f"/users/{u['id']}")


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=12)
FIELDS = st.sampled_from(["username", "password", "exit_via", "exit_paths", "exit_mode", "traffic_limit",
                          "traffic_limit_gb", "expiry", "expiry_date", "enabled", "id", "x"])
BODIES = st.one_of(JSON, st.dictionaries(FIELDS, JSON, max_size=8))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, method=st.sampled_from(["POST", "PUT"]))
def test_random_json_never_gets_a_500(node, scale, body, method):
    try:
        raw = json.dumps(body, allow_nan=True)
    except (ValueError, OverflowError):
        return
    path = "/users" if method == "POST" else "/users/00000000"
    r = node.request(method, "/scale/api" + path, raw.encode(),
                     headers={"Authorization": f"Bearer {scale.token}", "Content-Type": "application/json"})
    assert r.status < 500 or r.status == 501, r.text
    assert isinstance(r.json(), dict)
    if r.status == 201:                       # a valid random user: remove it again
        assert scale("DELETE", f"/users/{r.json()['id']}").status == 200


OTHER_ROUTES = [("PUT", "/users/{id}"), ("PUT", "/users/{id}/toggle"), ("PUT", "/node"),
                ("PUT", "/settings/ui"), ("PUT", "/graph-layout"), ("POST", "/restore"),
                ("POST", "/check-ports"), ("DELETE", "/sessions/x")]


@pytest.fixture(scope="module")
def fuzz_user(scale):
    r = scale("POST", "/users", {"username": "fuzzed", "password": "f"})
    assert r.status == 201
    return r.json()["id"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES | st.dictionaries(st.sampled_from(["positions", "ports", "dns", "session_timeout", "name",
                                                        "server", "format", "version", "users"]), JSON,
                                     max_size=4),
       route=st.sampled_from(OTHER_ROUTES))
def test_random_json_on_the_other_routes_never_gets_a_500(node, scale, fuzz_user, body, route):
    try:
        raw = json.dumps(body, allow_nan=True)
    except (ValueError, OverflowError):
        return
    method, path = route
    r = node.request(method, "/scale/api" + path.format(id=fuzz_user), raw.encode(),
                     headers={"Authorization": f"Bearer {scale.token}", "Content-Type": "application/json"})
    assert r.status < 500 or r.status == 501, (route, raw, r.text)
    assert isinstance(r.json(), dict)
