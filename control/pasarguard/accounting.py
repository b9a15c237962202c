"""Traffic for the panel: per user, per inbound, per outbound, since the panel's last reset.

Counters in shared memory only grow; the panel's ``reset=true`` is a reader-side baseline in
the store (``baselines`` table): scope ``pasarguard`` per user id, ``pasarguard:inbound`` and
``pasarguard:outbound`` per tag.  A reset reads the counters and moves the baselines inside one
``BEGIN IMMEDIATE`` transaction, so two resets (REST and gRPC, or two panels) serialize: every
byte is returned by exactly one reset, never twice, never lost.

Which ids are the panel's: every user the face creates gets a baseline row first (set to the
traffic that id already has, so a re-used id does not report its past), and a row stays after
the user is removed until its last bytes were reported by a reset.  So a user removed between
two polls still has its final bytes collected, and one added again is not counted twice.

Inbound ``<inboundTag>`` (the Hysteria 2 listener) and outbound ``direct`` carry all traffic
of the node: their totals are the sum over every id of the same counters.
"""
from __future__ import annotations

from dataclasses import dataclass

from fastpath.store.state_store import read_baselines, write_baselines

SCOPE_USERS = "pasarguard"
SCOPE_INBOUND = "pasarguard:inbound"
SCOPE_OUTBOUND = "pasarguard:outbound"
OUTBOUND_TAG = "direct"
USER_SOURCE = "pasarguard"
_MARKS = "SELECT user_id, tx, rx FROM baselines WHERE scope = ?"
_ZERO = (0, 0)


@dataclass(frozen=True)
class Traffic:
    name: str
    uplink: int      # client upload: bytes toward the target (the counters' tx)
    downlink: int    # client download: bytes from the target (the counters' rx)


def _delta(total: tuple[int, int], mark: tuple[int, int]) -> tuple[int, int]:
    # A total below its mark means the id's carried traffic was reset elsewhere (native API);
    # report nothing for the gap, and the next reset re-bases.
    return max(0, total[0] - mark[0]), max(0, total[1] - mark[1])


class Accounting:
    def __init__(self, node):
        self.node = node
        self.store = node.store

    # -- baselines of new users -------------------------------------------------------------
    def adopt(self, db, ids) -> None:
        """Give ids without a row a baseline at their current traffic (call inside a write
        transaction, before the users exist, so no byte of theirs falls before it)."""
        totals = self.node.user_totals()
        db.executemany("INSERT OR IGNORE INTO baselines (scope, user_id, tx, rx) VALUES (?, ?, ?, ?)",
                       [(SCOPE_USERS, uid, *totals.get(uid, (0, 0))) for uid in ids])

    # -- users ------------------------------------------------------------------------------
    def users(self, reset: bool) -> list[Traffic]:
        """Every panel id with traffic since the last reset (ids without any are left out)."""
        if not reset:
            with self.store.transaction(immediate=False) as db:
                marks = db.execute(_MARKS, (SCOPE_USERS,)).fetchall()
            totals = self.node.user_totals()
            out = []
            for uid, btx, brx in marks:
                tx, rx = totals.get(uid, _ZERO)
                up, down = tx - btx, rx - brx
                if up > 0 or down > 0:
                    out.append(Traffic(uid, up if up > 0 else 0, down if down > 0 else 0))
            return out
        with self.store.transaction() as db:
            marks = db.execute(_MARKS, (SCOPE_USERS,)).fetchall()
            totals = self.node.user_totals()
            current = {r[0] for r in db.execute("SELECT id FROM users WHERE source = ?", (USER_SOURCE,))}
            out, moved, gone = [], [], []
            for uid, btx, brx in marks:
                tx, rx = totals.get(uid, _ZERO)
                if tx != btx or rx != brx:
                    up, down = tx - btx, rx - brx
                    if up > 0 or down > 0:
                        out.append(Traffic(uid, up if up > 0 else 0, down if down > 0 else 0))
                    moved.append((tx, rx, SCOPE_USERS, uid))
                elif uid not in current:
                    gone.append((SCOPE_USERS, uid))   # removed, and its last bytes were reported
            db.executemany("UPDATE baselines SET tx = ?, rx = ? WHERE scope = ? AND user_id = ?", moved)
            db.executemany("DELETE FROM baselines WHERE scope = ? AND user_id = ?", gone)
        return out

    def user(self, user_id: str, reset: bool) -> Traffic | None:
        """One id's traffic since the last reset; None for an id that is not the panel's."""
        with self.store.transaction(immediate=reset) as db:
            row = db.execute("SELECT tx, rx FROM baselines WHERE scope = ? AND user_id = ?",
                             (SCOPE_USERS, user_id)).fetchone()
            if row is None:
                return None
            total = self.node.user_totals().get(user_id, (0, 0))
            up, down = _delta(total, (row[0], row[1]))
            if reset and total != (row[0], row[1]):
                write_baselines(db, SCOPE_USERS, {user_id: total})
        return Traffic(user_id, up, down)

    # -- inbound / outbound tags ------------------------------------------------------------
    def tag(self, scope: str, tag: str, reset: bool, *, total: tuple[int, int] | None = None,
            minus: tuple[int, int] = (0, 0)) -> Traffic:
        """A tag's traffic since its last reset: ``total`` when given (a proxy inbound's, see
        inbound_stats.py), else every id's traffic less ``minus`` (what the proxy inbounds
        carried, for the Hysteria tag)."""
        with self.store.transaction(immediate=reset) as db:
            mark = read_baselines(db, scope).get(tag, (0, 0))
            if total is None:
                tx = rx = 0
                for utx, urx in self.node.user_totals().values():
                    tx += utx
                    rx += urx
                tx, rx = max(0, tx - minus[0]), max(0, rx - minus[1])
            else:
                tx, rx = total
            up, down = _delta((tx, rx), mark)
            if reset and (tx, rx) != mark:
                write_baselines(db, scope, {tag: (tx, rx)})
        return Traffic(tag, up, down)
