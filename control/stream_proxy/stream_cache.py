"""The registered streams, decoded once and reused until the store changes.

Reading 1k streams costs ~20 ms (four JSON columns a row) and every listing and figure needs
them, while they change only when a stream is created, steered or deleted, or a worker folds
its counters back.  The ledger's ``Watcher`` says when (``PRAGMA data_version`` on a connection
of its own moves when any other connection commits, this thread's store connection included).
A watcher is one connection, used by one thread at a time, so the cache is per thread.
"""
from __future__ import annotations

import threading

from fastpath.control.stream_proxy.stream_json import StreamTemplate
from fastpath.store.ledger import Watcher
from fastpath.store.media_store import MediaStream, list_streams


class StreamCache:
    def __init__(self, store, default_agent: str | None = None):
        self.store = store
        self.default_agent = default_agent
        self._local = threading.local()

    def streams(self) -> list[MediaStream]:
        """Every stream, in the store's order.  Shared between requests: read, never change."""
        return self._entry()[0]

    def templates(self) -> list[StreamTemplate]:
        """The streams' JSON templates (``stream_json``), built once per store change."""
        entry = self._entry()
        if entry[1] is None:
            entry[1] = [StreamTemplate(s, self.default_agent) for s in entry[0]]
        return entry[1]

    def _entry(self) -> list:
        local = self._local
        watch = getattr(local, "watch", None)
        if watch is None:
            watch = local.watch = Watcher(self.store.path)
        cached = getattr(local, "entry", None)
        if cached is not None and not watch.changed():
            return cached
        # Read after the version: a commit in between only causes one more reload later.
        watch.take()
        entry = local.entry = [list_streams(self.store), None]
        return entry
