"""The mesh routes of the HY2 SCALE face on one node: rules CRUD as the reference shapes it,
and random bodies on every new route (a 4xx with a message, never a 500, nothing
half-applied)."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hy2scale.conftest import SCALE, ScaleClient
from tests.support.node import NodeProcess, free_udp_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    with NodeProcess(tmp_path_factory.mktemp("mesh-api"), {"scale": dict(SCALE)}) as n:
        n.scale = ScaleClient(n)
        for name in ("b", "e"):
            r = n.scale("POST", "/clients", {"name": name, "addr": f"127.0.0.1:{free_udp_port()}",
                                             "password": "x", "insecure": True})
            assert r.status == 201, r.text
        yield n


def test_rules_crud_as_the_reference(one):
    s = one.scale
    assert s.get("/rules").json() == {"available": True, "rules": []}
    r = s("POST", "/rules", {"id": "r1", "name": "corp", "type": "ip", "targets": ["10.0.0.0/8"],
                             "exit_via": "b", "enabled": True, "tun_active": True})
    assert r.json() == {"status": "ok", "id": "r1"}
    rule = s.get("/rules/r1").json()
    assert rule == {"id": "r1", "name": "corp", "type": "ip", "targets": ["10.0.0.0/8"], "exit_via": "b",
                    "exit_paths": ["b"], "exit_mode": "", "enabled": True, "priority": 0, "use_tun": False}
    assert s("POST", "/rules", {**rule}).status == 409
    r = s("PUT", "/rules/r1", {**rule, "type": "domain", "targets": ["corp.example"], "exit_paths": ["b/x", "e/x"],
                               "exit_mode": "aggregate"})
    assert r.json() == {"status": "ok"}, r.text
    got = s.get("/rules/r1").json()
    assert got["exit_via"] == "b/x" and got["exit_mode"] == "aggregate" and got["type"] == "domain"
    assert s("PUT", "/rules/r1/toggle", {"enabled": False}).status == 200
    assert s.get("/rules/r1").json()["enabled"] is False
    # The id may be left out: one is generated.
    r = s("POST", "/rules", {"type": "ip", "targets": ["192.0.2.1"], "exit_paths": ["e"], "enabled": True})
    new_id = r.json()["id"]
    assert len(new_id) == 8 and s.get(f"/rules/{new_id}").status == 200
    # Refused whole: the stored rules are unchanged.
    before = s.get("/rules").json()
    for body, words in (({"type": "ip", "targets": ["10.0.0.0/8"]}, "required"),
                        ({"type": "geo", "targets": ["x"], "exit_via": "b"}, "type must be"),
                        ({"type": "ip", "targets": ["10.0.0.0/33"], "exit_via": "b"}, "ip target"),
                        ({"type": "ip", "targets": ["10.0.0.1"], "exit_via": "nope"}, "not a client"),
                        ({"type": "ip", "targets": ["10.0.0.1"], "exit_paths": ["b/c", "e/d"],
                          "exit_mode": "aggregate"}, "same exit node"),
                        ({"type": "ip", "targets": ["10.0.0.1"], "exit_paths": ["b/b"]}, "revisits")):
        r = s("POST", "/rules", body)
        assert r.status == 400 and words in r.json()["message"], (body, r.text)
        r = s("PUT", "/rules/r1", body)
        assert r.status == 400, (body, r.text)
    assert s("PUT", "/rules/nope", {"type": "ip", "targets": ["10.0.0.1"], "exit_via": "b"}).status == 404
    assert s("PUT", "/rules/nope/toggle", {"enabled": True}).status == 404
    assert s.get("/rules").json() == before
    # A client that a rule exits through cannot be deleted.
    r = s("DELETE", "/clients/e")
    assert r.status == 409 and "rule" in r.text
    for rid in ("r1", new_id):
        assert s("DELETE", f"/rules/{rid}").status == 200
    assert s.get("/rules").json()["rules"] == []


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=12),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=10)
KEYS = st.sampled_from(["id", "name", "type", "targets", "exit_via", "exit_paths", "exit_mode", "enabled",
                        "priority", "use_tun", "x"])
VALUES = {"type": st.sampled_from(["ip", "domain", "x"]),
          "targets": st.lists(st.sampled_from(["10.0.0.0/8", "1.2.3.4", "a.example", "::1", "bad..", "1.1.1.9-1.1.1.1"]),
                              max_size=3),
          "exit_paths": st.lists(st.sampled_from(["b", "e", "b/c", "b/b", "e/c", "zz", ""]), max_size=3),
          "exit_via": st.sampled_from(["b", "e", "b/c", "", "zz"]),
          "exit_mode": st.sampled_from(["", "quality", "aggregate", "fast"])}
SHAPED = st.fixed_dictionaries({}, optional={k: v | JSON for k, v in VALUES.items()})
BODIES = st.one_of(JSON, st.dictionaries(KEYS, JSON, max_size=6), SHAPED)
ROUTES = [("POST", "/rules"), ("PUT", "/rules/fixed"), ("PUT", "/rules/fixed/toggle"), ("PUT", "/peers/b/nested"),
          ("PUT", "/peers/b/c/nested"), ("PUT", "/peers/zz/nested"), ("GET", "/peers/b/peers"),
          ("GET", "/diag/paths"), ("DELETE", "/rules/none")]


def state(s):
    return s.get("/rules").json(), s.get("/topology").json()[1:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, route=st.sampled_from(ROUTES))
def test_random_bodies_on_the_mesh_routes(one, body, route):
    s = one.scale
    if s.get("/rules/fixed").status == 404:
        assert s("POST", "/rules", {"id": "fixed", "type": "ip", "targets": ["10.9.0.0/16"], "exit_via": "b",
                                    "enabled": True}).status == 200
    before = state(s)
    method, path = route
    r = one.request(method, "/scale/api" + path, json.dumps(body).encode(),
                    headers={"Authorization": f"Bearer {s.token}", "Content-Type": "application/json"})
    assert r.status < 500, (route, body, r.text)
    if r.status >= 400:
        assert r.json().get("message") or r.json().get("error"), r.text
        assert state(s) == before, (route, body)         # refused: nothing changed
    rules = s.get("/rules").json()["rules"]
    for rule in rules:                                   # whatever was stored is whole
        assert rule["type"] in ("ip", "domain") and rule["targets"] and rule["exit_paths"]
        assert rule["exit_via"] == rule["exit_paths"][0]


def test_backup_carries_rules_and_nested_flags(one):
    s = one.scale
    assert s("POST", "/rules", {"id": "keep", "type": "domain", "targets": ["corp.example"], "exit_via": "b",
                                "enabled": True}).status == 200
    assert s("PUT", "/peers/b/nested", {"enabled": True}).status == 200
    saved = s.get("/backup").json()
    assert saved["version"] == 3 and [r["id"] for r in saved["rules"] if r["id"] == "keep"] == ["keep"]
    assert saved["peers"]["b"] == {"nested": True}
    assert s("DELETE", "/rules/keep").status == 200
    assert s("PUT", "/peers/b/nested", {"enabled": False}).status == 200
    # A rule that names a client the backup lacks: refused, nothing restored.
    bad = dict(saved, rules=saved["rules"] + [{"id": "x", "type": "ip", "targets": ["10.0.0.1"],
                                               "exit_via": "ghost", "enabled": True}])
    bad.pop("sha256")
    r = s("POST", "/restore", bad)
    assert r.status == 400 and "rules[" in r.text and "ghost" in r.text, r.text
    assert s.get("/rules/keep").status == 404
    r = s("POST", "/restore", saved)
    assert r.status == 200, r.text
    assert s.get("/rules/keep").json()["targets"] == ["corp.example"]
    assert next(p for p in s.get("/topology").json() if p["name"] == "b")["nested"] is True
    assert s("DELETE", "/rules/keep").status == 200
