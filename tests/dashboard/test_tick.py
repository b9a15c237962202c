"""The dashboard's one-pass scan (``node_tick``) against the counter table's own readers, on
real segments written by the real writer."""
from __future__ import annotations

import os
import random
import time

import pytest

import fastpath.shm as shm
from fastpath.control.dashboard import rates, tick_figures
from fastpath._native import load

node_tick = load("fastpath.views.dashboard_view").node_tick


@pytest.fixture
def seg_path():
    path = f"/dev/shm/fastpath-test-dash-{os.getpid()}-{time.monotonic_ns()}"
    yield path
    if os.path.exists(path):
        os.unlink(path)


def expected(table):
    users = shm.scan_users(table)
    slots = shm.scan_slots(table)
    counts = [0] * 8
    tx = [0] * 8
    rx = [0] * 8
    for s in slots:
        counts[s["kind"]] += 1
        tx[s["kind"]] += s["tx"]
        rx[s["kind"]] += s["rx"]
    online = sum(1 for rec in users.values() if rec[2] > 0)
    streams = len({s["key"] for s in slots if s["kind"] == shm.KIND_MEDIA_STREAM})
    viewers = len({s["key"] for s in slots if s["kind"] == shm.KIND_MEDIA_CLIENT})
    return counts, tx, rx, online, streams, viewers


@pytest.mark.parametrize("seed", range(8))
def test_tick_equals_the_table_readers(seg_path, seed):
    rnd = random.Random(seed)
    table = shm.CounterTable.create(seg_path, 3, 512, 1)
    writers = [table.writer(i) for i in range(3)]
    for w in writers:
        for u in range(rnd.randrange(0, 40)):
            name = f"user-{rnd.randrange(60)}"
            user = w.user_slot(name)
            for _ in range(rnd.randrange(0, 3)):
                conn = w.open(shm.KIND_CONNECTION, name, user_slot=user)
                for _ in range(rnd.randrange(0, 3)):
                    kind = rnd.choice([shm.KIND_TCP_STREAM, shm.KIND_UDP_SESSION])
                    st = w.open(kind, name, user_slot=user, conn_slot=conn)
                    w.count(st, rnd.randrange(10**6), rnd.randrange(10**6))
                    if rnd.random() < 0.3:
                        w.close(st)
                if rnd.random() < 0.3:
                    w.close(conn)
        for s in range(rnd.randrange(0, 5)):
            sid = f"stream-{rnd.randrange(8)}"
            slot = w.open(shm.KIND_MEDIA_STREAM, sid)
            w.count(slot, 0, rnd.randrange(10**7))
            for _ in range(rnd.randrange(0, 4)):
                c = w.open(shm.KIND_MEDIA_CLIENT, f"viewer-{rnd.randrange(30)}")
                w.count(c, rnd.randrange(10**7), 0)
    got = node_tick(table)
    assert tuple(got) == expected(table)
    table.close()


def test_an_offline_user_is_not_online_and_rates_never_go_negative(seg_path):
    table = shm.CounterTable.create(seg_path, 1, 64, 1)
    w = table.writer(0)
    user = w.user_slot("alice")
    conn = w.open(shm.KIND_CONNECTION, "alice", user_slot=user)
    st = w.open(shm.KIND_TCP_STREAM, "alice", user_slot=user, conn_slot=conn)
    w.count(st, 5000, 1000)
    first = tick_figures(*node_tick(table))
    assert (first["users_online"], first["connections"], first["proxy_streams"]) == (1, 1, 1)
    assert (first["totals"]["tx"], first["totals"]["rx"]) == (5000, 1000)
    w.count(st, 2000, 0)
    w.close(st)
    w.close(conn)
    second = tick_figures(*node_tick(table))
    assert (second["users_online"], second["connections"]) == (0, 0)
    assert rates(first, second, 2.0)["tx"] == 1000
    assert rates(second, first, 1.0)["tx"] == 0      # a total that went down: 0, not negative
    table.close()


class _Node:
    """What LiveTicker reads of the node model: the mapped table."""

    def __init__(self, table):
        self.table = table


def test_one_scan_a_tick_whatever_the_number_of_watchers(seg_path):
    import json
    import threading

    from fastpath.control.dashboard import LiveTicker

    table = shm.CounterTable.create(seg_path, 1, 64, 1)
    w = table.writer(0)
    user = w.user_slot("alice")
    conn = w.open(shm.KIND_CONNECTION, "alice", user_slot=user)
    ticker = LiveTicker(_Node(table), interval=0.2)
    got: list[list[dict]] = [[] for _ in range(10)]
    stop = threading.Event()

    def watch(out):
        stream = ticker.events()
        for chunk in stream:
            if chunk.startswith(b"data: "):
                out.append(json.loads(chunk[6:]))
            if stop.is_set():
                break
        stream.close()

    threads = [threading.Thread(target=watch, args=(g,)) for g in got]
    for t in threads:
        t.start()
    time.sleep(1.5)
    w.count(conn, 1000, 0)
    time.sleep(0.6)
    stop.set()
    for t in threads:
        t.join(5)
    ticks = ticker.ticks
    # ~10 ticks in 2.1 s at 0.2 s, for 10 watchers: one scan a tick, not one a watcher.
    assert 6 <= ticks <= 13, ticks
    for g in got:
        assert len(g) >= 5
        assert all(e["users_online"] == 1 and e["connections"] == 1 for e in g)
    assert max(e["totals"]["tx"] for e in got[0]) == 1000
    # Every watcher gone: the thread ends, and no more scans happen.
    time.sleep(0.6)
    assert ticker.thread is None and ticker.watchers == 0
    after = ticker.ticks
    time.sleep(0.5)
    assert ticker.ticks == after
    table.close()
