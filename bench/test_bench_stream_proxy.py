"""Stream proxy control face at 1k streams and 10k viewers: ``GET /health``, ``/streams``,
``/stats``, ``/stats/streams``, ``/stats/clients`` and ``/stats/performance`` latency against
``GET /api/v1/ping`` (the cheapest answer of the same app) in the same run.

The face runs standalone (the real gunicorn control server, real HTTP over loopback) over a
counter segment this benchmark creates and fills the way workers do: one stream slot per
(worker, stream) on two shards, 10k viewer slots owned by their stream slots, every slot with
bytes counted.  The 1k streams are in the state store.  A stand-in supervisor answers
``status`` (the face's uptime) on the command socket.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import statistics
import threading
import time

import pytest
import yaml

from fastpath import shm
from fastpath.config import load_config
from fastpath.store import StateStore
from fastpath.store.media_store import MediaStream, put_stream
from tests.support.node import free_tcp_port
from control_proc import start_control_api

STREAMS = 1_000
CLIENTS = 10_000
ROUNDS = 60


class StandInSupervisor:
    """Answers ``status`` and ``broadcast`` on the command socket (no workers here)."""

    def __init__(self, path: str):
        from fastpath.supervisor.command_channel import serve_requests
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        started = time.time()

        async def handler(cmd, args):
            if cmd == "status":
                return {"uptime": time.time() - started, "children": []}
            return []

        async def main():
            await asyncio.start_unix_server(lambda r, w: serve_requests(r, w, handler), path=path)
            ready.set()
            await asyncio.Event().wait()

        threading.Thread(target=lambda: self.loop.run_until_complete(main()), daemon=True).start()
        ready.wait(10)


def fill(table, store) -> None:
    writers = [table.writer(0), table.writer(1)]
    streams = []
    for i in range(STREAMS):
        kind = "hls" if i % 2 else "direct"
        url = f"http://origin{i % 7}.example/live/{i}." + ("m3u8" if kind == "hls" else "ts")
        s, _ = put_stream(store, MediaStream(id="", url=url, kind=kind,
                                             failover_urls=[url.replace("origin", "backup")],
                                             metadata={"tvg_id": f"ch{i}", "group": f"g{i % 20}"}))
        streams.append(s)
    stream_slots = []
    for i, s in enumerate(streams):
        w = writers[i % 2]
        slot = w.open(shm.KIND_MEDIA_STREAM, s.id, text_a=s.kind, text_b=s.url, state=shm.STATE_ESTAB)
        w.add_counts(slot, 0, 5_000_000 + i, 0, i % 3)
        w.set_extra(slot, 3, i)
        stream_slots.append((w, slot, s.id))
    for c in range(CLIENTS):
        w, slot, sid = stream_slots[c % STREAMS]
        cslot = w.open(shm.KIND_MEDIA_CLIENT, f"{c:016x}", conn_slot=slot, text_a=sid,
                       text_b=f"10.{c >> 16 & 255}.{c >> 8 & 255}.{c & 255}\tuser{c}\tVLC/3.0.20 LibVLC/3.0.20",
                       state=shm.STATE_ESTAB)
        w.add_counts(cslot, 1_000_000 + c, 0, c % 50, 0)


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sp-bench")
    port = free_tcp_port()
    cfg_path = tmp / "node.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "control": {"listen": f"127.0.0.1:{port}"},
        "counters": {"slotsPerShard": 8192},
        "media": {"listen": f"127.0.0.1:{free_tcp_port()}"}}))
    cfg = load_config(cfg_path, tmp / "data")
    cfg.data_dir.mkdir()
    store = StateStore(cfg.store_path)
    table = shm.CounterTable.create(cfg.counter_segment_path, 2, 8192, 5151)
    fill(table, store)
    StandInSupervisor(str(cfg.command_socket))
    proc = start_control_api(cfg_path, cfg.data_dir, port)
    yield port
    proc.terminate()
    proc.wait(10)
    table.close()
    os.unlink(cfg.counter_segment_path)


def timed_gets(port: int, path: str, rounds: int) -> tuple[list[float], bytes]:
    """``rounds`` sequential GETs on one keep-alive connection: seconds each, last body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times, body = [], b""
    for _ in range(rounds + 2):
        t0 = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        times.append(time.perf_counter() - t0)
        assert resp.status == 200, body[:200]
    conn.close()
    return times[2:], body  # the first two warm the face up


@pytest.mark.slow
def test_stats_and_streams_latency_at_1k_streams_10k_clients(face, compare):
    ping, _ = timed_gets(face, "/api/v1/ping", 200)
    health, _ = timed_gets(face, "/health", ROUNDS)
    streams, streams_body = timed_gets(face, "/streams", ROUNDS)
    stats, stats_body = timed_gets(face, "/stats", ROUNDS)
    perf, _ = timed_gets(face, "/stats/performance", ROUNDS)
    stats_streams, ss_body = timed_gets(face, "/stats/streams", ROUNDS)
    stats_clients, sc_body = timed_gets(face, "/stats/clients", ROUNDS)
    assert json.loads(ss_body)["total_streams"] == STREAMS
    assert json.loads(sc_body)["total_clients"] == CLIENTS
    # The answers carry every stream and viewer of the segment.
    listed = json.loads(streams_body)
    assert listed["total"] == STREAMS
    assert sum(s["client_count"] for s in listed["streams"]) == CLIENTS
    st = json.loads(stats_body)
    assert st["total_clients"] == CLIENTS and st["active_clients"] == CLIENTS
    assert st["total_streams"] == STREAMS and len(st["clients"]) == CLIENTS

    def ms(xs):
        return statistics.median(xs) * 1e3

    def p95(xs):
        return sorted(xs)[int(len(xs) * 0.95) - 1] * 1e3

    compare.record("GET /api/v1/ping latency, median (ms)", ms(ping), "ms")
    compare.record("GET /health 1k streams 10k clients, median (ms)", ms(health), "ms",
                   baseline="GET /api/v1/ping latency, median (ms)")
    compare.record("GET /streams 1k streams 10k clients, median (ms)", ms(streams), "ms",
                   baseline="GET /api/v1/ping latency, median (ms)")
    compare.record("GET /streams 1k streams 10k clients, p95 (ms)", p95(streams), "ms")
    compare.record("GET /stats 1k streams 10k clients, median (ms)", ms(stats), "ms",
                   baseline="GET /api/v1/ping latency, median (ms)")
    compare.record("GET /stats 1k streams 10k clients, p95 (ms)", p95(stats), "ms")
    compare.record("GET /stats/performance 1k streams 10k clients, median (ms)", ms(perf), "ms",
                   baseline="GET /api/v1/ping latency, median (ms)")
    compare.record("GET /stats/streams 1k streams 10k clients, median (ms)", ms(stats_streams), "ms",
                   baseline="GET /api/v1/ping latency, median (ms)")
    compare.record("GET /stats/clients 1k streams 10k clients, median (ms)", ms(stats_clients), "ms",
                   baseline="GET /api/v1/ping latency, median (ms)")
    compare.record("GET /streams body (kB)", len(streams_body) / 1024, "kB")
    compare.record("GET /stats body (kB)", len(stats_body) / 1024, "kB")
