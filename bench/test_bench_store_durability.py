"""What durable commits (``synchronous=FULL``) cost against ``NORMAL`` (issue 18, item 4), in
the same run, alternating: the 10k-user sync (``replace_users`` changing every user, one
transaction, as the PasarGuard sync does) and single user creations (one commit each, as an
API write).  The store sets FULL on every connection; the baseline switches it back to NORMAL
on the same connection."""
import statistics
import time

from fastpath.store import StateStore, User

USERS = 10_000
SINGLES = 200


def _sync_seconds(store: StateStore, round_no: int) -> float:
    users = [User(f"user{i}", f"secret-{round_no}-{i}") for i in range(USERS)]
    t0 = time.perf_counter()
    store.replace_users("panel", users)
    return time.perf_counter() - t0


def _single_ms(store: StateStore, round_no: int) -> float:
    t0 = time.perf_counter()
    for i in range(SINGLES):
        store.create_user(User(f"single-{round_no}-{i}", f"s-{round_no}-{i}"))
    return (time.perf_counter() - t0) / SINGLES * 1e3


def test_synchronous_full_vs_normal(tmp_path, compare):
    store = StateStore(tmp_path / "state.db")
    figures = {"NORMAL": ([], []), "FULL": ([], [])}
    _sync_seconds(store, 99)              # warm-up: the first sync inserts, later ones update
    for round_no in range(8):
        mode = ("NORMAL", "FULL")[round_no % 2]
        store._db().execute(f"PRAGMA synchronous={mode}")
        figures[mode][0].append(_sync_seconds(store, round_no))
        figures[mode][1].append(_single_ms(store, round_no))
    for mode, (sync, single) in figures.items():
        print(f"\nsynchronous={mode}: sync_users 10k {statistics.median(sync) * 1e3:.0f} ms, "
              f"create_user {statistics.median(single):.2f} ms each (rounds {[round(s * 1e3) for s in sync]})")
        compare.record(f"store 10k-user sync, synchronous={mode}", statistics.median(sync) * 1e3, "ms",
                       baseline=None if mode == "NORMAL" else "store 10k-user sync, synchronous=NORMAL")
        compare.record(f"store create_user, synchronous={mode}", statistics.median(single), "ms",
                       baseline=None if mode == "NORMAL" else "store create_user, synchronous=NORMAL")
