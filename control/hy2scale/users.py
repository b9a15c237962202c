"""HY2 SCALE users as rows of the node's user table (source ``hy2scale``).

A scale user is a table user whose id is its 8-hex ``id`` (so a rename keeps its counters), whose
Hysteria 2 secret is ``username:password`` (what a client of the reference's userpass auth
sends), and whose ``meta`` holds the username, the password and the exit fields.  The data
plane therefore authenticates it, counts it under its id (Traffic Stats API, /api/v1, metrics),
and cuts it off when it is disabled, expires or crosses its limit, like any table user.

Input forms: ``traffic_limit`` (bytes) or ``traffic_limit_gb`` (GiB, wins when both are given),
``expiry`` (ISO 8601, unix seconds, "" or null = never) or ``expiry_date`` (``YYYY-MM-DD``,
00:00 UTC; wins when both are given).  Exits: ``exit_paths`` (``exit_via`` is its first) are
paths of the mesh, ``b`` or ``b/c/...``, each starting at an enabled client of this node
(``clients.py``); with several, ``exit_mode`` ``quality`` or ``aggregate`` chooses among them
(``fastpath.mesh.egress``).  Checked by ``fastpath.mesh.paths``.
"""
from __future__ import annotations

import datetime
import logging
import secrets
import time

import falcon

from fastpath.control import validation as v
from fastpath.control.errors import bad_request, conflict, not_found
from fastpath.control.hy2scale.clients import self_names
from fastpath.control.hy2scale.face import ScaleFace, not_supported
from fastpath.control.hy2scale.user_cache import ScaleUserCache
from fastpath.store import Conflict, User, exit_paths
from fastpath.store.ledger import CLIENTS_KEY, USAGE, used
from fastpath.supervisor.command_channel import CommandError

log = logging.getLogger("fastpath.control.hy2scale")

SOURCE = "hy2scale"
GIB = 1024 ** 3


def wants_msgpack(req) -> bool:
    return "msgpack" in (req.accept or "")
EXIT_MODES = ("", "direct", "quality", "aggregate")
INPUT_FIELDS = {"username", "password", "exit_via", "exit_paths", "exit_mode", "traffic_limit",
                "traffic_limit_gb", "expiry", "expiry_date", "enabled"}
# What a client may echo back from a listing; ignored on input.
READ_ONLY = {"id", "traffic_used", "online", "created", "tx_bytes", "rx_bytes"}
USERNAME_MAX = 64
PASSWORD_MAX = 256
MAX_LIMIT = 2 ** 62


def _iso(ts):
    return v.iso(ts) or ""


def fixed_view(user: User) -> dict:
    """The fields of a user that do not move with its traffic.  A user another face created
    (native API, PasarGuard) is listed too, under its id, with no password: its secret is
    that face's, and it has no exit."""
    m = user.meta if user.source == SOURCE else {}
    limit = user.traffic_limit
    return {
        "id": user.id,
        "username": m.get("username", user.id),
        "password": m.get("password", ""),
        "exit_via": m.get("exit_via", ""),
        "exit_paths": m.get("exit_paths", []),
        "exit_mode": m.get("exit_mode", ""),
        "traffic_limit": limit,
        "traffic_limit_gb": round(limit / GIB, 3),
        "expiry": _iso(user.expiry),
        "expiry_date": _iso(user.expiry)[:10],
        "enabled": user.enabled,
        "created": _iso(user.created),
    }


def user_view(user: User, used: int, online: int = 0) -> dict:
    return {**fixed_view(user), "traffic_used": used, "online": online}


def _text(body: dict, name: str, max_len: int) -> str:
    value = v.string(body, name, max_len=max_len)
    if any(not c.isprintable() for c in value):
        raise bad_request(f"{name} must not contain control characters")
    return value


def _number(body: dict, name: str) -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_LIMIT / GIB:
        raise bad_request(f"{name} must be a number from 0 to {MAX_LIMIT // GIB}")
    return float(value)


def _expiry(body: dict) -> float | None:
    if "expiry_date" in body and body["expiry_date"] not in (None, ""):
        value = body["expiry_date"]
        if not isinstance(value, str):
            raise bad_request("expiry_date must be a date YYYY-MM-DD, \"\" or null")
        try:
            day = datetime.date.fromisoformat(value[:10]) if len(value) <= 10 else None
        except ValueError:
            day = None
        if day is None:
            raise bad_request(f"expiry_date is not a date YYYY-MM-DD: {value!r}")
        return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()
    if "expiry_date" in body and "expiry" not in body:
        return None
    if body.get("expiry") == "":
        return None
    ts = v.timestamp(body, "expiry")
    if ts is not None and not 0 <= ts < 253402300800:      # before year 10000
        raise bad_request("expiry is out of range")
    return ts


def parse_fields(body: dict) -> dict:
    """Every given field, checked; raises 400 (or 501 for exit paths) before anything is
    applied.  Returns table columns plus ``meta`` changes under the key ``meta``."""
    unknown = sorted(set(body) - INPUT_FIELDS - READ_ONLY)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}")
    out: dict = {}
    meta: dict = {}
    if "username" in body:
        name = _text(body, "username", USERNAME_MAX)
        if ":" in name or any(c.isspace() for c in name):
            raise bad_request("username must not contain ':' or spaces")
        meta["username"] = name
    if "password" in body:
        meta["password"] = _text(body, "password", PASSWORD_MAX)
    paths = None
    if "exit_paths" in body and body["exit_paths"] is not None:
        if not isinstance(body["exit_paths"], list) or not all(isinstance(p, str) for p in body["exit_paths"]):
            raise bad_request("exit_paths must be a list of strings")
        paths = [p for p in body["exit_paths"] if p]
        meta["exit_paths"] = paths
    if "exit_via" in body and body["exit_via"] is not None:
        if not isinstance(body["exit_via"], str):
            raise bad_request("exit_via must be a string")
        meta["exit_via"] = body["exit_via"]
        if paths is None:
            meta["exit_paths"] = [body["exit_via"]] if body["exit_via"] else []
    if paths:
        meta["exit_via"] = paths[0]
    if "exit_mode" in body and body["exit_mode"] is not None:
        if body["exit_mode"] not in EXIT_MODES:
            raise bad_request(f"exit_mode must be one of {', '.join(repr(m) for m in EXIT_MODES)}")
        meta["exit_mode"] = body["exit_mode"]
    if "traffic_limit_gb" in body and body["traffic_limit_gb"] is not None:
        out["traffic_limit"] = round(_number(body, "traffic_limit_gb") * GIB)
    elif "traffic_limit" in body:
        out["traffic_limit"] = v.integer(body, "traffic_limit", maximum=MAX_LIMIT)
    if "expiry" in body or "expiry_date" in body:
        out["expiry"] = _expiry(body)
    if "enabled" in body:
        out["enabled"] = v.boolean(body, "enabled")
    out["meta"] = meta
    return out


def check_exit(meta: dict, clients: list, own: set, *, allow_disabled: bool = False) -> None:
    """``fastpath.store.exit_paths.check_exit`` (the exit paths of the mesh) in this face's
    answers: 501 for what is not supported, 400 for a wrong name."""
    try:
        exit_paths.check_exit(meta, clients, own, allow_disabled=allow_disabled)
    except exit_paths.ExitRefused as exc:
        raise (bad_request if exc.supported else not_supported)(exc.message) from None


class UserBook:
    """The face's users: reads, and writes as single transactions that check the username
    is free among scale users and the secret among all users.  Lists and reads cover every
    user of the node; writes only the face's own (``source`` hy2scale)."""

    def __init__(self, face: ScaleFace):
        self.face = face
        self.node = face.node
        self.cache = ScaleUserCache(face.node, None, fixed_view)

    def list(self) -> list[User]:
        return self.node.ledger.users()

    def find(self, user_id: str) -> User:
        """Any user of the node (404 when there is none)."""
        user = self.node.ledger.user(user_id)
        if user is None:
            raise not_found(f"user {user_id!r} not found")
        return user

    def get(self, user_id: str) -> User:
        """A user of this face: 404 for none, 409 for one another face manages."""
        user = self.find(user_id)
        if user.source != SOURCE:
            raise conflict(f"user {user_id!r} is managed by the {user.source} face, "
                           f"not HY2 SCALE")
        return user

    def _write(self, user: User, insert: bool) -> None:
        name = user.meta["username"]
        try:
            with self.node.ledger.write() as db:
                check_exit(user.meta, db.setting(CLIENTS_KEY, []) or [], self_names(db, self.face))
                if db.username_holder(SOURCE, name, user.id):
                    raise conflict(f"username {name!r} is taken")
                if insert:
                    db.insert_users([user])
                elif not db.update_user(user, SOURCE):
                    raise not_found(f"user {user.id!r} not found")
        except Conflict as exc:
            if exc.column == "auth_secret":
                raise conflict("another user already has this username and password") from None
            if exc.column == "id":
                raise conflict(f"user id {user.id!r} exists") from None
            raise conflict(f"conflict: {exc}") from None

    def create(self, fields: dict) -> User:
        meta = fields.pop("meta")
        for name in ("username", "password"):
            if name not in meta:
                raise bad_request(f"field {name!r} is required")
        meta = {"exit_via": "", "exit_paths": [], "exit_mode": "", **meta}
        for _ in range(8):
            user = User(id=secrets.token_hex(4), auth_secret=f"{meta['username']}:{meta['password']}",
                        source=SOURCE, meta=meta, created=time.time(), **fields)
            try:
                self._write(user, insert=True)
                return user
            except falcon.HTTPConflict as exc:
                if "user id" not in (exc.description or ""):
                    raise
        raise conflict("could not draw a free user id")

    def update(self, user_id: str, fields: dict) -> User:
        user = self.get(user_id)
        user.meta = {**user.meta, **fields.pop("meta")}
        for key, value in fields.items():
            setattr(user, key, value)
        user.auth_secret = f"{user.meta.get('username', user.id)}:{user.meta.get('password', '')}"
        self._write(user, insert=False)
        return user

    def delete(self, user_id: str) -> None:
        with self.node.ledger.write() as db:
            if not db.delete_users([user_id], SOURCE):
                other = db.user(user_id)
                if other is not None:
                    raise conflict(f"user {user_id!r} is managed by the {other.source} face, "
                                   f"not HY2 SCALE")
                raise not_found(f"user {user_id!r} not found")

    def views(self, users: list[User]) -> list[dict]:
        """Full views of a few users: carried totals and baselines read for them only."""
        live = self.node.live_users()
        ids = [u.id for u in users]
        with self.node.ledger.read() as db:
            carried, marks = db.carried(ids), db.baselines(USAGE, ids)
        out = []
        for u in users:
            rec = live.get(u.id)
            out.append(user_view(u, used(carried.get(u.id), rec, marks.get(u.id)),
                                 rec[2] if rec is not None else 0))
        return out

    def cut(self, user_id: str) -> None:
        """Close a user's live connections (its credentials changed).  The store already
        holds the change, so a supervisor that cannot be reached only delays this."""
        try:
            self.node.commands.call("kick", {"ids": [user_id]}, 5.0)
        except CommandError as exc:
            log.warning("hy2scale: connections of %s not closed: %s", user_id, exc)


class Users:
    def __init__(self, book: UserBook):
        self.book = book

    def on_get(self, req, resp):
        if wants_msgpack(req):
            resp.media = self.book.views(self.book.list())
            return
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.book.cache.listing()

    def on_post(self, req, resp):
        body = v.json_object(req)
        user = self.book.create(parse_fields(body))
        self.book.node.notify_users_changed()
        resp.status = falcon.HTTP_201
        resp.media = self.book.views([user])[0]


class UserItem:
    def __init__(self, book: UserBook):
        self.book = book

    def on_get(self, req, resp, user_id):
        resp.media = self.book.views([self.book.find(user_id)])[0]

    def on_put(self, req, resp, user_id):
        body = v.json_object(req)
        fields = parse_fields(body)
        old_secret = self.book.get(user_id).auth_secret
        user = self.book.update(user_id, fields)
        self.book.node.notify_users_changed()
        if user.auth_secret != old_secret:
            self.book.cut(user_id)          # old credentials: their connections end too
        resp.media = self.book.views([user])[0]

    def on_delete(self, req, resp, user_id):
        self.book.delete(user_id)
        self.book.node.notify_users_changed()
        resp.media = {"ok": True, "id": user_id}


class UserToggle:
    def __init__(self, book: UserBook):
        self.book = book

    def on_put(self, req, resp, user_id):
        """The reference UI sends ``{enabled}`` (the state wanted); no body flips it."""
        user = self.book.get(user_id)
        enabled = not user.enabled
        if req.content_length:
            body = v.json_object(req)
            if body.get("enabled") is not None:
                enabled = v.boolean(body, "enabled")
        user = self.book.update(user_id, {"enabled": enabled, "meta": {}})
        self.book.node.notify_users_changed()
        resp.media = self.book.views([user])[0]

    on_post = on_put


class UserResetTraffic:
    def __init__(self, book: UserBook):
        self.book = book

    def on_put(self, req, resp, user_id):
        self.book.get(user_id)
        self.book.node.ledger.reset_usage([user_id])
        self.book.node.notify_users_changed()
        resp.media = self.book.views([self.book.get(user_id)])[0]

    on_post = on_put
