"""Backup and restore of the face's state, as one JSON document.

``GET /backup`` answers (as a download) ``{"format": "fastpath-hy2scale-backup", "version": 2,
"created", "users": [...], "node": {...}, "ui": {...}, "layout": {...}, "clients": [...],
"rules": [...], "peers": {path: {nested}}, "sha256"}`` (clients with their passwords: a backup
restores them) where
``sha256`` covers the canonical JSON of every other field.  Admin credentials and tokens are not
in it.  ``POST /restore`` takes that document as the body: the checksum (when present), the
format and every user, node, UI and layout field are checked first; then the scale users
become exactly the document's users and the settings (and, from version 2, the clients) are
replaced, in one transaction; a version 1 document (no clients) still restores and leaves the
clients as they are, a version 2 one (no rules, no nested flags) leaves those.  Any
fault answers 4xx and changes nothing.  Traffic counters are not part of a backup: a restored
user keeps counting under its id.
"""
from __future__ import annotations

import hashlib
import json
import re
import time

import falcon

from fastpath.control import validation as v
from fastpath.control.errors import bad_request, conflict
from fastpath.control.hy2scale import ui_settings
from fastpath.control.hy2scale.clients import MAX_CLIENTS, ClientBook, parse_client, row_as_body
from fastpath.control.hy2scale.face import LAYOUT_KEY, NODE_KEY, UI_KEY, ScaleFace, write_setting
from fastpath.control.hy2scale.layout import parse_layout, write_layout
from fastpath.control.hy2scale.mesh_api import RuleBook, check_peer_flags, check_rules
from fastpath.control.hy2scale.node_info import NodeSettings
from fastpath.control.hy2scale.users import SOURCE, check_exit, parse_fields
from fastpath.mesh.egress import PEERS_KEY, RULES_KEY
from fastpath.store import Conflict, User
from fastpath.store.ledger import CLIENTS_KEY

FORMAT = "fastpath-hy2scale-backup"
VERSION = 3                    # 2 added "clients", 3 "rules" and "peers" (nested flags); an older
VERSIONS = (1, 2, 3)           # document leaves what it lacks as it is
USER_ID = re.compile(r"^[0-9a-f]{8}$")
MAX_USERS = 1_000_000


def checksum(doc: dict) -> str:
    rest = {k: val for k, val in doc.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _within(where: str, exc: falcon.HTTPError) -> falcon.HTTPError:
    return falcon.HTTPError(exc.status, title=exc.title, description=f"{where}: {exc.description}")


class Backup:
    def __init__(self, face: ScaleFace, node_settings: NodeSettings):
        self.face = face
        self.node_settings = node_settings

    def document(self) -> dict:
        self.node_settings.stored()       # the node id exists before it is saved
        with self.face.ledger.read() as db:
            rows = db.users(SOURCE)
            settings = db.settings((NODE_KEY, UI_KEY, LAYOUT_KEY, CLIENTS_KEY, RULES_KEY, PEERS_KEY))
        users = []
        for u in rows:
            users.append({"id": u.id, "username": u.meta.get("username", u.id),
                          "password": u.meta.get("password", ""), "exit_via": u.meta.get("exit_via", ""),
                          "exit_paths": u.meta.get("exit_paths", []), "exit_mode": u.meta.get("exit_mode", ""),
                          "traffic_limit": u.traffic_limit, "expiry": u.expiry, "enabled": u.enabled,
                          "created": u.created})
        doc = {"format": FORMAT, "version": VERSION, "created": v.iso(time.time()), "users": users,
               "node": settings.get(NODE_KEY, {}), "ui": settings.get(UI_KEY, {}),
               "layout": {"positions": settings.get(LAYOUT_KEY, {})},
               "clients": [c for c in settings.get(CLIENTS_KEY, []) or [] if isinstance(c, dict)],
               "rules": [r for r in settings.get(RULES_KEY, []) or [] if isinstance(r, dict)],
               "peers": settings.get(PEERS_KEY, {}) or {}}
        doc["sha256"] = checksum(doc)
        return doc

    def on_get(self, req, resp):
        doc = self.document()
        resp.set_header("Content-Disposition", 'attachment; filename="hy2scale-backup.json"')
        resp.media = doc


class Restore:
    def __init__(self, face: ScaleFace, node_settings: NodeSettings):
        self.face = face
        self.node_settings = node_settings
        self.clients = ClientBook(face)

    def check(self, doc) -> tuple[list[User], dict, dict, dict]:
        if not isinstance(doc, dict):
            raise bad_request("a backup is a JSON object")
        if doc.get("format") != FORMAT or doc.get("version") not in VERSIONS:
            raise bad_request(f"not a backup of this face (format {FORMAT!r}, version 1 or {VERSION})")
        if "sha256" in doc and doc["sha256"] != checksum(doc):
            raise bad_request("the backup's checksum does not match its content (damaged or edited)")
        for name, kind in (("users", list), ("node", dict), ("ui", dict), ("layout", dict)):
            if not isinstance(doc.get(name), kind):
                raise bad_request(f"{name} is missing or not a JSON {kind.__name__}")
        clients = None
        if doc["version"] >= 2:
            clients = self.check_clients(doc.get("clients"))
        users: list[User] = []
        ids, names = set(), set()
        if len(doc["users"]) > MAX_USERS:
            raise bad_request("too many users")
        for i, entry in enumerate(doc["users"]):
            where = f"users[{i}]"
            if not isinstance(entry, dict):
                raise bad_request(f"{where}: must be an object")
            uid = entry.get("id")
            if not isinstance(uid, str) or not USER_ID.match(uid):
                raise bad_request(f"{where}: id must be 8 lower-case hex digits")
            created = entry.get("created", 0)
            if isinstance(created, bool) or not isinstance(created, (int, float)):
                raise bad_request(f"{where}: created must be unix seconds")
            try:
                fields = parse_fields({k: val for k, val in entry.items() if k not in ("id", "created")})
            except falcon.HTTPError as exc:
                raise _within(where, exc) from None
            meta = fields.pop("meta")
            if "username" not in meta or "password" not in meta:
                raise bad_request(f"{where}: username and password are required")
            if uid in ids or meta["username"].lower() in names:
                raise bad_request(f"{where}: id or username appears twice")
            ids.add(uid)
            names.add(meta["username"].lower())
            meta = {"exit_via": "", "exit_paths": [], "exit_mode": "", **meta}
            try:
                check_exit(meta, clients if clients is not None else self.clients.list(), set(),
                           allow_disabled=True)
            except falcon.HTTPError as exc:
                raise _within(where, exc) from None
            users.append(User(id=uid, auth_secret=f"{meta['username']}:{meta['password']}", source=SOURCE,
                              meta=meta, created=float(created), **fields))
        node = dict(doc["node"])
        node_id = node.pop("node_id", None)
        if node_id is not None and (not isinstance(node_id, str) or not USER_ID.match(node_id)):
            raise bad_request("node.node_id must be 8 lower-case hex digits")
        try:
            node = self.node_settings.parse(node)
        except falcon.HTTPError as exc:
            raise _within("node", exc) from None
        if node_id is not None:
            node["node_id"] = node_id
        ui = ui_settings.check_stored(doc["ui"])
        try:
            layout = parse_layout(doc["layout"])
        except falcon.HTTPError as exc:
            raise _within("layout", exc) from None
        rules = peers = None
        if doc["version"] >= 3:
            names = {c["name"] for c in (clients if clients is not None else self.clients.list())}
            rules = check_rules(RuleBook(self.face), doc.get("rules"), names)
            peers = check_peer_flags(doc.get("peers"))
        return users, node, dict(ui), layout, clients, rules, peers

    def check_clients(self, raw) -> list[dict]:
        if not isinstance(raw, list) or len(raw) > MAX_CLIENTS:
            raise bad_request(f"clients is missing or not a JSON array of at most {MAX_CLIENTS}")
        out, seen = [], set()
        for i, entry in enumerate(raw):
            try:
                client = parse_client(row_as_body(entry), ca_dir=self.face.settings.ca_dir)
            except falcon.HTTPError as exc:
                raise _within(f"clients[{i}]", exc) from None
            if client["name"] in seen:
                raise bad_request(f"clients[{i}]: name {client['name']!r} appears twice")
            seen.add(client["name"])
            out.append(client)
        return out

    def on_post(self, req, resp):
        users, node, ui, layout, clients, rules, peers = self.check(v.request_body(req))
        wanted = {u.id for u in users}
        try:
            with self.face.ledger.write() as db:
                foreign = [u.id for u in db.credentials_except(SOURCE) if u.id in wanted]
                if foreign:
                    raise conflict(f"user id {foreign[0]!r} belongs to a user this face does not manage")
                # All out, then all in: two restored users may swap secrets without a clash.
                db.delete_source(SOURCE)
                db.insert_users(users)
                write_setting(db, NODE_KEY, node)
                write_setting(db, UI_KEY, ui)
                write_layout(db, layout)
                if clients is not None:
                    write_setting(db, CLIENTS_KEY, clients)
                if rules is not None:
                    write_setting(db, RULES_KEY, rules)
                    write_setting(db, PEERS_KEY, peers)
        except Conflict:
            raise conflict("a restored user's username and password equal another user's secret; "
                           "nothing was restored") from None
        self.face.node.notify_users_changed()
        if clients is not None or rules is not None:
            self.clients.tell_workers()
        if rules is not None:
            try:
                self.face.tell_workers("rules_changed", {})
            except falcon.HTTPError:
                pass                      # the workers reread the rules within seconds anyway
        resp.media = {"ok": True, "users": len(users),
                      "clients": len(clients) if clients is not None else len(self.clients.list())}
