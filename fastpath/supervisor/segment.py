"""Life cycle of the counter segment: create, adopt after a crash, retire at shutdown.

Traffic a user has moved = carried bytes in the store + what the live segment holds.  A clean
shutdown folds the segment's totals into the store and removes it (one transaction records the
segment as retired, so a crash right after it cannot fold twice).  A segment left by a crash is
adopted as is when its shape still fits, so no counted byte is lost; otherwise its totals are
folded in and a new one is made.
"""
from __future__ import annotations

import logging
import os
import secrets

from fastpath.shm import CounterTable, scan_users
from fastpath.store import StateStore

log = logging.getLogger("fastpath.supervisor")


def segment_totals(table: CounterTable) -> dict[str, tuple[int, int]]:
    return {uid: (rec[0], rec[1]) for uid, rec in scan_users(table).items()}


def open_segment(path: str, store: StateStore, nshards: int, slots_per_shard: int) -> CounterTable:
    if os.path.exists(path):
        try:
            old = CounterTable.attach(path)
        except (ValueError, OSError) as exc:
            log.warning("removing unusable counter segment %s: %s", path, exc)
            os.unlink(path)
        else:
            if store.is_retired(old.segment_id):
                log.info("removing counter segment %x, already folded into the store", old.segment_id)
                old.close()
                os.unlink(path)
            elif old.nshards == nshards and old.slots_per_shard == slots_per_shard:
                log.info("adopting counter segment %x left by a previous run", old.segment_id)
                _fold_lost_segments(store, keep=old.segment_id)
                return old
            else:
                log.info("counter segment shape changed; folding %x into the store", old.segment_id)
                store.retire_segment(old.segment_id, segment_totals(old))
                old.close()
                os.unlink(path)
    _fold_lost_segments(store, keep=None)
    return CounterTable.create(path, nshards, slots_per_shard, secrets.randbits(63))


def _fold_lost_segments(store: StateStore, keep) -> None:
    """Segments that vanished (e.g. a reboot cleared /dev/shm) count by their last snapshot."""
    for segment_id in store.unretired_snapshots():
        if segment_id != keep:
            log.warning("counter segment %x was lost; carrying its last snapshot", segment_id)
            store.retire_segment(segment_id, None)


def retire(table: CounterTable, store: StateStore) -> None:
    store.retire_segment(table.segment_id, segment_totals(table))
    path = table.path
    table.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
