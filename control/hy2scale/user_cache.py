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
import threading

from fastpath.control.node_model import NodeUnavailable
from fastpath.shm import scan_users
from fastpath.store.ledger import USAGE, base, used_many


class ScaleUserCache:
    """``source`` None: every user of the node, whichever face created it (one user table)."""

    def __init__(self, node, source: str | None, render):
        self.node = node
        self.source = source
        self.render = render              # User -> dict of the fixed fields
        self.lock = threading.Lock()
        self.watch = node.ledger.watcher()
        self.entries: list[bytes] = []            # each user's JSON prefix
        self.bases: list[tuple[str, int, int]] = []   # (id, carried − mark per direction)
        self.ids: list[str] = []
        self.usernames: dict[str, str] = {}

    def _fresh(self) -> None:
        if not self.watch.changed():
            return
        with self.watch.transaction() as book:
            if not self.watch.take():
                return
            users = book.users(self.source)
            carried = book.carried()
            marks = book.baselines(USAGE)
        entries, bases, names = [], [], {}
        for user in users:
            fixed = json.dumps(self.render(user))
            entries.append((fixed[:-1] + ', "traffic_used": ').encode())
            bases.append((user.id, *base(carried.get(user.id), marks.get(user.id))))
            names[user.id] = user.meta.get("username", user.id)
        self.entries, self.bases, self.usernames = entries, bases, names
        self.ids = [b[0] for b in bases]

    def names(self) -> dict[str, str]:
        with self.lock:
            self._fresh()
            return self.usernames

    def listing(self) -> bytes:
        """The JSON array of every user with its live ``traffic_used`` (``ledger.used_many``, the
        rule enforcement applies) and ``online``."""
        try:
            live = scan_users(self.node.table)
        except NodeUnavailable:
            live = {}
        with self.lock:
            self._fresh()
            entries, bases, ids = self.entries, self.bases, self.ids
        used = used_many(bases, live)
        parts = []
        append = parts.append
        get = live.get
        for prefix, uid, spent in zip(entries, ids, used):
            rec = get(uid)
            if rec is None:
                append(b"%s%d, \"online\": 0}" % (prefix, spent))
            else:
                append(b"%s%d, \"online\": %d}" % (prefix, spent, rec[2]))
        return b"[" + b", ".join(parts) + b"]"
