"""Traffic since the last clear, per scope, read and cleared in one atomic step.

Counters in shared memory are monotonic and never reset; each API that offers "clear" (the
Traffic Stats API, PasarGuard's ``reset``, the native per-user reset) keeps its own per-id
baseline in the store.  The read happens inside the store's write lock (BEGIN IMMEDIATE), so
concurrent clearers in different API workers serialize: every byte is reported by exactly one
cleared read, never twice, never lost.
"""
from __future__ import annotations

from fastpath.store.state_store import read_baselines, write_baselines


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
