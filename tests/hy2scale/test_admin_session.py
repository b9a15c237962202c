"""One administrator, two credentials: the HY2 SCALE admin's session opens the node's other
faces (native API, /metrics, the stream API) where the control token does, and the control token
opens the HY2 SCALE face, so the node's dashboard logs in with either.  The HY2 SCALE rules
still hold for its sessions: a password change ends them everywhere, and beyond loopback a
session made with the default password opens nothing else."""
from __future__ import annotations

import pytest

from tests.hy2scale.conftest import sha
from tests.support.node import NodeProcess, free_tcp_port

TOKEN = "control-token-of-this-test"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def login(node, password: str = "admin") -> dict:
    r = node.post("/scale/api/login", {"username": "admin", "password": sha(password)})
    assert r.status == 200, r.text
    return r.json()


@pytest.mark.integration
def test_sessions_and_the_control_token_open_each_others_faces(tmp_path):
    with NodeProcess(tmp_path, {"control": {"token": TOKEN}}) as node:
        session = login(node)["token"]
        for path in ("/api/v1/node", "/api/v1/users", "/metrics"):
            assert node.get(path).status == 401, path
            assert node.get(path, headers=bearer(session)).status == 200, path
        assert node.get("/streams", headers={"X-API-Token": session}).status == 200
        assert node.get("/streams", headers={"X-API-Token": "x" * 64}).status == 403
        # The control token opens the HY2 SCALE face.
        assert node.get("/scale/api/topology").status == 401
        assert node.get("/scale/api/topology", headers=bearer(TOKEN)).status == 200
        assert node.get("/scale/api/users", headers=bearer("y" * 64)).status == 401
        # A password change ends the session on every face.
        r = node.request("PUT", "/scale/api/settings/password",
                         {"current_password": sha("admin"), "new_password": sha("s3cret-pass")},
                         headers=bearer(session))
        assert r.status == 200, r.text
        assert node.get("/api/v1/node", headers=bearer(session)).status == 401
        fresh = login(node, "s3cret-pass")["token"]
        assert node.get("/api/v1/node", headers=bearer(fresh)).status == 200


@pytest.mark.integration
def test_beyond_loopback_a_default_password_session_opens_nothing_else(tmp_path):
    cfg = {"control": {"listen": f"0.0.0.0:{free_tcp_port()}", "token": TOKEN}}
    with NodeProcess(tmp_path, cfg) as node:
        body = login(node)
        assert body["force_password_change"] is True
        session = body["token"]
        assert node.get("/api/v1/node", headers=bearer(session)).status == 401
        assert node.get("/streams", headers={"X-API-Token": session}).status == 403
        r = node.request("PUT", "/scale/api/settings/password",
                         {"current_password": sha("admin"), "new_password": sha("an0ther-pass")},
                         headers=bearer(session))
        assert r.status == 200, r.text
        fresh = login(node, "an0ther-pass")["token"]
        assert node.get("/api/v1/node", headers=bearer(fresh)).status == 200
