"""The one narrow object every control-API resource reads and acts through.

It joins the state store (users, settings, carried traffic) with the shared-memory counters
(read-only mapping, Cython scan) and the supervisor's command socket.  Resources never touch
globals or call into a data-plane worker directly.
"""
from __future__ import annotations

import os
import time

from fastpath.config import NodeConfig
from fastpath.shm import CounterTable, scan_slots, scan_users
from fastpath.store import StateStore
from fastpath.store.ledger import Ledger
from fastpath.supervisor.command_channel import CommandClient, CommandError
from fastpath.control.openapi import OpenApiBuilder


# How long an API request waits for the workers to take a user change before it answers
# anyway; and the Retry-After it then gives (the worker restart backoff starts at 0.5 s).
USERS_CHANGED_WAIT = 5.0
USERS_CHANGED_RETRY_AFTER = 1


class NodeUnavailable(Exception):
    """The node cannot answer this now (counters not mapped yet, supervisor unreachable).
    A domain error: every face maps it to its own shape (the falcon faces to a 503 with this
    title and description, ``control/errors.py``; PasarGuard to its UNAVAILABLE)."""

    def __init__(self, title: str, description: str):
        super().__init__(description)
        self.title = title
        self.description = description


def not_yet_enforced(resp) -> None:
    """Mark an answer whose user change a live worker has not confirmed: the change is
    stored and applies within ``Retry-After`` seconds, not yet at this instant."""
    resp.set_header("Retry-After", str(USERS_CHANGED_RETRY_AFTER))
    resp.set_header("X-Fastpath-Enforced", "pending")


def users_changed(node, resp) -> None:
    """Tell the workers the users changed and wait for them; an answer they did not confirm
    in time says so (``not_yet_enforced``)."""
    if not node.notify_users_changed():
        not_yet_enforced(resp)


class NodeModel:
    def __init__(self, config: NodeConfig):
        self.config = config
        self.store = StateStore(config.store_path)
        # The one model of users, usage and settings every face reads and writes through.
        self.ledger = Ledger(self.store, live=self.live_users)
        self.commands = CommandClient(str(config.command_socket))
        # ``/``, shared by several faces (control/shared_root.py): set by the app being built,
        # None for a face registered on its own.
        self.shared_root = None
        self.openapi = OpenApiBuilder(title="fastpath node API", version=_version())
        self.started = time.time()
        # Checks of administrator session tokens issued by faces (control/auth.py).
        self.admin_sessions: list = []
        self._table: CounterTable | None = None
        self._table_inode = None
        secrets_path = config.data_dir / "secrets.json"
        self.secrets = {}
        if secrets_path.exists():
            import json
            self.secrets = json.loads(secrets_path.read_text())

    # -- counters ---------------------------------------------------------------------------
    @property
    def table(self) -> CounterTable:
        """The live segment, re-mapped when the supervisor replaced it."""
        path = self.config.counter_segment_path
        try:
            inode = os.stat(path).st_ino
        except FileNotFoundError:
            raise NodeUnavailable("starting", "the counter segment is not there yet") from None
        if self._table is None or inode != self._table_inode:
            self._table = CounterTable.attach(path, readonly=True)
            self._table_inode = inode
        return self._table

    def live_users(self) -> dict[str, list]:
        """``{id: [tx, rx, connections, streams, last_active_ns]}`` of the live segment."""
        return scan_users(self.table)

    def slots(self, kinds=None) -> list[dict]:
        return scan_slots(self.table, kinds)

    def user_totals(self, live: dict | None = None) -> dict[str, tuple[int, int]]:
        """All traffic per id, across restarts: carried in the store + the live segment."""
        return self.ledger.totals(live)

    # -- commands ---------------------------------------------------------------------------
    def command(self, cmd: str, args: dict | None = None, timeout: float = 5.0):
        try:
            return self.commands.call(cmd, args, timeout)
        except CommandError as exc:
            raise NodeUnavailable("supervisor unavailable", str(exc)) from None

    def notify_users_changed(self, wait: float = USERS_CHANGED_WAIT) -> bool:
        """Tell every worker to reload users, and return only once each has (True), so an
        API that answers after this call answers when the data plane enforces the change.

        The supervisor answers after every worker reloaded and took its new traffic caps; a
        worker that is restarting, or a supervisor that is busy, is asked again until
        ``wait`` seconds have passed.  False then: the store holds the change and every
        worker reads it when it starts, but a live one may not know it yet (the caller
        says so to its client, ``USERS_CHANGED_RETRY_AFTER``)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                results = self.commands.call("users_changed", {}, max(0.5, wait))
                if isinstance(results, list) and not any(
                        isinstance(r, dict) and "error" in r for r in results):
                    return True
            except CommandError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def status(self) -> dict | None:
        try:
            return self.commands.call("status", {}, 2.0)
        except CommandError:
            return None


def _version() -> str:
    from fastpath import __version__
    return __version__
