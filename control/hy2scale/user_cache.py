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
        self.entries: list[tuple[str, bytes, int, int]] = []   # id, JSON prefix, tx and rx offsets
        self.usernames: dict[str, str] = {}

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
        entries, names = [], {}
        for row in rows:
            user = User.from_row(row)
            fixed = json.dumps(self.render(user))
            # What counts toward the limit: carried + live - the last reset's mark, per direction.
            ctx, crx = carried.get(user.id, (0, 0))
            mtx, mrx = marks.get(user.id, (0, 0))
            entries.append((user.id, (fixed[:-1] + ', "traffic_used": ').encode(), ctx - mtx, crx - mrx))
            names[user.id] = user.meta.get("username", user.id)
        self.entries, self.usernames = entries, names
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
            entries = self.entries
        # Conditional expressions, not max(): four calls fewer per user at 10k users.
        parts = []
        append = parts.append
        get = live.get
        for uid, prefix, btx, brx in entries:
            rec = get(uid)
            if rec is None:
                append(b"%s%d, \"online\": 0}" % (prefix, (btx if btx > 0 else 0) + (brx if brx > 0 else 0)))  # noqa: FURB136
            else:
                tx, rx = btx + rec[0], brx + rec[1]
                append(b"%s%d, \"online\": %d}" % (prefix, (tx if tx > 0 else 0) + (rx if rx > 0 else 0),  # noqa: FURB136
                                                     rec[2]))
        return b"[" + b", ".join(parts) + b"]"
