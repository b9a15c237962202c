"""The Traffic Stats secret on the control port, whatever the path's spelling; and the control
token in its place on an exposed node without a secret."""
from __future__ import annotations

import json
import time

from tests.security.conftest import AUTH, SECRET, TOKEN, exposed_config, raw_request
from tests.support.node import NodeProcess


def test_slashes_do_not_skip_the_secret(exposed):
    for path in ("/traffic", "//traffic", "/traffic/", "/online/", "/dump/streams/", "//online//"):
        r = raw_request(exposed, "GET", path)
        assert r.status == 401, path
        assert r.text == "unauthorized\n"
        assert raw_request(exposed, "GET", path, headers={"Authorization": SECRET}).status == 200, path


def test_kick_with_a_trailing_slash_needs_the_secret(exposed):
    r = raw_request(exposed, "POST", "/kick/", json.dumps(["evil"]).encode())
    assert r.status == 401
    r = raw_request(exposed, "POST", "/kick/", json.dumps(["evil"]).encode(), {"Authorization": SECRET})
    assert r.status == 200


def test_without_a_secret_an_exposed_node_asks_the_control_token(tmp_path):
    cfg = exposed_config()
    del cfg["trafficStats"]
    with NodeProcess(tmp_path, cfg) as node:
        assert raw_request(node, "GET", "/traffic").status == 401
        assert raw_request(node, "GET", "/traffic", headers={"Authorization": "nope"}).status == 401
        assert raw_request(node, "GET", "/traffic", headers=AUTH).status == 200
        assert raw_request(node, "GET", "/traffic", headers={"Authorization": TOKEN}).status == 200
        # Said with "serving", once every child is ready (health answers before that).
        deadline = time.monotonic() + 30
        while "Traffic Stats routes ask the control token" not in node.log():
            assert time.monotonic() < deadline, node.log()[-3000:]
            time.sleep(0.2)
