"""Traffic Stats API read latency with 10k users and 50k live stream slots, against the
control API's cheapest endpoint served by the same gunicorn in the same run.

The control API runs as in production (``python -m fastpath.control.server``, gunicorn, gthread) over a
counter segment and a store this benchmark fills; requests come from keep-alive HTTP clients in
threads.  Goal (issue): ``/traffic`` at 10k users within 5x of the trivial endpoint's latency.
Figures and history: bench/RESULTS.md (traffic faces section).
"""
import http.client
import os
import statistics
import threading
import time

import pytest

import fastpath.shm as shm
from fastpath.store import User
from control_proc import prepare_node, start_control_api

USERS, STREAMS = 10_000, 50_000


@pytest.fixture(scope="module")
def control_api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("traffic-bench")
    port, cfg_path, cfg, store = prepare_node(tmp, 131072)
    store.replace_users("bench", [User(f"user{i}", f"secret{i}") for i in range(USERS)])
    table = shm.CounterTable.create(cfg.counter_segment_path, 1, 131072, 42)
    w = table.writer(0)
    slots = [w.user_slot(f"user{i}") for i in range(USERS)]
    conns = [w.open(shm.KIND_CONNECTION, f"user{i}", user_slot=slots[i], text_a="198.51.100.1:4000",
                    conn_id=i) for i in range(USERS)]
    for n in range(STREAMS):
        i = n % USERS
        s = w.open(shm.KIND_TCP_STREAM, f"user{i}", user_slot=slots[i], conn_slot=conns[i],
                   conn_id=i, stream_id=4 * n, text_b="example.com:443", state=shm.STATE_ESTAB)
        w.count(s, 1000 + n, 2000 + n)
    proc = start_control_api(cfg_path, cfg.data_dir, port)
    yield port
    proc.terminate()
    proc.wait(10)
    os.unlink(cfg.counter_segment_path)


def measure(port: int, path: str, seconds: float = 3.0, clients: int = 2, headers=None):
    """(latencies in ms, requests/s) of ``clients`` keep-alive clients for ``seconds``."""
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            r.read()
            assert r.status == 200
            mine.append((time.perf_counter() - t0) * 1e3)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, len(lat) / (time.monotonic() - t0)


CASES = [
    ("/api/v1/ping", "/api/v1/ping", None),
    ("/traffic", "/traffic", None),
    ("/traffic?clear=1", "/traffic?clear=1", None),
    ("/online", "/online", None),
    ("/dump/streams", "/dump/streams", None),
    ("/dump/streams (text)", "/dump/streams", {"Accept": "text/plain"}),
    ("/api/v1/traffic", "/api/v1/traffic", None),
    ("/metrics", "/metrics", None),
]


def report_latency(label: str, lat: list, rps: float, compare) -> None:
    """Prints and records a route's median and p99 latency and its requests/s, against
    ``/api/v1/ping``'s (the cost of the HTTP stack alone) unless it is that route."""
    median = statistics.median(lat)
    p99 = sorted(lat)[int(len(lat) * 0.99) - 1]
    print(f"\n{label}: median {median:.2f} ms, p99 {p99:.2f} ms, {rps:.0f} req/s")
    trivial = label == "/api/v1/ping"
    compare.record(f"GET {label} median latency (ms)", median, "ms",
                   baseline=None if trivial else "GET /api/v1/ping median latency (ms)")
    compare.record(f"GET {label} requests/s", rps, "req/s", better="higher",
                   baseline=None if trivial else "GET /api/v1/ping requests/s")


@pytest.mark.parametrize("label, path, headers", CASES, ids=[c[0] for c in CASES])
def test_read_latency(control_api, label, path, headers, compare):
    report_latency(label, *measure(control_api, path, headers=headers), compare)
