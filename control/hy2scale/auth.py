"""Login, bearer tokens and the admin password of the HY2 SCALE face.

The client sends the hex SHA-256 of the password (the reference's scheme); the node keeps only
an scrypt digest of that hex with a random salt, so a copy of the store does not hand out a
value that logs in.  Defaults are admin/admin, and ``force_password_change`` is true while the
default password is in use.

Tokens are 32 random bytes (hex); the store keeps their SHA-256 with the time of last use, one
settings row each, so every control-API process sees them.  A token expires after the session
timeout without use (sliding; the last use is written at most every minute, or every quarter
of a short timeout).  Changing the password deletes every token.

Failed logins are counted per remote address in the store: after ``loginAttempts`` failures in
``loginWindow`` the address gets 429 until the window ends.  An attempt is counted before the
password is checked, so parallel guesses cannot overrun the limit.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

import falcon

from fastpath.control import validation as v
from fastpath.control.auth import bearer_token, required_token, token_matches
from fastpath.control.errors import bad_request
from fastpath.control.hy2scale.face import BASE, PREFIX, ScaleFace, read_setting, write_setting
from fastpath.control.route_guard import PUBLIC, Rule

CRED_KEY = PREFIX + "credentials"
TOKEN_PREFIX = PREFIX + "token."
FAIL_PREFIX = PREFIX + "login_fail."
DEFAULT_USERNAME = "admin"
DEFAULT_HASH = hashlib.sha256(b"admin").hexdigest()
SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
STREAM_PATHS = {BASE + "/graph-layout/stream"}     # EventSource: ?token= accepted
RELAY_MARK = "X-Hy2scale-Proxy"
DEFAULT_VIA_MESH = ("this node's HY2 SCALE admin still has the default password: change it on the node "
                    "itself before opening its UI through the mesh")


def relayed(req: falcon.Request) -> bool:
    """A request that came through the mesh's remote-UI tunnel (``fastpath.mesh.api_relay``
    sets the mark and drops any the caller sent): it arrives from loopback but comes from
    a peer node's caller, so it is treated as from beyond loopback."""
    return (req.get_header(RELAY_MARK) or "").lower() == "true"


def attempt_key(req: falcon.Request) -> str:
    """Failed logins are counted per address; tunnelled ones all arrive from loopback, so
    they are counted apart from the node's local callers (a guesser through the mesh cannot
    lock them out)."""
    return "mesh-relay" if relayed(req) else (req.remote_addr or "unknown")


USERNAME_MAX = 64


def unauthorized(message: str) -> falcon.HTTPUnauthorized:
    return falcon.HTTPUnauthorized(title="unauthorized", description=message, challenges=["Bearer"])


def _digest(sha_hex: str, salt: bytes, params: dict) -> str:
    return hashlib.scrypt(sha_hex.lower().encode(), salt=salt, dklen=32, maxmem=64 * 1024 * 1024,
                          **params).hex()


def make_credentials(username: str, sha_hex: str) -> dict:
    salt = secrets.token_bytes(16)
    return {"username": username, "salt": salt.hex(), "kdf": "scrypt", **SCRYPT,
            "hash": _digest(sha_hex, salt, SCRYPT),
            "default": sha_hex.lower() == DEFAULT_HASH}


def token_key(token: str) -> str:
    return TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest()


class Auth:
    def __init__(self, face: ScaleFace):
        self.face = face

    @property
    def store(self):
        return self.face.store

    # -- credentials ----------------------------------------------------------------------------
    def credentials(self) -> dict:
        creds = self.face.setting(CRED_KEY)
        if creds is None:
            fresh = make_credentials(DEFAULT_USERNAME, DEFAULT_HASH)
            with self.face.ledger.write() as db:
                creds = read_setting(db, CRED_KEY)
                if creds is None:
                    write_setting(db, CRED_KEY, fresh)
                    creds = fresh
        return creds

    def verify(self, username: str, sha_hex: str, creds: dict | None = None) -> bool:
        creds = creds or self.credentials()
        params = {k: creds[k] for k in ("n", "r", "p")}
        digest = _digest(sha_hex, bytes.fromhex(creds["salt"]), params)
        return hmac.compare_digest(digest, creds["hash"]) & hmac.compare_digest(
            username.encode(), creds["username"].encode())

    # -- login attempts -------------------------------------------------------------------------
    def take_attempt(self, addr: str) -> None:
        """Count one login attempt of ``addr``; 429 when it has no attempts left."""
        s = self.face.settings
        key = FAIL_PREFIX + addr
        now = time.time()
        with self.face.ledger.write() as db:
            rec = read_setting(db, key)
            if rec is None or now - rec["since"] >= s.login_window:
                rec = {"count": 0, "since": now}
            if rec["count"] >= s.login_attempts:
                wait = max(1, int(rec["since"] + s.login_window - now + 0.999))
                raise falcon.HTTPTooManyRequests(
                    title="too many login attempts",
                    description=f"too many failed logins from {addr}; try again in {wait} s",
                    retry_after=wait)
            rec["count"] += 1
            write_setting(db, key, rec)

    def clear_attempts(self, addr: str) -> None:
        with self.face.ledger.write() as db:
            db.delete_setting(FAIL_PREFIX + addr)

    # -- tokens ---------------------------------------------------------------------------------
    def issue_token(self) -> str:
        token = secrets.token_hex(32)
        now = time.time()
        ttl = self.face.token_ttl()
        with self.face.ledger.write() as db:
            # Forget expired tokens and old failure counts (cheap: only at login).
            for key, value in db.settings_with_prefix(TOKEN_PREFIX).items():
                if now - _last_use(value) > ttl:
                    db.delete_setting(key)
            for key, value in db.settings_with_prefix(FAIL_PREFIX).items():
                if now - _since(value) > self.face.settings.login_window:
                    db.delete_setting(key)
            write_setting(db, token_key(token), {"created": now, "last": now})
        return token

    def token_valid(self, token: str) -> bool:
        if not token or len(token) > 256:
            return False
        key = token_key(token)
        rec = self.face.setting(key)
        if rec is None:
            return False
        ttl = self.face.token_ttl()
        now = time.time()
        idle = now - rec["last"]
        if idle > ttl:
            with self.face.ledger.write() as db:
                db.delete_setting(key)
            return False
        if idle > min(60.0, ttl / 4):
            rec["last"] = now
            with self.face.ledger.write() as db:
                if read_setting(db, key) is not None:   # not revoked meanwhile
                    write_setting(db, key, rec)
        return True

    def admin_token_ok(self, token: str | None) -> bool:
        """A live session of this face, or the node's control token when one is in force (the
        node's dashboard logs in with either and reads this face's pages)."""
        if token is None:
            return False
        control = required_token(self.face.node)
        return (control is not None and token_matches(token, control)) or self.token_valid(token)

    def session_opens_node(self, token: str) -> bool:
        """For the other faces (``node.admin_sessions``): a live session, refused while the
        default password guards a node reachable beyond loopback (as this face refuses it)."""
        if not self.token_valid(token):
            return False
        return self.face.node.config.control.on_loopback or not self.credentials().get("default")

    def revoke_all(self, db) -> None:
        db.delete_settings_with_prefix(TOKEN_PREFIX)


def _field(value, name: str) -> float:
    try:
        return float(value[name])
    except (ValueError, KeyError, TypeError):
        return 0.0


def _last_use(value) -> float:
    return _field(value, "last")


def _since(value) -> float:
    return _field(value, "since")


def request_token(req: falcon.Request) -> str | None:
    token = bearer_token(req)
    if token is not None:
        return token
    if req.uri_template in STREAM_PATHS:
        return req.get_param("token")
    return None


def scale_rule(auth: Auth) -> Rule:
    """A valid token on every route of the face except those marked public (login, build-id).

    Beyond loopback, a node still on the default admin/admin serves a token only the password
    change until the password is changed: the face is on by default, and a default password
    reachable from the network must not open users, clients or restore."""
    beyond = not auth.face.node.config.control.on_loopback

    def check(req: falcon.Request, resource) -> None:
        # Through the mesh's tunnel a default password opens nothing, not even its change
        # (the login refuses it too): the node's own admin changes it first.
        via_mesh = relayed(req)
        exposed = beyond or via_mesh
        if via_mesh and auth.credentials().get("default"):
            raise falcon.HTTPForbidden(title="default password", description=DEFAULT_VIA_MESH)
        token = request_token(req)
        if token is None:
            raise unauthorized("a valid 'Authorization: Bearer <token>' header is required "
                               "(POST /scale/api/login)")
        if not auth.admin_token_ok(token):
            raise unauthorized("the token is unknown or expired; log in again")
        if exposed and not getattr(resource, "allowed_on_default_password", False) \
                and auth.credentials().get("default"):
            raise falcon.HTTPForbidden(
                title="default password",
                description="this node's control API is reachable beyond loopback and the HY2 "
                            "SCALE admin still has the default password: change it first "
                            "(PUT /scale/api/settings/password)")

    return Rule("hy2scale", check)


def sha_field(body: dict, name: str) -> str:
    value = body[name]
    if not isinstance(value, str) or not SHA256_HEX.match(value):
        raise bad_request(f"{name} must be the hex SHA-256 of the password (64 hex digits)")
    return value.lower()


def username_field(body: dict, name: str) -> str:
    value = v.string(body, name, max_len=USERNAME_MAX)
    if any(c.isspace() or not c.isprintable() for c in value):
        raise bad_request(f"{name} must not contain spaces or control characters")
    return value


class Login:
    auth_rule = PUBLIC

    def __init__(self, auth: Auth):
        self.auth = auth

    def on_post(self, req, resp):
        body = v.json_object(req, required={"username", "password"})
        username = username_field(body, "username")
        password = sha_field(body, "password")
        addr = attempt_key(req)
        self.auth.take_attempt(addr)
        creds = self.auth.credentials()
        if not self.auth.verify(username, password, creds):
            raise unauthorized("wrong username or password")
        self.auth.clear_attempts(addr)
        if creds.get("default") and relayed(req):
            raise falcon.HTTPForbidden(title="default password", description=DEFAULT_VIA_MESH)
        resp.media = {"token": self.auth.issue_token(),
                      "force_password_change": bool(creds.get("default"))}


class Password:
    """``PUT /settings/password {current_password, new_username?, new_password?}``: every
    token (this one too) stops working; log in again with the new credentials."""

    allowed_on_default_password = True

    def __init__(self, auth: Auth):
        self.auth = auth

    def on_put(self, req, resp):
        body = v.json_object(req, allowed={"current_password", "new_username", "new_password"},
                             required={"current_password"})
        current = sha_field(body, "current_password")
        new_username = username_field(body, "new_username") if body.get("new_username") else None
        new_password = sha_field(body, "new_password") if body.get("new_password") else None
        if new_username is None and new_password is None:
            raise bad_request("give new_username, new_password or both")
        addr = attempt_key(req)
        self.auth.take_attempt(addr)
        creds = self.auth.credentials()
        if not self.auth.verify(creds["username"], current, creds):
            raise falcon.HTTPForbidden(title="forbidden", description="current_password is wrong")
        self.auth.clear_attempts(addr)
        if new_password is None:
            fresh = dict(creds, username=new_username)
        else:
            fresh = make_credentials(new_username or creds["username"], new_password)
        with self.auth.face.ledger.write() as db:
            write_setting(db, CRED_KEY, fresh)
            self.auth.revoke_all(db)
        resp.media = {"ok": True, "username": fresh["username"],
                      "force_password_change": bool(fresh.get("default")),
                      "message": "credentials changed; every token was revoked, log in again"}
