"""README: "beyond loopback the control token is required" — also when the operator set none.
A node whose control API listens on every address without ``control.token`` asks for the token
it generated in ``secrets.json``, prints it once at first start, and lets nothing through
without it (the native API, /metrics, the node's users)."""
from __future__ import annotations

import json

import pytest

from tests.support.node import NodeProcess, free_tcp_port

PROTECTED = ("/api/v1/node", "/api/v1/users", "/metrics", "/api/v1/connections")


@pytest.mark.integration
def test_an_exposed_node_without_a_token_asks_for_the_generated_one(tmp_path):
    cfg = {"control": {"listen": f"0.0.0.0:{free_tcp_port()}"}}
    with NodeProcess(tmp_path, cfg) as node:
        token = json.loads((node.data_dir / "secrets.json").read_text())["control_token"]
        assert len(token) >= 32
        for path in PROTECTED:
            assert node.get(path).status == 401, path
            assert node.get(path, headers={"Authorization": "Bearer wrong-" + token}).status == 401, path
            assert node.get(path, headers={"Authorization": f"Bearer {token}"}).status == 200, path
        # A write without the token changes nothing.
        r = node.post("/api/v1/users", {"id": "mallory", "auth": "x" * 16})
        assert r.status == 401
        users = node.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"}).json()
        assert "mallory" not in json.dumps(users)
        # Health stays open (load balancers probe it) and says nothing secret.
        health = node.get("/api/v1/health")
        assert health.status == 200 and token not in health.text
    # The first start printed the token, because beyond loopback it is needed.
    assert token in node.log()
