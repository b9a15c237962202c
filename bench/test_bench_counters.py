"""Counter updates and scans: the shared-memory table vs. the usual alternatives, same run.

Goal (issue): a Cython-side update under 5 ns and at least 20x cheaper than
prometheus_client's multiprocess counter; a full scan of 100k slots in milliseconds.
"""
import os
import time

import pytest

import fastpath.shm as shm

N = 1_000_000


@pytest.fixture
def table(tmp_path):
    path = f"/dev/shm/fastpath-bench-{os.getpid()}-{time.monotonic_ns()}"
    t = shm.CounterTable.create(path, 2, 131072, 1)
    yield t
    os.unlink(path)


def test_cython_update_user_slot(benchmark, table, compare):
    """One counter update on a slot, from Cython (the relay pump's path)."""
    w = table.writer(0)
    slot = w.user_slot("alice")
    benchmark(w.count_many, slot, N, 1, 0)
    compare.record("counter update, Cython, user slot (ns/op)", compare.per_op_ns(benchmark, N), "ns",
                   baseline="counter update, prometheus_client multiprocess (ns/op)")


def test_cython_update_stream_chain(benchmark, table, compare):
    """One update on a stream slot that also lands on its connection and user slots."""
    w = table.writer(0)
    user = w.user_slot("alice")
    conn = w.open(shm.KIND_CONNECTION, "alice", user_slot=user)
    stream = w.open(shm.KIND_TCP_STREAM, "alice", user_slot=user, conn_slot=conn)
    benchmark(w.count_many, stream, N, 1, 0)
    compare.record("counter update, Cython, stream+conn+user (ns/op)", compare.per_op_ns(benchmark, N), "ns",
                   baseline="counter update, prometheus_client multiprocess (ns/op)")


def test_python_update(benchmark, table, compare):
    w = table.writer(0)
    slot = w.user_slot("alice")
    count = w.count

    def run():
        for _ in range(10_000):
            count(slot, 1, 0)

    benchmark(run)
    compare.record("counter update, Python call (ns/op)", compare.per_op_ns(benchmark, 10_000), "ns",
                   baseline="dict increment, Python (ns/op)")


def test_python_dict_increment(benchmark, compare):
    d = {"alice": 0}

    def run():
        for _ in range(10_000):
            d["alice"] += 1

    benchmark(run)
    compare.record("dict increment, Python (ns/op)", compare.per_op_ns(benchmark, 10_000), "ns")


def test_prometheus_multiprocess_counter(benchmark, tmp_path, compare, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    from prometheus_client import CollectorRegistry, Counter, values
    saved = values.ValueClass
    values.ValueClass = values.MultiProcessValue()
    try:
        c = Counter("bench_bytes", "bytes", ["user"], registry=CollectorRegistry()).labels("alice")
        inc = c.inc

        def run():
            for _ in range(10_000):
                inc(1)

        benchmark(run)
    finally:
        values.ValueClass = saved
    compare.record("counter update, prometheus_client multiprocess (ns/op)",
                   compare.per_op_ns(benchmark, 10_000), "ns")


@pytest.fixture
def full_table(table):
    """100k live slots: 10k users, each with a connection and 8 streams, over two shards."""
    for shard in range(2):
        w = table.writer(shard)
        for u in range(5000):
            uid = f"user{u}"
            us = w.user_slot(uid)
            conn = w.open(shm.KIND_CONNECTION, uid, user_slot=us, text_a="198.51.100.7:40000")
            for s in range(8):
                st = w.open(shm.KIND_TCP_STREAM, uid, user_slot=us, conn_slot=conn, stream_id=4 * s,
                            text_b="example.com:443", state=shm.STATE_ESTAB)
                w.count(st, 100, 200)
    assert shm.scan_totals(table)[0] == 100_000
    return table


def test_scan_100k_slots_in_c(benchmark, full_table, compare):
    benchmark(shm.scan_totals, full_table)
    compare.record("full scan of 100k slots, C totals (ms)", benchmark.stats.stats.min * 1e3, "ms")


def test_scan_100k_slots_by_user(benchmark, full_table, compare):
    result = benchmark(shm.scan_users, full_table)
    assert len(result) == 5000 and result["user1"][:4] == [1600, 3200, 2, 16]
    compare.record("scan 100k slots summed by user (ms)", benchmark.stats.stats.min * 1e3, "ms")
