"""HY2 SCALE behind its tokens whatever the path's spelling; on an exposed node the default
admin password opens nothing but the password change."""
from __future__ import annotations

import json

from tests.security.conftest import raw_request, sha

JSON = {"Content-Type": "application/json"}


def login(node, password="admin") -> dict:
    r = raw_request(node, "POST", "/scale/api/login",
                    json.dumps({"username": "admin", "password": sha(password)}).encode(), JSON)
    assert r.status == 200, r.text
    return r.json()


def test_slashes_do_not_skip_the_token(exposed):
    body = json.dumps({"username": "evil", "password": "x" * 8}).encode()
    assert raw_request(exposed, "POST", "//scale/api/users", body, JSON).status == 401
    for path in ("//scale/api/backup", "/scale//api/users/", "//scale/api/clients"):
        assert raw_request(exposed, "GET", path).status == 401, path


def test_default_password_opens_only_the_password_change(exposed):
    first = login(exposed)
    assert first["force_password_change"] is True
    bearer = {"Authorization": f"Bearer {first['token']}", **JSON}
    for method, path in (("GET", "/scale/api/users"), ("GET", "/scale/api/backup"),
                         ("GET", "/scale/api/clients"), ("POST", "/scale/api/restore")):
        r = raw_request(exposed, method, path, b"{}" if method == "POST" else None, bearer)
        assert r.status == 403, (path, r.status)
        assert "default password" in r.text
    # The change itself is served, and afterwards the face works.
    r = raw_request(exposed, "PUT", "/scale/api/settings/password",
                    json.dumps({"current_password": sha("admin"), "new_password": sha("s3cret-pw")}).encode(),
                    bearer)
    assert r.status == 200, r.text
    token = login(exposed, "s3cret-pw")["token"]
    r = raw_request(exposed, "GET", "/scale/api/users", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200
    assert "default password" in exposed.log()
