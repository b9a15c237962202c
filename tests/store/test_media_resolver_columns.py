"""The failover resolver's columns of ``media_streams``: migration 5 on a state.db written before
it, and the compare-and-set that records a resolver's answer once per node."""
import sqlite3

from fastpath.store import StateStore, media_store
from fastpath.store.schema import MIGRATIONS


def _old_database(path) -> None:
    """A state.db as migrations 1-4 left it, with one stream in it."""
    db = sqlite3.connect(path)
    for number in range(4):
        for statement in MIGRATIONS[number].split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute("PRAGMA user_version = 4")
    db.execute("INSERT INTO media_streams (id, dedup_key, url, kind, failover_urls, failover_index, "
               "created) VALUES ('s1', 'http://o.example/a.ts', 'http://o.example/a.ts', 'direct', "
               "'[\"http://o.example/b.ts\"]', 1, 1.0)")
    db.commit()
    db.close()


def test_migration_5_adds_the_columns_and_keeps_the_streams(tmp_path):
    path = tmp_path / "state.db"
    _old_database(path)
    store = StateStore(path)
    try:
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 5
        s = media_store.get_stream(store, "s1")
        assert (s.failover_resolver_url, s.resolved_url, s.resolved_count) == (None, None, 0)
        assert s.urls == ["http://o.example/a.ts", "http://o.example/b.ts"] and s.failover_index == 1
        assert s.has_failover and s.failover_position(1) == 0
    finally:
        store.close()


def test_a_resolver_answer_is_recorded_once_and_follows_the_list(tmp_path):
    store = StateStore(tmp_path / "state.db")
    try:
        stream, _ = media_store.put_stream(store, media_store.MediaStream(
            id="", url="http://o.example/a.ts", kind="direct", failover_urls=["http://o.example/b.ts"],
            failover_resolver_url="http://r.example/next"))
        sid = stream.id
        won, stored = media_store.switch_to_resolved(store, sid, 0, "http://o.example/a.ts",
                                                     "http://o.example/c.ts")
        assert won and stored.urls[-1] == "http://o.example/c.ts"
        assert stored.failover_index == stored.resolved_index == 2
        assert stored.resolved_count == 1 and stored.failover_attempts == 1
        assert stored.failover_position(2) == 1 and stored.failover_position(1) == 0
        # A second worker saw the same failure: it loses and is told where the node is.
        won, stored = media_store.switch_to_resolved(store, sid, 0, "http://o.example/a.ts",
                                                     "http://o.example/d.ts")
        assert not won and stored.resolved_url == "http://o.example/c.ts"
        assert media_store.get_stream(store, sid).failover_attempts == 1
        # The answer fails in turn: a new answer replaces it at the same index.
        won, stored = media_store.switch_to_resolved(store, sid, 2, "http://o.example/c.ts",
                                                     "http://o.example/d.ts")
        assert won and stored.urls == ["http://o.example/a.ts", "http://o.example/b.ts",
                                       "http://o.example/d.ts"]
        assert stored.resolved_count == 2 and stored.failover_position(2) == 2
        # The same settings again (a manager registering the channel once more) keep it.
        same, _ = media_store.put_stream(store, media_store.MediaStream(
            id="", url="http://o.example/a.ts", kind="direct", failover_urls=["http://o.example/b.ts"],
            failover_resolver_url="http://r.example/next"), update={"failover_urls", "failover_resolver_url"})
        assert same.resolved_url == "http://o.example/d.ts" and same.failover_index == 2
        # New failover settings drop the old answer (it belonged to them).
        again, created = media_store.put_stream(store, media_store.MediaStream(
            id="", url="http://o.example/a.ts", kind="direct", failover_urls=["http://o.example/e.ts"]),
            update={"failover_urls"})
        assert not created and again.resolved_url is None and again.resolved_count == 0
        assert again.failover_index == 0 and again.failover_resolver_url == "http://r.example/next"
        assert media_store.switch_to_resolved(store, "nope", 0, "x", "y") == (False, None)
    finally:
        store.close()
