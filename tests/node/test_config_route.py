"""``GET /api/v1/config`` and ``POST /api/v1/reload`` (the dashboard's Settings page): the
config the node runs with, credentials hidden, and a reload that applies a valid file and
refuses a broken one whole, with its error, keeping the running config."""
from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.support.node import NodeProcess

pytestmark = pytest.mark.integration

TOKEN = "config-route-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_config_hides_credentials_and_reload_applies_or_refuses(tmp_path):
    cfg = {"control": {"token": TOKEN}, "trafficStats": {"secret": "ts-secret-value"},
           "auth": {"type": "userpass", "userpass": {"alice": "alice-password"}},
           "obfs": {"type": "salamander", "salamander": {"password": "obfs-password"}}}
    with NodeProcess(tmp_path, cfg) as node:
        assert node.get("/api/v1/config").status == 401
        r = node.get("/api/v1/config", headers=AUTH)
        assert r.status == 200, r.text
        body = r.json()
        text = json.dumps(body)
        for secret in (TOKEN, "ts-secret-value", "alice-password", "obfs-password"):
            assert secret not in text, secret
        assert body["config"]["obfs"]["type"] == "salamander"
        assert body["config"]["control"]["token"] == "***"
        assert body["live"] and body["at_restart"]

        # A broken file: 400 with the loader's message, nothing changed.
        good = node.config_path.read_text()
        node.config_path.write_text(good + "\nbandwidth: {up: lots}\n")
        r = node.post("/api/v1/reload", headers=AUTH)
        assert r.status == 400, r.text
        assert "bandwidth" in r.text, r.text
        assert node.get("/api/v1/users", headers=AUTH).status == 200

        # A valid change: applied, the new token asked for.
        changed = yaml.safe_load(good)
        changed["control"]["token"] = "config-route-token-2"
        node.config_path.write_text(yaml.safe_dump(changed))
        r = node.post("/api/v1/reload", headers=AUTH)
        assert r.status == 200 and r.json()["reloaded"] is True, r.text
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and status != 401:
            try:
                status = node.get("/api/v1/users", headers=AUTH, timeout=2).status
            except OSError:
                status = None                   # gunicorn swapping its workers
            time.sleep(0.2)
        assert status == 401, f"the old token still works 20 s after the reload ({status})"
        assert node.get("/api/v1/users", headers={"Authorization": "Bearer config-route-token-2"}).status == 200
