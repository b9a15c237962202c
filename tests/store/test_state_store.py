"""The state store: migrations, users, atomic replace, carried traffic folded exactly once."""
import sqlite3
import threading

import pytest

from fastpath.store import Conflict, NotFound, StateStore, User
from fastpath.store.schema import MIGRATIONS


def test_migrations_bring_a_new_database_to_the_latest_version(tmp_path):
    store = StateStore(tmp_path / "s.db")
    version = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA user_version").fetchone()[0]
    assert version == len(MIGRATIONS)
    assert sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    StateStore(tmp_path / "s.db")  # reopening applies nothing twice
    store.close()


def test_user_crud_and_conflicts(tmp_path):
    store = StateStore(tmp_path / "s.db")
    store.create_user(User("a", "secret-a", traffic_limit=10))
    with pytest.raises(Conflict, match="already exists"):
        store.create_user(User("a", "other"))
    with pytest.raises(Conflict, match="auth secret"):
        store.create_user(User("b", "secret-a"))
    assert store.user_by_secret("secret-a").id == "a"
    store.update_user("a", enabled=False)
    assert store.get_user("a").enabled is False
    with pytest.raises(NotFound):
        store.update_user("zzz", enabled=False)
    store.delete_user("a")
    with pytest.raises(NotFound):
        store.get_user("a")


def test_replace_users_is_all_or_nothing(tmp_path):
    store = StateStore(tmp_path / "s.db")
    store.create_user(User("native1", "n1"))
    store.replace_users("panel", [User("p1", "s1"), User("p2", "s2")])
    changed, removed = store.replace_users("panel", [User("p2", "s2"), User("p3", "s3")])
    assert (changed, removed) == (["p3"], ["p1"])
    with pytest.raises(Conflict):
        # p4 would take native1's secret: the whole replacement is refused.
        store.replace_users("panel", [User("p5", "s5"), User("p4", "n1")])
    assert sorted(u.id for u in store.list_users()) == ["native1", "p2", "p3"]


def test_retiring_a_segment_folds_its_totals_once(tmp_path):
    store = StateStore(tmp_path / "s.db")
    store.snapshot_segment(11, {"a": (5, 6)})
    store.retire_segment(11, {"a": (7, 8)})
    store.retire_segment(11, {"a": (7, 8)})
    assert store.carried() == {"a": (7, 8)}
    store.snapshot_segment(12, {"a": (1, 1)})
    assert store.unretired_snapshots() == [12]
    store.retire_segment(12, None)  # lost segment: its last snapshot counts
    assert store.carried() == {"a": (8, 9)}


def test_concurrent_writers_from_threads(tmp_path):
    store = StateStore(tmp_path / "s.db")
    errors = []

    def worker(n):
        try:
            for i in range(50):
                store.create_user(User(f"t{n}-{i}", f"sec-{n}-{i}"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.list_users()) == 200
