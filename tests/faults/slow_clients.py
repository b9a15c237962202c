"""Clients that trickle a request head: many connections on one event loop, each sending a
header line every ``interval`` seconds and never the blank line that ends the head.

``SlowClients.run`` keeps them going for ``duration`` seconds while the caller probes the
server, and reports how many the server closed and when (seconds after their start).
"""
from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
from dataclasses import dataclass, field


@dataclass
class TrickleReport:
    opened: int = 0
    refused: int = 0
    closed_by_server: list[float] = field(default_factory=list)   # seconds after connecting

    @property
    def still_open(self) -> int:
        return self.opened - len(self.closed_by_server)


async def _one(host: str, port: int, path: str, interval: float, until: float,
               report: TrickleReport, tls: ssl_module.SSLContext | None, started: asyncio.Event,
               n_wanted: int) -> None:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls, server_hostname="" if tls else None), 10)
    except (OSError, asyncio.TimeoutError):
        report.refused += 1
        return
    report.opened += 1
    if report.opened + report.refused >= n_wanted:
        started.set()
    t0 = time.monotonic()
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
        n = 0
        while time.monotonic() < until:
            # Poll for the server's close while waiting for the next line.
            try:
                data = await asyncio.wait_for(reader.read(4096), interval)
            except asyncio.TimeoutError:
                data = None
            if data == b"":
                report.closed_by_server.append(time.monotonic() - t0)
                return
            n += 1
            writer.write(f"X-Trickle-{n}: {'a' * 8}\r\n".encode())
            await writer.drain()
    except (ConnectionError, OSError):
        report.closed_by_server.append(time.monotonic() - t0)
    finally:
        writer.close()


class SlowClients:
    def __init__(self, port: int, count: int = 300, *, host: str = "127.0.0.1",
                 path: str = "/api/v1/health", interval: float = 0.5, tls: bool = False):
        self.host, self.port, self.count, self.path, self.interval = host, port, count, path, interval
        self.tls = None
        if tls:
            self.tls = ssl_module.create_default_context()
            self.tls.check_hostname = False
            self.tls.verify_mode = ssl_module.CERT_NONE

    async def run(self, duration: float, probe) -> tuple[TrickleReport, list]:
        """Trickle for ``duration`` s; once every connection is open, call ``probe()`` (a
        blocking callable, run in a thread) repeatedly until the end; returns the report and
        the probe results."""
        report = TrickleReport()
        started = asyncio.Event()
        until = time.monotonic() + duration
        tasks = []
        for _ in range(self.count):
            tasks.append(asyncio.ensure_future(_one(self.host, self.port, self.path, self.interval,
                                                    until, report, self.tls, started, self.count)))
            await asyncio.sleep(0)
        await asyncio.wait_for(started.wait(), 20)
        await asyncio.sleep(self.interval * 2)       # every connection has sent a line or two
        results = []
        while time.monotonic() < until - 0.5:
            results.append(await asyncio.to_thread(probe))
            await asyncio.sleep(0.3)
        await asyncio.gather(*tasks)
        return report, results
