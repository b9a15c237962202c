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

from fastpath.store.ledger import since

SCOPE_USERS = "pasarguard"
SCOPE_INBOUND = "pasarguard:inbound"
SCOPE_OUTBOUND = "pasarguard:outbound"
OUTBOUND_TAG = "direct"
USER_SOURCE = "pasarguard"
_ZERO = (0, 0)


@dataclass(frozen=True)
class Traffic:
    name: str
    uplink: int      # client upload: bytes toward the target (the counters' tx)
    downlink: int    # client download: bytes from the target (the counters' rx)


class Accounting:
    def __init__(self, node):
        self.node = node
        self.ledger = node.ledger

    # -- baselines of new users -------------------------------------------------------------
    def adopt(self, db, ids) -> None:
        """Give ids without a row a baseline at their current traffic (call inside a write
        transaction, before the users exist, so no byte of theirs falls before it)."""
        self.ledger.adopt(db, SCOPE_USERS, ids)

    # -- users ------------------------------------------------------------------------------
    def users(self, reset: bool) -> list[Traffic]:
        """Every panel id with traffic since the last reset (ids without any are left out)."""
        if not reset:
            with self.ledger.read() as db:
                marks = db.baselines(SCOPE_USERS)
            totals = self.ledger.totals()
            out = []
            for uid, mark in marks.items():
                up, down = since(totals.get(uid, _ZERO), mark)
                if up or down:
                    out.append(Traffic(uid, up, down))
            return out
        with self.ledger.write() as db:
            marks = db.baselines(SCOPE_USERS)
            totals = self.ledger.totals()
            current = {u.id for u in db.users(USER_SOURCE)}
            out, moved, gone = [], {}, []
            for uid, mark in marks.items():
                total = totals.get(uid, _ZERO)
                if total != mark:
                    up, down = since(total, mark)
                    if up or down:
                        out.append(Traffic(uid, up, down))
                    moved[uid] = total
                elif uid not in current:
                    gone.append(uid)   # removed, and its last bytes were reported
            db.set_baselines(SCOPE_USERS, moved)
            db.drop_baselines(SCOPE_USERS, gone)
        return out

    def user(self, user_id: str, reset: bool) -> Traffic | None:
        """One id's traffic since the last reset; None for an id that is not the panel's."""
        with (self.ledger.write() if reset else self.ledger.read()) as db:
            mark = db.baselines(SCOPE_USERS, [user_id]).get(user_id)
            if mark is None:
                return None
            total = self.ledger.totals().get(user_id, _ZERO)
            up, down = since(total, mark)
            if reset and total != mark:
                db.set_baselines(SCOPE_USERS, {user_id: total})
        return Traffic(user_id, up, down)

    # -- inbound / outbound tags ------------------------------------------------------------
    def tag(self, scope: str, tag: str, reset: bool, *, total: tuple[int, int] | None = None,
            minus: tuple[int, int] = (0, 0)) -> Traffic:
        """A tag's traffic since its last reset: ``total`` when given (a proxy inbound's, see
        inbound_stats.py), else every id's traffic less ``minus`` (what the proxy inbounds
        carried, for the Hysteria tag)."""
        with (self.ledger.write() if reset else self.ledger.read()) as db:
            mark = db.baselines(scope, [tag]).get(tag, _ZERO)
            if total is None:
                tx = rx = 0
                for utx, urx in self.ledger.totals().values():
                    tx += utx
                    rx += urx
                tx, rx = max(0, tx - minus[0]), max(0, rx - minus[1])
            else:
                tx, rx = total
            up, down = since((tx, rx), mark)
            if reset and (tx, rx) != mark:
                db.set_baselines(scope, {tag: (tx, rx)})
        return Traffic(tag, up, down)
