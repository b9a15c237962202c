"""Server memory per idle Hysteria 2 connection, per open stream and per active stream, for
``fastpath serve`` beside sing-box's server in the same run (issue 12's "memory per idle
connection and per active stream: measured and reported").

Our client (in this process) connects to each server in turn, rounds alternating between them:

- **idle connection**: ``CONNS`` connections made and authenticated, then left alone for a
  second; the RSS growth divided by ``CONNS``;
- **open stream**: ``STREAMS`` TCP streams to an echo target on one connection, each used once
  (64 B echoed) and then held open;
- **active stream**: ``ACTIVE`` streams on one connection each echoing 16 KiB chunks in a
  loop; RSS sampled while they run (the streams' buffers are in use).

RSS is the server's whole process tree (for fastpath: supervisor, worker and control API; only
the worker grows).  Each round starts both servers anew (a heap that grew in an earlier round
would hide the next one's allocations, RSS does not shrink on free), and growth is measured
from a baseline taken after a warm-up of 5 connections, so one-off allocations (the first
connection's TLS context, an arena) are not counted per connection.  The machine is shared with other helpers' runs: several rounds are printed.

    python -m pytest bench/test_bench_hy2_memory.py -q -s
"""
from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import hy2_peers as peers  # noqa: E402
from hy2_peers import rss_bytes  # noqa: E402
from fastpath.hy2.client.client import simple_client  # noqa: E402
from fastpath.supervisor.bootstrap import ensure_certificate  # noqa: E402
from tests.hy2.targets import TargetThread, echo_handler  # noqa: E402

CONNS = int(os.environ.get("HY2_MEM_CONNS", "100"))
STREAMS = int(os.environ.get("HY2_MEM_STREAMS", "200"))
ACTIVE = int(os.environ.get("HY2_MEM_ACTIVE", "50"))
ROUNDS = int(os.environ.get("HY2_MEM_ROUNDS", "3"))
CHUNK = 16 << 10


async def _connect(server: str, password: str, k: int) -> list:
    clients = []
    for _ in range(k):
        c = simple_client(server, password)
        await asyncio.wait_for(c.ensure_connected(), 20)
        clients.append(c)
    return clients


async def _close(clients) -> None:
    for c in clients:
        await c.close()


async def one_round(server: str, password: str, pid: int, echo: str) -> dict:
    """KiB of server RSS per idle connection, per open stream and per active stream."""
    warm = await _connect(server, password, 5)          # one-off allocations out of the way
    await _close(warm)
    await asyncio.sleep(0.5)
    base = rss_bytes(pid)
    clients = await _connect(server, password, CONNS)
    await asyncio.sleep(1.0)
    per_conn = (rss_bytes(pid) - base) / CONNS
    held = []
    try:
        before = rss_bytes(pid)
        for _ in range(STREAMS):
            reader, writer = await clients[0].open_tcp(echo)
            writer.write(b"x" * 64)
            await reader.readexactly(64)
            held.append(writer)
        await asyncio.sleep(1.0)
        per_stream = (rss_bytes(pid) - before) / STREAMS
        for w in held:
            w.close()
        held.clear()
        await asyncio.sleep(0.5)

        before = rss_bytes(pid)
        stop = asyncio.Event()
        moved = [0]

        async def active(client):
            reader, writer = await client.open_tcp(echo)
            held.append(writer)
            chunk = os.urandom(CHUNK)
            while not stop.is_set():
                writer.write(chunk)
                await reader.readexactly(CHUNK)
                moved[0] += CHUNK

        tasks = [asyncio.ensure_future(active(clients[1 % len(clients)])) for _ in range(ACTIVE)]
        await asyncio.sleep(2.0)
        peak = 0
        for _ in range(5):
            peak = max(peak, rss_bytes(pid))
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        per_active = (peak - before) / ACTIVE
    finally:
        for w in held:
            w.close()
        await _close(clients)
    return {"idle_conn_kib": per_conn / 1024, "open_stream_kib": per_stream / 1024,
            "active_stream_kib": per_active / 1024, "active_moved_mib": moved[0] / 2**20}


def _start(name: str, workdir: Path, cert, key):
    workdir.mkdir(parents=True, exist_ok=True)
    if name == "fastpath serve":
        return peers.FastpathServer(workdir)
    return peers.SingBoxServer(workdir, "bench-password", str(cert), str(key))


@pytest.mark.timeout(900)
def test_server_memory_per_connection_and_stream(tmp_path, compare):
    cert, key = ensure_certificate(tmp_path / "tls")
    targets = TargetThread()
    echo = f"127.0.0.1:{targets.tcp(echo_handler)}"
    names = ["fastpath serve"] + (["sing-box server"] if peers.sing_box_path() else [])
    rounds: dict[str, list[dict]] = {name: [] for name in names}
    try:
        for i in range(ROUNDS):
            # A fresh server each round: a heap that already grew for an earlier round
            # would hide the next round's allocations (RSS does not shrink on free).
            for name in (names if i % 2 == 0 else list(reversed(names))):
                s = _start(name, tmp_path / f"{name.split()[0]}-{i}", cert, key)
                try:
                    rounds[name].append(asyncio.run(one_round(s.address, s.password, s.pid, echo)))
                finally:
                    s.close()
    finally:
        targets.close()

    print(f"\nserver RSS growth (KiB), {CONNS} idle connections, {STREAMS} open streams, "
          f"{ACTIVE} active streams; median of {ROUNDS} rounds (rounds in brackets)")
    for name, figs in rounds.items():
        cells = []
        for key in ("idle_conn_kib", "open_stream_kib", "active_stream_kib"):
            values = [f[key] for f in figs]
            cells.append(f"{key}={statistics.median(values):.1f} "
                         f"[{' '.join(f'{v:.1f}' for v in values)}]")
        print(f"  {name}: " + ", ".join(cells))
        for key in ("idle_conn_kib", "open_stream_kib", "active_stream_kib"):
            baseline = f"hy2 memory: sing-box server {key}" if name != "sing-box server" else None
            compare.record(f"hy2 memory: {name} {key}", statistics.median([f[key] for f in figs]),
                           "KiB", better="lower",
                           baseline=baseline if "sing-box server" in rounds else None)
        assert all(f["active_moved_mib"] > 0 for f in figs), "the active streams moved nothing"
