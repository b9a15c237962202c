"""The ledger against a real store: the one usage rule, clears that report every byte once,
writes that apply whole or not at all, and the change watcher the caches share."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastpath.store import Conflict, StateStore, User
from fastpath.store.ledger import USAGE, Ledger, base, since, used, used_many


@pytest.fixture
def ledger(tmp_path):
    live: dict = {}
    book = Ledger(StateStore(tmp_path / "state.db"), live=lambda: live)
    book.live_records = live
    return book


pair = st.tuples(st.integers(0, 2 ** 40), st.integers(0, 2 ** 40))


@given(carried=st.none() | pair, live=st.none() | pair, mark=st.none() | pair)
def test_used_is_carried_plus_live_minus_mark_clamped_per_direction(carried, live, mark):
    c, lv, m = carried or (0, 0), live or (0, 0), mark or (0, 0)
    want = max(0, c[0] + lv[0] - m[0]) + max(0, c[1] + lv[1] - m[1])
    assert used(carried, live, mark) == want
    assert used_many([("u", *base(carried, mark))], {"u": live} if live else {}) == [want]
    assert sum(since((c[0] + lv[0], c[1] + lv[1]), mark)) == want


def test_one_direction_below_its_mark_does_not_eat_the_other():
    # tx fell below its mark (carried reset elsewhere); rx moved on: only rx counts.
    assert used((100, 500), None, (300, 200)) == 300


def test_usage_reads_carried_live_and_the_reset_mark(ledger):
    ledger.store.retire_segment(1, {"a": (1000, 2000), "b": (5, 5)})
    ledger.live_records.update({"a": (10, 20, 1, 0, 0), "c": (7, 0, 1, 0, 0)})
    assert ledger.usage() == {"a": 3030, "b": 10, "c": 7}
    ledger.reset_usage(["a"])
    ledger.live_records["a"] = (15, 20, 1, 0, 0)
    assert ledger.usage(["a", "b", "nobody"]) == {"a": 5, "b": 10, "nobody": 0}


def test_a_clear_reports_each_byte_once(ledger):
    ledger.live_records["a"] = (100, 50, 1, 0, 0)
    assert ledger.traffic("s", clear=True) == {"a": (100, 50)}
    assert ledger.traffic("s", clear=True) == {"a": (0, 0)}
    ledger.live_records["a"] = (130, 50, 1, 0, 0)
    assert ledger.traffic("s") == {"a": (30, 0)}
    assert ledger.traffic("other") == {"a": (130, 50)}       # scopes are apart


def test_a_refused_user_set_leaves_no_baselines(ledger):
    ledger.store.create_user(User(id="op", auth_secret="taken", source="native"))
    ledger.live_records["new"] = (9, 9, 1, 0, 0)
    with pytest.raises(Conflict):
        ledger.replace_users("panel", [User(id="new", auth_secret="taken")], adopt_scope="panel")
    with ledger.read() as book:
        assert book.baselines("panel") == {}                  # adopted in the same transaction
        assert book.user("new") is None
    ledger.replace_users("panel", [User(id="new", auth_secret="mine")], adopt_scope="panel")
    with ledger.read() as book:
        assert book.baselines("panel") == {"new": (9, 9)}
        assert book.user("new").source == "panel"


def test_book_conflicts_name_their_column_and_roll_back(ledger):
    ledger.store.create_user(User(id="a", auth_secret="sa"))
    with pytest.raises(Conflict) as caught:
        with ledger.write() as book:
            book.set_setting("k", 1)
            book.insert_users([User(id="b", auth_secret="sa", created=1.0)])
    assert caught.value.column == "auth_secret" and "UNIQUE" in str(caught.value)
    assert ledger.setting("k") is None                        # nothing half-applied
    with pytest.raises(Conflict) as caught:
        with ledger.write() as book:
            book.insert_users([User(id="a", auth_secret="other", created=1.0)])
    assert caught.value.column == "id"


def test_settings_by_prefix(ledger):
    with ledger.write() as book:
        book.set_setting("t.1", {"x": 1})
        book.set_setting("t.2", 2)
        book.set_setting("t_3", 3)                            # '_' is no wildcard here
    with ledger.write() as book:
        assert book.settings_with_prefix("t.") == {"t.1": {"x": 1}, "t.2": 2}
        book.delete_settings_with_prefix("t.")
    with ledger.read() as book:
        assert book.settings(["t.1", "t.2", "t_3"]) == {"t_3": 3}


def test_the_watcher_sees_other_commits_not_its_own(ledger):
    watch = ledger.watcher()
    assert watch.changed()
    with watch.transaction() as _book:
        assert watch.take()
    assert not watch.changed()
    ledger.set_setting("x", 1)                                # another connection commits
    assert watch.changed()
    with watch.transaction(write=True) as book:
        assert watch.take()
        book.set_baselines(USAGE, {"a": (1, 1)})              # its own write
    assert not watch.changed()
    with pytest.raises(RuntimeError):
        with watch.transaction() as _book:
            watch.take()
            raise RuntimeError("a reload that failed")
    assert watch.changed() is True                            # forgotten: the next read reloads
