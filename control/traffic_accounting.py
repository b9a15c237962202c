"""Traffic since the last clear, per scope, read and cleared in one atomic step.

Counters in shared memory are monotonic and never reset; each API that offers "clear" (the
Traffic Stats API, PasarGuard's ``reset``, the native per-user reset) keeps its own per-id
baseline in the store.  The read happens inside the store's write lock (BEGIN IMMEDIATE), so
concurrent clearers in different API workers serialize: every byte is reported by exactly one
cleared read, never twice, never lost.

``read_traffic`` is the general path (any scope, a few ids); ``TrafficCache`` serves the
whole-table faces (``/traffic``, ``/online``, ``/dump/streams``, ``/api/v1/traffic``) from the
compiled view with the same semantics.
"""
from __future__ import annotations

import os
import sqlite3
import threading

from fastpath._native import load as _load
from fastpath.store.state_store import read_baselines, write_baselines

TrafficView = _load("fastpath.shm.traffic_view").TrafficView


def since_baseline(totals: dict, marks: dict) -> dict[str, tuple[int, int]]:
    out = {}
    for uid, (tx, rx) in totals.items():
        btx, brx = marks.get(uid, (0, 0))
        out[uid] = (max(0, tx - btx), max(0, rx - brx))
    return out


def read_traffic(node, scope: str, clear: bool = False, ids: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """``{id: (tx, rx)}`` counted since the scope's last clear (optionally only ``ids``);
    with ``clear`` the returned amounts become the new baseline in the same transaction."""
    if not clear:
        totals = node.user_totals()
        with node.store.transaction(immediate=False) as db:
            marks = read_baselines(db, scope)
        return _pick(since_baseline(totals, marks), ids)
    with node.store.transaction() as db:
        totals = node.user_totals()
        if ids is not None:
            totals = {uid: totals.get(uid, (0, 0)) for uid in ids}
        marks = read_baselines(db, scope)
        result = since_baseline(totals, marks)
        write_baselines(db, scope, {uid: totals[uid] for uid, (tx, rx) in result.items() if tx or rx})
    return result


def usage(node, live: dict | None = None) -> dict[str, int]:
    """Bytes (tx + rx) each id has used toward its traffic limit: since its last reset."""
    totals = node.user_totals(live)
    with node.store.transaction(immediate=False) as db:
        marks = read_baselines(db, "usage")
    return {uid: tx + rx for uid, (tx, rx) in since_baseline(totals, marks).items()}


def _pick(values: dict, ids):
    if ids is None:
        return values
    return {uid: values.get(uid, (0, 0)) for uid in ids}


class TrafficCache:
    """The compiled view of one API process, with the store's carried totals and one scope's
    baselines loaded into it, reloaded only when the database changed.

    Change detection is ``PRAGMA data_version`` on a connection of its own: its value moves when
    any *other* connection commits.  Clears write their baselines through that same connection,
    so a process's own clear keeps its view current without a reload, while a commit from
    anywhere else (another API worker's clear, the supervisor's carried fold, a user change) is
    seen by the next request.  One lock per process serializes the view: its scratch arrays
    are reused by every request.
    """

    def __init__(self, node, scope: str, list_all: bool = False):
        self.node = node
        self.scope = scope
        self.list_all = list_all
        self.lock = threading.Lock()
        self.view = TrafficView()
        self._db: sqlite3.Connection | None = None
        self._version = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.node.store.path, timeout=30, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA busy_timeout=30000")
            self._db = db
        return self._db

    def _fresh(self, db: sqlite3.Connection, in_transaction: bool) -> None:
        """Reload the store's figures if another connection committed since the last load."""
        if db.execute("PRAGMA data_version").fetchone()[0] == self._version:
            return
        if not in_transaction:
            db.execute("BEGIN")
        try:
            version = db.execute("PRAGMA data_version").fetchone()[0]
            carried = db.execute("SELECT user_id, tx, rx FROM carried").fetchall()
            marks = db.execute("SELECT user_id, tx, rx FROM baselines WHERE scope = ?",
                               (self.scope,)).fetchall()
            listed = [r[0] for r in db.execute("SELECT id FROM users")] if self.list_all else ()
        finally:
            if not in_transaction:
                db.execute("COMMIT")
        self._version = None
        self.view.load(carried, marks, listed)
        self._version = version

    def traffic(self, clear: bool = False) -> bytes:
        """The ``/traffic`` body; with ``clear`` the reported amounts become the baselines in
        the same write transaction (BEGIN IMMEDIATE: clearers of every process serialize)."""
        table = self.node.table
        with self.lock:
            db = self._conn()
            if not clear:
                self._fresh(db, False)
                return self.view.traffic(table, self.list_all)
            db.execute("BEGIN IMMEDIATE")
            try:
                self._fresh(db, True)
                body, rows = self.view.traffic_clear(table, self.list_all)
                db.executemany("INSERT OR REPLACE INTO baselines (scope, user_id, tx, rx) "
                               "VALUES (?, ?, ?, ?)", [(self.scope, *row) for row in rows])
                db.execute("COMMIT")
            except BaseException:
                self._version = None  # the view may not match the store any more: reload
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            self.view.set_baselines(rows)
            return body

    def online(self) -> bytes:
        table = self.node.table
        with self.lock:
            return self.view.online(table)

    def totals(self) -> bytes:
        """The native ``/api/v1/traffic`` body (carried + live; baselines do not apply)."""
        table = self.node.table
        with self.lock:
            self._fresh(self._conn(), False)
            return self.view.totals(table)

    def user_metrics(self, families: list) -> bytes:
        """The per-user families of ``/metrics`` (carried + live; baselines do not apply)."""
        table = self.node.table
        with self.lock:
            self._fresh(self._conn(), False)
            return self.view.user_metrics(table, families)

    def dump_streams(self, now_ns: int, text: bool, header: bytes = b"") -> bytes:
        table = self.node.table
        with self.lock:
            return self.view.dump_streams(table, now_ns, text, header)


_CACHES: dict = {}
_CACHES_LOCK = threading.Lock()


def traffic_cache(node, scope: str, list_all: bool = False) -> TrafficCache:
    """The process's cache for ``scope`` (one per process: API workers are forked)."""
    key = (id(node), scope, list_all, os.getpid())
    cache = _CACHES.get(key)
    if cache is None:
        with _CACHES_LOCK:
            cache = _CACHES.setdefault(key, TrafficCache(node, scope, list_all))
    return cache
