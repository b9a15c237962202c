"""Graph layout and its SSE stream, backup and restore, node and UI settings, the port check,
the 501 table and the OpenAPI entries."""
from __future__ import annotations

import http.client
import json
import time

import pytest

from fastpath.control.hy2scale.unsupported import UNSUPPORTED

pytestmark = pytest.mark.integration


class EventStream:
    """A real HTTP client of the SSE route: events and comments, line by line."""

    def __init__(self, node, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", node.control_port, timeout=5)
        self.conn.request("GET", f"/scale/api/graph-layout/stream?token={token}")
        self.resp = self.conn.getresponse()

    def next(self, timeout=5.0):
        """The next event's data (parsed) or ``":ping"`` for a comment."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.resp.readline().decode()
            if line.startswith("data: "):
                return json.loads(line[6:])
            if line.startswith(":"):
                return ":" + line[1:].strip()
        raise TimeoutError("no event")

    def close(self):
        self.conn.close()


def test_layout_put_get_and_the_stream_follows_changes(node, scale):
    assert scale("PUT", "/graph-layout", {"positions": {"a": {"x": 1, "y": 2}}}).status == 200
    streams = [EventStream(node, scale.token) for _ in range(3)]
    try:
        assert all(s.resp.status == 200 for s in streams)
        assert streams[0].resp.getheader("Content-Type").startswith("text/event-stream")
        for s in streams:
            assert s.next() == {"positions": {"a": {"x": 1, "y": 2}}}
        for n in range(3):                           # several PUTs: each lands on either process
            layout = {"me": {"x": n, "y": -n * 1.5}, "jp": {"x": 100, "y": 200}}
            r = scale("PUT", "/graph-layout", layout)           # the bare map is accepted too
            assert r.status == 200 and r.json() == {"positions": layout}
            for s in streams:
                got = s.next()
                while got == ":ping":
                    got = s.next()
                assert got == {"positions": layout}
        assert scale.get("/graph-layout").json() == {"positions": layout}
        assert streams[0].next(timeout=3) == ":ping"            # layoutPing is 1 s here
    finally:
        for s in streams:
            s.close()
    assert node.get("/scale/api/graph-layout/stream").status == 401
    for bad in ([1], {"a": {"x": "1", "y": 2}}, {"a": {"x": 1}}, {"positions": 5}, {"": {"x": 1, "y": 1}}):
        r = scale("PUT", "/graph-layout", bad)
        assert r.status == 400, (bad, r.text)
    assert scale.get("/graph-layout").json() == {"positions": layout}


def comparable(doc):
    return {k: v for k, v in doc.items() if k not in ("created", "sha256")}


def test_backup_restore_round_trip_and_bad_archives_change_nothing(node, scale):
    made = [scale("POST", "/users", {"username": f"bk{i}", "password": f"p{i}", "traffic_limit": i * 1000})
            .json() for i in range(3)]
    scale("PUT", "/node", {"name": "bk-node"})
    scale("PUT", "/settings/ui", {"dns": "1.1.1.1"})
    scale("PUT", "/graph-layout", {"n1": {"x": 5, "y": 6}})
    r = scale.get("/backup")
    assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
    saved = r.json()
    assert {u["username"] for u in saved["users"]} >= {"bk0", "bk1", "bk2"}
    # Change everything, then restore.
    scale("DELETE", f"/users/{made[0]['id']}")
    scale("PUT", f"/users/{made[1]['id']}", {"password": "changed"})
    extra = scale("POST", "/users", {"username": "bk-extra", "password": "x"}).json()
    scale("PUT", "/node", {"name": "other"})
    scale("PUT", "/graph-layout", {"n2": {"x": 0, "y": 0}})
    r = scale("POST", "/restore", saved)
    assert r.status == 200, r.text
    assert comparable(scale.get("/backup").json()) == comparable(saved)
    assert scale.get(f"/users/{extra['id']}").status == 404
    assert node.get(f"/api/v1/users/{made[1]['id']}").json()["auth_secret"] == "bk1:p1"
    assert scale.get("/node").json()["name"] == "bk-node"
    # Bad archives: nothing changes.
    before = comparable(scale.get("/backup").json())
    text = json.dumps(saved)
    tampered = dict(saved, users=saved["users"][:-1])
    unchecked = {k: v for k, v in saved.items() if k != "sha256"}
    late_fault = dict(unchecked, users=saved["users"] + [{"id": "0badbeef", "username": "z", "password": "z",
                                                           "traffic_limit": -5}])
    dup = dict(unchecked, users=saved["users"] + [dict(saved["users"][0])])
    bad_layout = dict(unchecked, users=[], layout={"positions": {"a": {"x": "no", "y": 0}}})
    for body in (text[: len(text) // 2], tampered, late_fault, dup, bad_layout, {"format": "x"}, [saved]):
        r = node.request("POST", "/scale/api/restore", body if isinstance(body, str) else json.dumps(body),
                         headers={"Authorization": f"Bearer {scale.token}"})
        assert r.status == 400, r.text
        assert comparable(scale.get("/backup").json()) == before
    # A checksum-less but valid document restores (hand-made backups are allowed).
    assert scale("POST", "/restore", unchecked).status == 200


def test_node_settings_ui_and_ports(node, scale):
    first = scale.get("/node").json()
    assert len(first["node_id"]) == 8 and first["server"]["listen"] == node.hy2
    r = scale("PUT", "/node", {"exit_node": False})
    assert r.status == 200 and r.json()["exit_node"] is False and r.json()["name"] == first["name"]
    assert r.json()["node_id"] == first["node_id"]
    r = scale("PUT", "/node", {"server": {"listen": "0.0.0.0:5565"}})
    assert r.json()["server"]["listen"] == "0.0.0.0:5565"
    assert r.json()["server_effective"]["listen"] == node.hy2     # the listener follows the config
    assert scale("PUT", "/node", {"server": {"listen": "nowhere"}}).status == 400
    assert scale("PUT", "/node", {"name": 7}).status == 400
    traffic = scale.get("/node/traffic").json()
    assert set(traffic) == {"tx_bytes", "rx_bytes"}
    ui = scale.get("/settings/ui").json()
    assert ui["listen"].endswith(f":{node.control_port}") and ui["base_path"] == "/scale"
    assert ui["session_timeout"] == 12 * 3600
    assert scale("PUT", "/settings/ui", {"session_timeout": 7200}).json()["session_timeout"] == 7200
    r = scale("PUT", "/settings/ui", {"port": 1})                  # unknown keys are ignored
    assert r.status == 200 and r.json()["ignored"] == ["port"]
    assert scale("PUT", "/settings/ui", {"session_timeout": 12 * 3600}).status == 200
    r = scale("POST", "/check-ports", {"ports": [node.control_port, 0x7FFF]})
    assert r.status == 200
    assert r.json()["results"][str(node.control_port)] is False
    for bad in ({"ports": [0]}, {"ports": "80"}, {"ports": [True]}, {}):
        assert scale("POST", "/check-ports", bad).status == 400
    assert scale.get("/build-info").json()["version"]
    assert len(node.get("/scale/api/build-id").json()["build_id"]) == 64


@pytest.mark.parametrize("prefix, what, why", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_what_is_not_supported_answers_501(scale, prefix, what, why):
    for method, path in (("GET", prefix), ("POST", prefix), ("PUT", prefix + "/x/y"), ("DELETE", prefix + "/x")):
        r = scale(method, path, {} if method in ("POST", "PUT") else None)
        assert r.status == 501, (method, path, r.text)
        assert why in r.json()["message"]
    assert scale.get("/no-such-route").status == 404


def test_openapi_lists_the_face(node):
    doc = node.get("/openapi.json").json()
    paths = {p for p in doc["paths"] if p.startswith("/scale/api/")}
    assert {"/scale/api/login", "/scale/api/users/{user_id}/toggle", "/scale/api/sessions/{key}",
            "/scale/api/graph-layout/stream", "/scale/api/restore", "/scale/api/wireguard"} <= paths
    assert doc["paths"]["/scale/api/users"]["get"]["security"] == [{"hy2scale": []}]
    assert "security" not in doc["paths"]["/scale/api/login"]["post"]


def test_layout_streams_keep_threads_for_the_rest_of_the_api(tmp_path):
    """With 4 threads, 2 streams at most per process; the API still answers, and a closed
    stream gives its place back."""
    from tests.hy2scale.conftest import ScaleClient
    from tests.support.node import NodeProcess
    with NodeProcess(tmp_path, {"control": {"threads": 4}, "scale": {"layoutPoll": "50ms"}}) as n:
        c = ScaleClient(n)
        held = [EventStream(n, c.token) for _ in range(2)]
        for s in held:
            assert s.resp.status == 200 and s.next() == {"positions": {}}
        third = EventStream(n, c.token)
        assert third.resp.status == 503 and "in use" in json.loads(third.resp.read())["message"]
        third.close()
        assert c.get("/users").status == 200
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:                   # the server notices the closed socket at its next write
            c("PUT", "/graph-layout", {"k": {"x": time.monotonic(), "y": 0}})
            again = EventStream(n, c.token)
            if again.resp.status == 200 or time.monotonic() > deadline:
                break
            again.close()
            time.sleep(0.2)
        assert again.resp.status == 200
        again.close()
        for s in held:
            s.close()
