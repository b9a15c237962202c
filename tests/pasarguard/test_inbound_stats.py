"""Per-inbound totals from the workers' tallies: they only grow across a worker restart or an
inbound re-opened by a new Start (the tally restarts at 0, what was seen is carried)."""
from __future__ import annotations

from fastpath.control.pasarguard.inbound_stats import proxy_totals


class Store:
    def __init__(self):
        self.settings = {}

    def get_setting(self, key, default=None):
        return self.settings.get(key, default)

    def set_setting(self, key, value):
        import json
        self.settings[key] = json.loads(json.dumps(value))     # as the store keeps it


class Workers:
    def __init__(self):
        self.answers = []

    def call(self, cmd, args, timeout):
        assert cmd == "broadcast" and args["cmd"] == "inbound_totals"
        return self.answers


def test_totals_grow_across_restarts_and_reopens():
    store, workers = Store(), Workers()
    workers.answers = [{"pid": 1, "tags": {"A": [10, 100], "B": [1, 2]}},
                       {"pid": 2, "tags": {"A": [5, 50]}}]
    assert proxy_totals(store, workers) == {"A": (15, 150), "B": (1, 2)}
    # shard 0 restarted (new pid, tallies from 0); shard 1 re-opened A (lower than seen).
    workers.answers = [{"pid": 3, "tags": {"A": [1, 1]}}, {"pid": 2, "tags": {"A": [2, 3]}}]
    assert proxy_totals(store, workers) == {"A": (10 + 5 + 1 + 2, 100 + 50 + 1 + 3), "B": (1, 2)}
    # A worker not answering keeps what was last seen of it.
    workers.answers = [{"error": "worker[0] is not running"}, {"pid": 2, "tags": {"A": [4, 4]}}]
    assert proxy_totals(store, workers) == {"A": (15 + 1 + 4, 150 + 1 + 4), "B": (1, 2)}
