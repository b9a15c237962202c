"""Login, tokens (sliding expiry, ?token= only on the stream), password change and the login
rate limit, against a node of their own (short token TTL, 3 attempts)."""
from __future__ import annotations

import sqlite3
import time

import pytest

from tests.hy2scale.conftest import ScaleClient, sha
from tests.support.node import NodeProcess

pytestmark = pytest.mark.integration

TTL = 2.0


@pytest.fixture(scope="module")
def anode(tmp_path_factory):
    cfg = {"scale": {"tokenTtl": f"{TTL}s", "loginAttempts": 3, "loginWindow": "60s"}}
    with NodeProcess(tmp_path_factory.mktemp("scale-auth"), cfg) as n:
        yield n


def login(node, username, password_hex):
    return node.post("/scale/api/login", {"username": username, "password": password_hex})


def test_default_login_forces_a_password_change_and_tokens_guard_the_routes(anode):
    r = login(anode, "admin", sha("admin"))
    assert r.status == 200, r.text
    body = r.json()
    assert body["force_password_change"] is True and len(body["token"]) == 64
    token = body["token"]
    assert anode.get("/scale/api/users").status == 401
    assert anode.get("/scale/api/users", headers={"Authorization": "Bearer nope"}).status == 401
    assert anode.get("/scale/api/users", headers={"Authorization": f"Bearer {token}"}).status == 200
    # ?token= only where EventSource needs it.
    assert anode.get(f"/scale/api/users?token={token}").status == 401
    # Public routes.
    assert anode.get("/scale/api/build-id").status == 200
    # The store holds neither the SHA-256 hex nor the token.
    db = sqlite3.connect(anode.data_dir / "state.db")
    rows = " ".join(f"{k}={v}" for k, v in db.execute("SELECT key, value FROM settings"))
    db.close()
    assert "hy2scale.credentials" in rows
    assert sha("admin") not in rows and token not in rows


@pytest.mark.parametrize("body, status", [
    ({"username": "admin", "password": sha("wrong")}, 401),
    ({"username": "root", "password": sha("admin")}, 401),
    ({"username": "admin", "password": "admin"}, 400),          # not a SHA-256 hex
    ({"username": "admin"}, 400),
    ({"username": 5, "password": sha("admin")}, 400),
    ([1, 2], 400),
])
def test_bad_logins(anode, body, status):
    r = anode.post("/scale/api/login", body)
    assert r.status == status, r.text
    assert "token" not in r.json() and r.json()["message"]
    # A success clears the failures, so the next cases start from zero.
    assert login(anode, "admin", sha("admin")).status == 200


def test_token_expiry_slides_with_use(anode):
    c = ScaleClient(anode)
    for _ in range(4):                        # 4 x 0.8 s: longer than the TTL, used all along
        time.sleep(0.8)
        assert c.get("/users").status == 200
    time.sleep(TTL + 0.5)
    r = c.get("/users")
    assert r.status == 401 and "expired" in r.json()["message"]


def test_password_change_revokes_every_token(anode):
    a, b = ScaleClient(anode), ScaleClient(anode)
    r = a("PUT", "/settings/password", {"current_password": sha("nope"), "new_password": sha("s3cret")})
    assert r.status == 403
    r = a("PUT", "/settings/password", {"current_password": sha("admin"), "new_password": "short"})
    assert r.status == 400
    assert b.get("/users").status == 200                     # nothing changed so far
    r = a("PUT", "/settings/password", {"current_password": sha("admin"), "new_username": "boss",
                                        "new_password": sha("s3cret")})
    assert r.status == 200, r.text
    assert a.get("/users").status == 401 and b.get("/users").status == 401
    assert login(anode, "admin", sha("admin")).status == 401
    fresh = login(anode, "boss", sha("s3cret"))
    assert fresh.status == 200 and fresh.json()["force_password_change"] is False


def test_tokens_and_credentials_survive_a_restart(anode):
    c = ScaleClient(anode, "boss", "s3cret")
    # A stored session timeout overrides the config's 2 s (a restart may take longer).
    assert c("PUT", "/settings/ui", {"session_timeout": 600}).json()["session_timeout"] == 600
    anode.stop()
    anode.start()
    assert c.get("/users").status == 200
    assert login(anode, "boss", sha("s3cret")).status == 200


def test_failed_logins_are_limited_per_address(anode):
    for _ in range(3):
        assert login(anode, "boss", sha("guess")).status == 401
    r = login(anode, "boss", sha("s3cret"))                  # even the right password now
    assert r.status == 429, r.text
    assert "too many" in r.json()["message"] and int(r.headers["Retry-After"]) > 0
    anode.stop()
    anode.start()                                             # the count is in the store
    assert login(anode, "boss", sha("s3cret")).status == 429
