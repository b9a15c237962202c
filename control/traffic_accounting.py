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
import threading

from fastpath._native import load as _load
from fastpath.store.ledger import since

TrafficView = _load("fastpath.views.traffic_view").TrafficView


def since_baseline(totals: dict, marks: dict) -> dict[str, tuple[int, int]]:
    return {uid: since(t, marks.get(uid)) for uid, t in totals.items()}


def read_traffic(node, scope: str, clear: bool = False, ids: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """``{id: (tx, rx)}`` counted since the scope's last clear (optionally only ``ids``);
    with ``clear`` the returned amounts become the new baseline in the same transaction
    (``Ledger.traffic``)."""
    return node.ledger.traffic(scope, clear, ids)


def usage(node, live: dict | None = None) -> dict[str, int]:
    """Bytes (tx + rx) each id has used toward its traffic limit: since its last reset
    (``Ledger.usage``, the rule enforcement uses too)."""
    return node.ledger.usage(live=live)


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
        self.watch = node.ledger.watcher()

    def _fresh(self, book) -> None:
        """Inside a watcher transaction: reload the store's figures if another connection
        committed since the last load."""
        if not self.watch.take():
            return
        carried = [(uid, tx, rx) for uid, (tx, rx) in book.carried().items()]
        marks = [(uid, tx, rx) for uid, (tx, rx) in book.baselines(self.scope).items()]
        listed = book.user_ids() if self.list_all else ()
        self.view.load(carried, marks, listed)

    def _current(self) -> None:
        if self.watch.changed():
            with self.watch.transaction() as book:
                self._fresh(book)

    def traffic(self, clear: bool = False) -> bytes:
        """The ``/traffic`` body; with ``clear`` the reported amounts become the baselines in
        the same write transaction (BEGIN IMMEDIATE: clearers of every process serialize)."""
        table = self.node.table
        with self.lock:
            if not clear:
                self._current()
                return self.view.traffic(table, self.list_all)
            with self.watch.transaction(write=True) as book:
                self._fresh(book)
                body, rows = self.view.traffic_clear(table, self.list_all)
                book.set_baselines(self.scope, {uid: (tx, rx) for uid, tx, rx in rows})
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
            self._current()
            return self.view.totals(table)

    def user_metrics(self, families: list) -> bytes:
        """The per-user families of ``/metrics`` (carried + live; baselines do not apply)."""
        table = self.node.table
        with self.lock:
            self._current()
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
