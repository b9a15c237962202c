"""``node.workers: auto`` (README: "one per core"), end to end: a real node started with it
runs one data-plane worker per core of this machine (``os.cpu_count()``), each alive on its
own counter shard."""
from __future__ import annotations

import os

import pytest

from tests.support.node import NodeProcess

pytestmark = pytest.mark.integration


def test_workers_auto_runs_one_worker_per_core(tmp_path):
    with NodeProcess(tmp_path, {"node": {"workers": "auto"}}) as node:
        health = node.wait_healthy(20)
        info = node.get("/api/v1/node").json()
        workers = [c for c in info["children"] if c["shard"] is not None]
        assert health["workers"] == health["workers_alive"] == len(workers)
        assert len(workers) == os.cpu_count()
        assert sorted(c["shard"] for c in workers) == list(range(len(workers)))
        assert info["counters"]["shards"] == len(workers)
        assert len({c["pid"] for c in workers}) == len(workers) and all(c["alive"] for c in workers)
