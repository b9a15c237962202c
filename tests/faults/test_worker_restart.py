"""A worker that dies takes only its own connections with it.

Two workers share the Hysteria 2 port.  Six transfers run, three on each worker (told apart by
``/api/v1/connections``), when one worker is killed with SIGKILL: the other worker's transfers
must finish with their SHA-256 intact (their flows must not move to another socket), and the
killed worker's clients must learn of it at once (a stateless reset from the restarted worker)
and be connected again within 2 s.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import struct
import time

import pytest

from fastpath.hy2.client.client import simple_client
from fastpath.worker.event_loop import run
from tests.hy2.conftest import default_secret
from tests.hy2.targets import TargetThread, echo_handler, pattern
from tests.support.node import NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRANSFER_BYTES = 6 << 20
SECONDS_PER_TRANSFER = 4.0
RECONNECT_SECONDS = 2.0


async def paced_source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads ``uint64 n, uint64 seed``; sends the pattern over SECONDS_PER_TRANSFER, so the
    transfers are still running when the worker dies."""
    try:
        n, seed = struct.unpack(">QQ", await reader.readexactly(16))
        chunks = list(pattern(n, seed, chunk=1 << 16))
        pause = SECONDS_PER_TRANSFER / len(chunks)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(pause)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def expected_digest(n: int, seed: int) -> str:
    h = hashlib.sha256()
    for chunk in pattern(n, seed, chunk=1 << 16):
        h.update(chunk)
    return h.hexdigest()


async def download(client, port: int, seed: int) -> str:
    reader, writer = await client.open_tcp(f"127.0.0.1:{port}")
    writer.write(struct.pack(">QQ", TRANSFER_BYTES, seed))
    h = hashlib.sha256()
    got = 0
    while got < TRANSFER_BYTES:
        data = await reader.read(1 << 20)
        if not data:
            break
        h.update(data)
        got += len(data)
    writer.close()
    if got != TRANSFER_BYTES:
        raise ConnectionError(f"stream ended after {got} of {TRANSFER_BYTES} bytes")
    return h.hexdigest()


async def echo_once(client, port: int) -> None:
    reader, writer = await client.open_tcp(f"127.0.0.1:{port}")
    writer.write(b"still here")
    assert await asyncio.wait_for(reader.readexactly(10), 5) == b"still here"
    writer.close()


def test_a_killed_worker_leaves_the_other_workers_connections_alone(tmp_path):
    targets = TargetThread()
    source, echo = targets.tcp(paced_source), targets.tcp(echo_handler)
    try:
        with NodeProcess(tmp_path, {}, workers=2) as node:
            secret = default_secret(node.data_dir)
            run(_scenario(node, secret, source, echo))
    finally:
        targets.close()


async def _scenario(node, secret: str, source: int, echo: int) -> None:
    # Enough connections that each worker holds three (the kernel spreads them by address).
    clients = []
    for _ in range(24):
        client = simple_client(node.config["listen"], secret)
        conn = await asyncio.wait_for(client.ensure_connected(), 15)
        clients.append((client, conn.endpoint.local_address[1]))
    rows = node.get("/api/v1/connections?limit=1000").json()["connections"]
    worker_of = {int(r["remote"].rsplit(":", 1)[1]): r["worker"] for r in rows}
    by_worker: dict[int, list] = {0: [], 1: []}
    for client, port in clients:
        by_worker[worker_of[port]].append(client)
    assert len(by_worker[0]) >= 3 and len(by_worker[1]) >= 3, {k: len(v) for k, v in by_worker.items()}
    keep = {w: by_worker[w][:3] for w in (0, 1)}
    for client, _port in clients:
        if client not in keep[0] and client not in keep[1]:
            await client.close()

    children = node.get("/api/v1/node").json()["children"]
    victim_pid = next(c["pid"] for c in children if c["shard"] == 1)

    seeds = {id(c): i for i, c in enumerate(keep[0] + keep[1])}
    transfers = {id(c): asyncio.ensure_future(download(c, source, seeds[id(c)]))
                 for c in keep[0] + keep[1]}
    await asyncio.sleep(1.0)
    assert not any(t.done() for t in transfers.values()), "transfers ended before the kill"
    os.kill(victim_pid, signal.SIGKILL)
    killed_at = time.monotonic()

    async def reconnect(client) -> float:
        """Seconds from the kill until this client moves bytes again.  A download leaves the
        client silent, so it is the next request (as an application makes) that meets the
        stateless reset and then connects anew."""
        deadline = killed_at + 10
        while True:
            try:
                await echo_once(client, echo)
                return time.monotonic() - killed_at
            except (ConnectionError, OSError, asyncio.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    back = await asyncio.gather(*(reconnect(c) for c in keep[1]))
    for client in keep[0]:
        digest = await asyncio.wait_for(transfers[id(client)], 30)
        assert digest == expected_digest(TRANSFER_BYTES, seeds[id(client)])
    for client in keep[1]:
        # The victim's transfers ended with its connection, not at an idle timeout.
        transfer = transfers[id(client)]
        assert transfer.done() and transfer.exception() is not None
    assert max(back) <= RECONNECT_SECONDS, f"reconnected after {back} s"
    for client in keep[0] + keep[1]:
        await client.close()
