"""The face's users as pre-rendered JSON, reloaded only when the store changed.

``GET /users`` at 10k users would otherwise decode every row's JSON columns and build 10k dicts
per request.  Here each user's fixed fields are rendered once into a JSON prefix; a request
only adds ``traffic_used`` and ``online`` from one scan of the live segment.  Change detection
is ``PRAGMA data_version`` on a connection of the cache's own, which moves whenever any other
connection commits (a user change, a reset's baseline, the supervisor's carried fold), so every
API process sees a change on its next request.  One lock per process: gthread threads share it.
"""
from __future__ import annotations

import json
import sqlite3
import threading

import falcon

from fastpath.shm import scan_users
from fastpath.store import User
from fastpath.store.state_store import USER_COLUMNS


class ScaleUserCache:
    def __init__(self, node, source: str, render):
        self.node = node
        self.source = source
        self.render = render              # User -> dict of the fixed fields
        self.lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._version = None
        self.prefixes: list[tuple[str, bytes]] = []
        self.usernames: dict[str, str] = {}
        self.carried: dict[str, tuple[int, int]] = {}
        self.marks: dict[str, tuple[int, int]] = {}

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self.node.store.path, timeout=30, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout=30000")
        return self._db

    def _fresh(self) -> None:
        db = self._conn()
        if db.execute("PRAGMA data_version").fetchone()[0] == self._version:
            return
        db.execute("BEGIN")
        try:
            version = db.execute("PRAGMA data_version").fetchone()[0]
            rows = db.execute(f"SELECT {', '.join(USER_COLUMNS)} FROM users WHERE source = ? ORDER BY id",
                              (self.source,)).fetchall()
            carried = {r[0]: (r[1], r[2]) for r in db.execute("SELECT user_id, tx, rx FROM carried")}
            marks = {r[0]: (r[1], r[2]) for r in db.execute(
                "SELECT user_id, tx, rx FROM baselines WHERE scope = 'usage'")}
        finally:
            db.execute("COMMIT")
        prefixes, names = [], {}
        for row in rows:
            user = User.from_row(row)
            fixed = json.dumps(self.render(user))
            prefixes.append((user.id, (fixed[:-1] + ', "traffic_used": ').encode()))
            names[user.id] = user.meta.get("username", user.id)
        self.prefixes, self.usernames, self.carried, self.marks = prefixes, names, carried, marks
        self._version = version

    def names(self) -> dict[str, str]:
        with self.lock:
            self._fresh()
            return self.usernames

    def listing(self) -> bytes:
        """The JSON array of every user with its live ``traffic_used`` and ``online``."""
        try:
            live = scan_users(self.node.table)
        except falcon.HTTPServiceUnavailable:
            live = {}
        with self.lock:
            self._fresh()
            carried, marks = self.carried, self.marks
            parts = []
            for uid, prefix in self.prefixes:
                ctx, crx = carried.get(uid, (0, 0))
                rec = live.get(uid)
                if rec is not None:
                    ctx += rec[0]
                    crx += rec[1]
                mtx, mrx = marks.get(uid, (0, 0))
                used = max(0, ctx - mtx) + max(0, crx - mrx)
                parts.append(b"%s%d, \"online\": %d}" % (prefix, used, rec[2] if rec is not None else 0))
        return b"[" + b", ".join(parts) + b"]"
