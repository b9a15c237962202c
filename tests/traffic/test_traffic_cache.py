"""The per-process traffic cache against a real store and segment: it follows every commit made
elsewhere, and clears from several "processes" (caches with their own connections) racing a
writer still report every byte exactly once."""
from __future__ import annotations

import json
import os
import random
import threading
import time

import pytest

import fastpath.shm as shm
from fastpath.control.traffic_accounting import TrafficCache, read_traffic
from fastpath.store import StateStore, User
from fastpath.store.ledger import Ledger


class Node:
    """What the cache reads through: the store and the live segment (as NodeModel holds them)."""

    def __init__(self, store, table):
        self.store = store
        self.table = table
        self.ledger = Ledger(store, live=self.live_users)

    def live_users(self):
        return shm.scan_users(self.table)

    def user_totals(self, live=None):
        return self.ledger.totals(live)


@pytest.fixture
def node(tmp_path):
    path = f"/dev/shm/fastpath-tc-{os.getpid()}-{time.monotonic_ns()}"
    table = shm.CounterTable.create(path, 2, 256, 9)
    store = StateStore(tmp_path / "state.db")
    yield Node(store, shm.CounterTable.attach(path, readonly=True)), table
    os.unlink(path)


def body(cache, clear=False):
    return json.loads(cache.traffic(clear))


def test_cache_follows_commits_made_elsewhere(node):
    node, table = node
    w = table.writer(0)
    slot = w.user_slot("alice")
    w.count(slot, 100, 200)
    cache = TrafficCache(node, "traffic_stats", list_all=True)
    assert body(cache) == {"alice": {"tx": 100, "rx": 200}}
    # Carried traffic folded by the supervisor (another connection).
    node.store.retire_segment(1, {"alice": (1, 2), "bob": (5, 0)})
    assert body(cache) == {"alice": {"tx": 101, "rx": 202}, "bob": {"tx": 5, "rx": 0}}
    # A clear through the general path (another connection) moves the baselines.
    read_traffic(node, "traffic_stats", clear=True)
    assert body(cache) == {}
    # A new user of the table is listed with zeros (listAllUsers).
    node.store.replace_users("test", [User("carol", "s3cret")])
    assert body(cache) == {"carol": {"tx": 0, "rx": 0}}
    w.count(slot, 7, 0)
    assert body(cache, clear=True) == {"alice": {"tx": 7, "rx": 0}, "carol": {"tx": 0, "rx": 0}}
    # The cache's own clear is in the store for everyone else.
    assert read_traffic(node, "traffic_stats")["alice"] == (0, 0)
    assert json.loads(cache.totals())["users"]["alice"]["tx"] == 108


def test_racing_clears_report_every_byte_once(node):
    node, table = node
    writers = [table.writer(0), table.writer(1)]
    slots = [(w, w.user_slot(uid)) for w in writers for uid in ("a", "b")]
    caches = [TrafficCache(node, "traffic_stats") for _ in range(3)]
    moved = {"a": [0, 0], "b": [0, 0]}
    cleared = {"a": [0, 0], "b": [0, 0]}
    stop = threading.Event()
    lock = threading.Lock()

    def clearer(cache):
        while not stop.is_set():
            for uid, fig in body(cache, clear=True).items():
                with lock:
                    cleared[uid][0] += fig["tx"]
                    cleared[uid][1] += fig["rx"]

    threads = [threading.Thread(target=clearer, args=(caches[i % 3],)) for i in range(4)]
    for t in threads:
        t.start()
    rng = random.Random(5)
    deadline = time.monotonic() + 1.5
    try:
        while time.monotonic() < deadline:
            n = rng.randrange(len(slots))
            w, slot = slots[n]
            tx, rx = rng.randrange(1, 10_000), rng.randrange(0, 10_000)
            w.count(slot, tx, rx)
            uid = "ab"[n % 2]
            moved[uid][0] += tx
            moved[uid][1] += rx
            if rng.random() < 0.01:
                # A commit from elsewhere, as the supervisor's snapshots make every 2 s.
                node.store.snapshot_segment(9, {"a": (1, 1)})
    finally:
        stop.set()
        for t in threads:
            t.join()
    for uid, fig in body(caches[0], clear=True).items():
        cleared[uid][0] += fig["tx"]
        cleared[uid][1] += fig["rx"]
    assert cleared == moved
    assert body(caches[1]) == {} and body(caches[2]) == {}
