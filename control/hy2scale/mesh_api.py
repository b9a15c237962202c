"""The face's mesh routes: rules, the nested flag, the internal peer list, path figures.

- ``/rules`` (the reference's CRUD): ``GET`` → ``{available: true, rules}``; ``POST`` a rule,
  ``PUT /rules/{id}`` replaces it, ``DELETE``, ``PUT /rules/{id}/toggle {enabled}``; answers
  ``{"status": "ok"}`` as the reference.  Every body is checked whole before anything is
  written (``fastpath.mesh.rules.check_rule``, ``fastpath.mesh.paths.check_paths``): a bad one
  is a 400 with the reason and the stored rules are unchanged.  Differences from the reference,
  where it would store nonsense: an unknown id is a 404 (not a silent no-op), a taken id a 409,
  a missing id is generated (8 hex), ``use_tun`` is stored false (TUN needs kernel privileges
  this node does not take).  After a change the workers recompile (``rules_changed``).
- ``PUT /peers/{path}/nested {enabled}``: the nested flag of a client (``b``) or of a node
  found below one (``b/c``); its parent must be a client or a node the topology shows.
- ``GET /peers/{name}/peers``: what nested discovery found below a client.
- ``GET /internal/peers``: this node's peer list as other nodes read it (``fastpath.mesh``);
  the reference serves it without auth, here it needs the node password (``/node``
  ``server.password``) as ``Authorization: Bearer <password>`` or HTTP Basic.
- ``GET /diag/paths``: each probed exit path's health and latency, per worker.
"""
from __future__ import annotations

import base64
import hmac
import re
import secrets

import falcon

from fastpath.control import validation as v
from fastpath.control.errors import bad_request, conflict, not_found
from fastpath.control.hy2scale.clients import self_names
from fastpath.control.hy2scale.face import NODE_KEY, read_setting, write_setting
from fastpath.control.route_guard import PUBLIC
from fastpath.mesh.egress import PEERS_KEY, RULES_KEY
from fastpath.mesh.paths import PathError, check_path, check_paths
from fastpath.mesh.rules import MAX_RULES, RuleError, check_rule
from fastpath.store.ledger import CLIENTS_KEY

RULE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
RULE_FIELDS = ("id", "name", "type", "targets", "exit_via", "exit_paths", "exit_mode", "enabled",
               "priority", "use_tun")
PRIORITY_MAX = 1_000_000


def _broadcast(face, cmd: str) -> None:
    """Tell the workers; they also reread on their own within seconds, so an unreachable
    supervisor only delays the change."""
    try:
        face.tell_workers(cmd, {})
    except falcon.HTTPError:
        pass


class RuleBook:
    def __init__(self, face):
        self.face = face

    def list(self) -> list:
        raw = self.face.setting(RULES_KEY, []) or []
        return [r for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []

    def checked(self, body: dict, db, rule_id: str | None = None, clients=None, own=None) -> dict:
        """The stored form of ``body`` (400 on the first problem); ``clients`` / ``own``: the
        client names and this node's names to check paths against (default: the store's)."""
        if rule_id is not None:
            body = {**body, "id": rule_id}
        rid = body.get("id")
        if rid in (None, ""):
            rid = secrets.token_hex(4)
        if not isinstance(rid, str) or not RULE_ID.match(rid):
            raise bad_request("id must be 1-64 letters, digits, '.', '_' or '-'")
        name = body.get("name", "")
        if not isinstance(name, str) or len(name) > 128:
            raise bad_request("name must be a string of at most 128 characters")
        paths = body.get("exit_paths")
        if paths is None:
            paths = []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise bad_request("exit_paths must be a list of strings")
        via = body.get("exit_via", "")
        if via is None:
            via = ""
        if not isinstance(via, str):
            raise bad_request("exit_via must be a string")
        paths = [p for p in paths if p]
        if paths:
            via = paths[0]
        elif via:
            paths = [via]
        if not paths:
            raise bad_request("id, exit_via, and targets required")
        mode = body.get("exit_mode", "") or ""
        if not isinstance(mode, str):
            raise bad_request("exit_mode must be a string")
        enabled = body.get("enabled", False)
        if not isinstance(enabled, bool):
            raise bad_request("enabled must be true or false")
        prio = body.get("priority", 0) or 0
        if not isinstance(prio, int) or isinstance(prio, bool) or abs(prio) > PRIORITY_MAX:
            raise bad_request(f"priority must be an integer from -{PRIORITY_MAX} to {PRIORITY_MAX}")
        if clients is None:
            clients = {c.get("name") for c in read_setting(db, CLIENTS_KEY, []) or [] if isinstance(c, dict)}
        if own is None:
            own = self_names(db, self.face)
        try:
            paths, mode = check_paths(paths, mode, own, clients)
            rule = check_rule({"type": body.get("type"), "targets": body.get("targets")})
        except (PathError, RuleError) as exc:
            raise bad_request(str(exc)) from None
        return {"id": rid, "name": name, "type": rule["type"], "targets": rule["targets"],
                "exit_via": via, "exit_paths": paths, "exit_mode": mode, "enabled": enabled,
                "priority": prio, "use_tun": False}

    def write(self, change) -> dict:
        """``change(rules, db) -> rule`` inside one transaction; the rules are stored only if
        it returns."""
        with self.face.ledger.write() as db:
            rules = [r for r in read_setting(db, RULES_KEY, []) or [] if isinstance(r, dict)]
            result = change(rules, db)
            write_setting(db, RULES_KEY, rules)
        _broadcast(self.face, "rules_changed")
        return result

    @staticmethod
    def index(rules: list, rule_id: str) -> int:
        for i, r in enumerate(rules):
            if r.get("id") == rule_id:
                return i
        raise not_found(f"rule {rule_id!r} not found")


def _body(req) -> dict:
    body = v.json_object(req)
    return {k: body[k] for k in RULE_FIELDS if k in body}     # the reference ignores the rest


def check_rules(book: RuleBook, raw, clients) -> list[dict]:
    """A backup's rules, each checked as a POST body against the backup's clients."""
    if not isinstance(raw, list) or len(raw) > MAX_RULES:
        raise bad_request(f"rules is missing or not a JSON array of at most {MAX_RULES}")
    out, seen = [], set()
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise bad_request(f"rules[{i}]: must be an object")
        try:
            rule = book.checked({k: entry[k] for k in RULE_FIELDS if k in entry}, None,
                                clients=clients, own=set())
        except falcon.HTTPError as exc:
            raise falcon.HTTPError(exc.status, title=exc.title, description=f"rules[{i}]: {exc.description}")
        if rule["id"] in seen or "id" not in entry:
            raise bad_request(f"rules[{i}]: id missing or appears twice")
        seen.add(rule["id"])
        out.append(rule)
    return out


def check_peer_flags(raw) -> dict:
    """A backup's nested flags: ``{path: {"nested": bool}}``."""
    if not isinstance(raw, dict) or len(raw) > 10_000:
        raise bad_request("peers is missing or not a JSON object")
    out = {}
    for path, entry in raw.items():
        try:
            check_path(path)
        except PathError as exc:
            raise bad_request(f"peers[{path[:40]!r}]: {exc}") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("nested", False), bool):
            raise bad_request(f"peers[{path[:40]!r}]: must be {{\"nested\": true|false}}")
        out[path] = {"nested": entry.get("nested", False)}
    return out


class Rules:
    def __init__(self, book: RuleBook):
        self.book = book

    def on_get(self, req, resp):
        resp.media = {"available": True, "rules": self.book.list()}

    def on_post(self, req, resp):
        body = _body(req)

        def add(rules, db):
            rule = self.book.checked(body, db)
            if any(r.get("id") == rule["id"] for r in rules):
                raise conflict(f"rule {rule['id']!r} exists")
            if len(rules) >= MAX_RULES:
                raise bad_request(f"at most {MAX_RULES} rules")
            rules.append(rule)
            return rule
        rule = self.book.write(add)
        resp.media = {"status": "ok", "id": rule["id"]}


class RuleItem:
    def __init__(self, book: RuleBook):
        self.book = book

    def on_get(self, req, resp, rule_id):
        rules = self.book.list()
        resp.media = rules[self.book.index(rules, rule_id)]

    def on_put(self, req, resp, rule_id):
        body = _body(req)

        def replace(rules, db):
            i = self.book.index(rules, rule_id)
            rules[i] = self.book.checked(body, db, rule_id)
            return rules[i]
        self.book.write(replace)
        resp.media = {"status": "ok"}

    def on_delete(self, req, resp, rule_id):
        def drop(rules, db):
            return rules.pop(self.book.index(rules, rule_id))
        self.book.write(drop)
        resp.media = {"status": "ok"}


class RuleToggle:
    def __init__(self, book: RuleBook):
        self.book = book

    def on_put(self, req, resp, rule_id):
        enabled = v.boolean(v.json_object(req, required={"enabled"}), "enabled")

        def toggle(rules, db):
            i = self.book.index(rules, rule_id)
            rules[i] = {**rules[i], "enabled": enabled}
            return rules[i]
        self.book.write(toggle)
        resp.media = {"status": "ok"}


def topology_paths(tree: list) -> set[str]:
    """Every qualified path the topology shows below this node's clients."""
    out: set[str] = set()

    def walk(prefix, children):
        for c in children or ():
            if isinstance(c, dict) and isinstance(c.get("name"), str):
                q = f"{prefix}/{c['name']}"
                out.add(q)
                walk(q, c.get("children"))
    for entry in tree[1:]:
        out.add(entry["name"])
        walk(entry["name"], entry.get("children"))
    return out


class PeerPaths:
    """``/peers/{path}/nested`` and ``/peers/{name}/peers``; ``path`` may hold "/" (the
    UI's encoded ``b%2Fc`` arrives decoded)."""

    def __init__(self, face, topology):
        self.face = face
        self.topology = topology

    def _split(self, rest: str, want: str) -> str:
        path, sep, action = rest.rpartition("/")
        if not sep or action != want or not path:
            raise not_found(f"no route /peers/{rest}")
        return path

    def on_put(self, req, resp, rest):
        if rest.endswith("/disable"):
            why = ("peers: disabling a node by path is not supported; disable the client instead "
                   "(PUT /clients/{name}/disable)")
            resp.status = "501 Not Implemented"
            resp.media = {"error": why, "message": why, "capable": False}
            return
        path = self._split(rest, "nested")
        body = v.json_object(req, required={"enabled"})
        enabled = v.boolean(body, "enabled")
        with self.face.ledger.write() as db:
            clients = {c.get("name") for c in read_setting(db, CLIENTS_KEY, []) or [] if isinstance(c, dict)}
            try:
                parts = check_path(path, self_names(db, self.face), clients)
            except PathError as exc:
                raise bad_request(str(exc).replace("exit path", "peer path")) from None
        if len(parts) > 1 and path not in topology_paths(self.topology.tree()):
            raise not_found(f"peer {path!r} is not in the topology (its parent must be nested "
                            f"and connected)")
        with self.face.ledger.write() as db:
            flags = read_setting(db, PEERS_KEY, {}) or {}
            if not isinstance(flags, dict):
                flags = {}
            entry = flags.get(path) if isinstance(flags.get(path), dict) else {}
            flags[path] = {**entry, "nested": enabled}
            write_setting(db, PEERS_KEY, flags)
        _broadcast(self.face, "peers_changed")
        resp.media = {"status": "ok"}

    def on_get(self, req, resp, rest):
        name = self._split(rest, "peers")
        tree = self.topology.tree()
        entry = next((p for p in tree[1:] if p["name"] == name), None)
        if entry is None:
            raise bad_request(f"relay: peer {name!r} not connected")
        resp.media = entry.get("children") or []


class InternalPeers:
    auth_rule = PUBLIC

    def __init__(self, face):
        self.face = face

    def _password(self, req) -> str:
        auth = req.get_header("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                return ""
        return ""

    def on_get(self, req, resp):
        rec = self.face.setting(NODE_KEY, {}) or {}
        want = ((rec.get("server") or {}).get("password") or "") if isinstance(rec, dict) else ""
        if not want:
            raise falcon.HTTPForbidden(title="forbidden", description=(
                "the internal peer list needs the node password, and none is set "
                "(PUT /scale/api/node with server.password)"))
        got = self._password(req)
        if not got or not hmac.compare_digest(got.encode(), want.encode()):
            raise falcon.HTTPUnauthorized(title="unauthorized", description=(
                "the node password is required: 'Authorization: Bearer <password>' or Basic"))
        results = self.face.tell_workers("mesh_peer_list", {})
        resp.media = next((r for r in results if isinstance(r, list)), [])


class MeshPaths:
    def __init__(self, face):
        self.face = face

    def on_get(self, req, resp):
        results = self.face.tell_workers("mesh_status", {})
        resp.media = {"workers": [r for r in results if isinstance(r, dict)]}
