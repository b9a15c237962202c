"""QUIC handshakes per second with and without Retry (issue 18's benchmark).

Two nodes run side by side: one on defaults (Retry only past ``quic.maxHalfOpen`` half-open
connections, so never here) and one with ``quic.maxHalfOpen: 0`` (every connection pays the
Retry round trip first).  Rounds alternate between them with the same warm-up; each round opens
``N`` connections (connect + Hysteria 2 auth, then close) from our client at a fixed
concurrency.  Reported: handshakes/s (median of the rounds) and the worker's CPU per handshake.

    python -m pytest bench/test_bench_hy2_handshakes.py -s
"""
from __future__ import annotations

import asyncio
import os
import statistics
import time

from fastpath.hy2.client.client import simple_client
from fastpath.worker.event_loop import run
from tests.hy2.conftest import default_secret
from tests.support.node import NodeProcess

N = int(os.environ.get("FASTPATH_BENCH_HANDSHAKES", "300"))
CONCURRENCY = 16
ROUNDS = 3


def _worker_cpu(node) -> float:
    pid = next(c["pid"] for c in node.get("/api/v1/node").json()["children"] if c["shard"] == 0)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _handshakes(server: str, secret: str, n: int) -> float:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one():
        async with sem:
            client = simple_client(server, secret)
            await asyncio.wait_for(client.ensure_connected(), 15)
            await client.close()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - start)


def test_handshakes_per_second_with_and_without_retry(tmp_path, compare):
    (tmp_path / "plain").mkdir()
    (tmp_path / "retry").mkdir()
    with NodeProcess(tmp_path / "plain", {}) as plain, \
            NodeProcess(tmp_path / "retry", {"quic": {"maxHalfOpen": 0}}) as retry:
        nodes = {"without Retry": plain, "Retry on every connection": retry}
        secrets = {name: default_secret(node.data_dir) for name, node in nodes.items()}
        for name, node in nodes.items():                      # the same warm-up for both
            run(_handshakes(node.config["listen"], secrets[name], 30))
        rates: dict[str, list[float]] = {name: [] for name in nodes}
        cpu: dict[str, list[float]] = {name: [] for name in nodes}
        for _ in range(ROUNDS):
            for name, node in nodes.items():
                before = _worker_cpu(node)
                rates[name].append(run(_handshakes(node.config["listen"], secrets[name], N)))
                cpu[name].append((_worker_cpu(node) - before) / N * 1e3)
    for name in nodes:
        rate, ms = statistics.median(rates[name]), statistics.median(cpu[name])
        print(f"\n{name}: {rate:.0f} handshakes/s (rounds {[round(r) for r in rates[name]]}), "
              f"server CPU {ms:.2f} ms per handshake")
    compare.record("hy2 handshakes: without Retry", statistics.median(rates["without Retry"]),
                   "handshakes/s", better="higher")
    compare.record("hy2 handshakes: Retry on every connection",
                   statistics.median(rates["Retry on every connection"]), "handshakes/s",
                   baseline="hy2 handshakes: without Retry", better="higher")
