"""The registered streams, decoded once and reused until the store changes.

Reading 1k streams costs ~20 ms (four JSON columns a row) and every listing and figure needs
them, while they change only when a stream is created, steered or deleted, or a worker folds
its counters back.  SQLite says when: ``PRAGMA data_version`` moves when another connection
committed, and the connection's ``total_changes`` when this one wrote.  Connections are per
thread (``StateStore``), and so are those two numbers, so the cache is per thread too.
"""
from __future__ import annotations

import threading

from control.stream_proxy.stream_json import StreamTemplate
from fastpath.store.media_store import MediaStream, list_streams


class StreamCache:
    def __init__(self, store, default_agent: str | None = None):
        self.store = store
        self.default_agent = default_agent
        self._local = threading.local()

    def _version(self) -> tuple[int, int]:
        with self.store.transaction(immediate=False) as db:
            return db.execute("PRAGMA data_version").fetchone()[0], db.total_changes

    def streams(self) -> list[MediaStream]:
        """Every stream, in the store's order.  Shared between requests: read, never change."""
        return self._entry()[1]

    def templates(self) -> list[StreamTemplate]:
        """The streams' JSON templates (``stream_json``), built once per store change."""
        entry = self._entry()
        if entry[2] is None:
            entry[2] = [StreamTemplate(s, self.default_agent) for s in entry[1]]
        return entry[2]

    def _entry(self) -> list:
        version = self._version()
        cached = getattr(self._local, "entry", None)
        if cached is not None and cached[0] == version:
            return cached
        # Read after the version: a commit in between only causes one more reload later.
        entry = self._local.entry = [version, list_streams(self.store), None]
        return entry
