"""CPU of the control API while dashboards watch the live overview route, at 10k users (each
online: a connection and a stream) and 1k relayed streams with 10k viewers.

The control API runs as in production (``python -m fastpath.control.server``: gunicorn gthread) over a
counter segment this benchmark fills the way workers do.  Phases of 10 s alternate on the same
server: no watcher (the baseline: an idle API), 50 open ``/api/v1/dashboard/live`` streams, 1
stream; each phase's CPU is read from /proc (psutil) for the gunicorn master and its worker.
Goal (issue 17): 50 dashboards under 5 % of one core.  The per-tick scan is also timed in this
process against the readers the other faces use at the same size (same run).
Figures: bench/RESULTS.md (dashboard section).
"""
from __future__ import annotations

import os
import socket
import statistics
import threading
import time

import psutil
import pytest

import fastpath.shm as shm
from fastpath.control.dashboard import tick_figures
from control_proc import prepare_node, start_control_api
from fastpath._native import load
from fastpath.store import User

node_tick = load("fastpath.views.dashboard_view").node_tick
USERS, MEDIA_STREAMS, VIEWERS, WATCHERS = 10_000, 1_000, 10_000, 50
PHASE = 10.0


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dash-bench")
    port, cfg_path, cfg, store = prepare_node(tmp, 65536)
    # 128 threads: the live route keeps at most half of them for streams; 50 need 100.
    text = cfg_path.read_text().replace("threads: 4", "threads: 128")
    cfg_path.write_text(text)
    store.replace_users("bench", [User(f"user{i}", f"secret{i}") for i in range(USERS)])
    table = shm.CounterTable.create(cfg.counter_segment_path, 2, 65536, 42)
    w = table.writer(0)
    for i in range(USERS):
        u = w.user_slot(f"user{i}")
        c = w.open(shm.KIND_CONNECTION, f"user{i}", user_slot=u, conn_id=i)
        s = w.open(shm.KIND_TCP_STREAM, f"user{i}", user_slot=u, conn_slot=c, state=shm.STATE_ESTAB)
        w.count(s, 1000 + i, 2000 + i)
    m = table.writer(1)
    for n in range(MEDIA_STREAMS):
        s = m.open(shm.KIND_MEDIA_STREAM, f"stream{n}")
        m.count(s, 0, 10_000 + n)
        for v in range(VIEWERS // MEDIA_STREAMS):
            c = m.open(shm.KIND_MEDIA_CLIENT, f"viewer{n}-{v}")
            m.count(c, 5000 + v, 0)
    assert tuple(node_tick(table))[3:] == (USERS, MEDIA_STREAMS, VIEWERS)
    proc = start_control_api(cfg_path, cfg.data_dir, port)
    yield port, proc, table
    proc.terminate()
    proc.wait(10)
    table.close()
    os.unlink(cfg.counter_segment_path)


class Watcher(threading.Thread):
    """One open dashboard: the live route on a raw socket, events counted as they come."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.events = 0
        self.stop = threading.Event()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(b"GET /api/v1/dashboard/live HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")

    def run(self):
        while not self.stop.is_set():
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            # (chunked transfer encoding: count the event lines, not the blank line)
            self.events += chunk.count(b"data: ")

    def close(self):
        self.stop.set()
        self.sock.close()


def cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def phase(port, proc, watchers: int) -> tuple[float, int]:
    """(% of one core used by the control API, events received) over PHASE seconds."""
    ws = [Watcher(port) for _ in range(watchers)]
    for w in ws:
        w.start()
    time.sleep(2.0)              # streams opened, the ticker running
    c0, t0 = cpu_seconds(proc), time.monotonic()
    e0 = sum(w.events for w in ws)
    time.sleep(PHASE)
    c1, t1 = cpu_seconds(proc), time.monotonic()
    events = sum(w.events for w in ws) - e0
    for w in ws:
        w.close()
    time.sleep(2.5)              # the ticker sees no watcher and stops
    return 100 * (c1 - c0) / (t1 - t0), events


@pytest.mark.slow
def test_cpu_of_50_open_dashboards(api, compare):
    port, proc, table = api
    p = psutil.Process(proc.pid)
    rows = []
    for rnd in range(3):
        idle, _ = phase(port, p, 0)
        many, ev_many = phase(port, p, WATCHERS)
        one, ev_one = phase(port, p, 1)
        rows.append((idle, many, one, ev_many, ev_one))
        print(f"pair {rnd + 1}: idle {idle:.2f} %, {WATCHERS} watchers {many:.2f} % "
              f"({ev_many} events), 1 watcher {one:.2f} % ({ev_one} events)")
        # Every watcher got about one event a second.
        assert ev_many >= WATCHERS * (PHASE - 2), ev_many
    idle = statistics.median(r[0] for r in rows)
    many = statistics.median(r[1] for r in rows)
    one = statistics.median(r[2] for r in rows)
    print(f"median: idle {idle:.2f} %, 1 watcher {one:.2f} %, {WATCHERS} watchers {many:.2f} % of one core "
          f"(above idle: {one - idle:.2f} % and {many - idle:.2f} %)")
    compare.record("dashboard: control API CPU, idle", idle, "% core")
    compare.record("dashboard: control API CPU, 1 watcher", one, "% core")
    compare.record(f"dashboard: control API CPU, {WATCHERS} watchers", many, "% core")
    assert many < 5.0


@pytest.mark.slow
def test_tick_scan_against_the_other_readers(api, compare):
    """One tick's scan, against what the same figures cost from the readers the other faces
    use (``scan_users`` for users online + ``count_kinds`` for the counts), alternated."""
    _, _, table = api

    def best(fn, n=20):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times) * 1e3

    def tick():
        return tick_figures(*node_tick(table))

    def readers():
        users = shm.scan_users(table)
        return sum(1 for r in users.values() if r[2]), shm.count_kinds(table)

    pairs = [(best(tick), best(readers)) for _ in range(3)]
    for a, b in pairs:
        print(f"tick {a:.2f} ms, scan_users+count_kinds {b:.2f} ms ({b / a:.1f}x)")
    compare.record("dashboard: scan_users + count_kinds, same table", min(b for _, b in pairs), "ms")
    compare.record("dashboard: node_tick at 10k users + 11k media slots", min(a for a, _ in pairs), "ms",
                   baseline="dashboard: scan_users + count_kinds, same table")
