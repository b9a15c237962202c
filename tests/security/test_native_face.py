"""The native API and /metrics behind the control token, whatever the path's spelling."""
from __future__ import annotations

import json

from tests.security.conftest import AUTH, raw_request


def test_extra_slashes_do_not_skip_the_token(exposed):
    for path in ("//api/v1/node", "//metrics", "///api/v1/users", "/api/v1//users/"):
        assert raw_request(exposed, "GET", path).status == 401, path
        assert raw_request(exposed, "GET", path, headers=AUTH).status == 200, path


def test_a_user_posted_past_the_check_is_not_created(exposed):
    body = json.dumps({"id": "evil"}).encode()
    r = raw_request(exposed, "POST", "//api/v1/users", body, {"Content-Type": "application/json"})
    assert r.status == 401
    assert "auth_secret" not in r.text
    assert raw_request(exposed, "GET", "/api/v1/users/evil", headers=AUTH).status == 404


def test_probes_stay_public(exposed):
    assert raw_request(exposed, "GET", "/api/v1/health").status == 200
    assert raw_request(exposed, "GET", "//api/v1/ping/").status == 200
    assert raw_request(exposed, "GET", "/openapi.json").status == 200


def test_unknown_routes_are_404_not_401(exposed):
    assert raw_request(exposed, "GET", "/api/v1/nothing-here").status == 404
