"""A lossy UDP link for tests: a forwarder on loopback that drops, delays and reorders datagrams.

A QUIC client is pointed at the relay's port instead of the server's; the relay forwards each
datagram to the server (and the server's answers back) through one upstream socket per client
address.  Each direction draws from its own ``random.Random(seed)``, so a run is repeatable:

- ``loss``: the share of datagrams dropped;
- ``reorder``: the share held back ``reorder_ms`` while the ones behind it pass (so they arrive
  out of order);
- ``delay_ms``: a fixed one-way delay for every datagram (0: forwarded at once).

It runs in its own process (``python -m tests.support.lossy_relay``), never on the event loop or
under the GIL of either end: a relay that stalls with its host would add loss nobody configured.
On SIGTERM it prints what it did (per direction: seen, dropped, held back) as one JSON line,
which the tests read to check that the link really was lossy.

Written by hand: no library here does a seeded lossy UDP hop in userspace (``tc netem`` needs
root and a network namespace, which the tests do not have).
"""
from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

BUFFER = 8 << 20         # socket buffers: the relay should not add losses of its own
BATCH = 256              # datagrams read per wakeup and socket before timers run again


@dataclass
class Direction:
    """One way through the relay, with its own seeded draws and counters."""

    rng: random.Random
    loss: float
    reorder: float
    seen: int = 0
    dropped: int = 0
    held: int = 0

    def fate(self) -> int:
        """0: forward now, 1: hold back, -1: drop."""
        self.seen += 1
        r = self.rng.random()
        if r < self.loss:
            self.dropped += 1
            return -1
        if r < self.loss + self.reorder:
            self.held += 1
            return 1
        return 0

    def stats(self) -> dict:
        return {"seen": self.seen, "dropped": self.dropped, "held": self.held}


@dataclass
class Relay:
    upstream: tuple[str, int]
    loss: float
    reorder: float
    reorder_s: float
    delay_s: float
    seed: int
    listen: socket.socket = field(init=False)
    up: Direction = field(init=False)        # client -> server
    down: Direction = field(init=False)      # server -> client

    def __post_init__(self) -> None:
        self.listen = _udp_socket()
        self.listen.bind(("127.0.0.1", 0))
        self.up = Direction(random.Random(self.seed), self.loss, self.reorder)
        self.down = Direction(random.Random(self.seed + 1), self.loss, self.reorder)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listen, selectors.EVENT_READ, None)
        self.clients: dict[tuple, socket.socket] = {}
        self.pending: list[tuple[float, int, socket.socket, bytes, tuple | None]] = []
        self.seq = 0
        self.running = True

    @property
    def port(self) -> int:
        return self.listen.getsockname()[1]

    def _upstream_for(self, client: tuple) -> socket.socket:
        s = self.clients.get(client)
        if s is None:
            s = _udp_socket()
            s.connect(self.upstream)
            self.clients[client] = s
            self.sel.register(s, selectors.EVENT_READ, client)
        return s

    def _route(self, direction: Direction, out: socket.socket, data: bytes, to, now: float) -> None:
        fate = direction.fate()
        if fate < 0:
            return
        delay = self.delay_s + (self.reorder_s if fate else 0.0)
        if delay <= 0:
            _send(out, data, to)
            return
        self.seq += 1
        heapq.heappush(self.pending, (now + delay, self.seq, out, data, to))

    def _release(self, now: float) -> None:
        pending = self.pending
        while pending and pending[0][0] <= now:
            _, _, out, data, to = heapq.heappop(pending)
            _send(out, data, to)

    def run(self) -> None:
        while self.running:
            now = time.monotonic()
            self._release(now)
            timeout = max(0.0, self.pending[0][0] - now) if self.pending else 0.5
            for key, _ in self.sel.select(timeout):
                now = time.monotonic()
                sock, client = key.fileobj, key.data
                for _ in range(BATCH):
                    try:
                        data, addr = sock.recvfrom(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    except ConnectionRefusedError:      # the server is not (yet) there
                        break
                    if client is None:
                        self._route(self.up, self._upstream_for(addr), data, None, now)
                    else:
                        self._route(self.down, self.listen, data, client, now)

    def stats(self) -> dict:
        return {"up": self.up.stats(), "down": self.down.stats(), "clients": len(self.clients)}


def _udp_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    s.setblocking(False)
    return s


def _send(out: socket.socket, data: bytes, to) -> None:
    try:
        if to is None:
            out.send(data)
        else:
            out.sendto(data, to)
    except (BlockingIOError, ConnectionRefusedError):
        pass        # a full buffer or a gone peer: a loss the network would also have


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, help="host:port of the server")
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--reorder-ms", type=float, default=3.0)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    host, port = a.upstream.rsplit(":", 1)
    relay = Relay((host, int(port)), a.loss, a.reorder, a.reorder_ms / 1000, a.delay_ms / 1000,
                  a.seed)

    def stop(*_):
        relay.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(relay.port, flush=True)
    relay.run()
    print(json.dumps(relay.stats()), flush=True)


class LossyRelay:
    """The relay as a child process: ``with LossyRelay(("127.0.0.1", port), loss=0.05) as r:``
    points clients at ``r.port``; after the block, ``r.stats`` holds what it did."""

    def __init__(self, upstream: tuple[str, int], *, loss: float = 0.0, reorder: float = 0.0,
                 reorder_ms: float = 3.0, delay_ms: float = 0.0, seed: int = 1):
        self.argv = [sys.executable, "-m", "tests.support.lossy_relay",
                     "--upstream", f"{upstream[0]}:{upstream[1]}", "--loss", str(loss),
                     "--reorder", str(reorder), "--reorder-ms", str(reorder_ms),
                     "--delay-ms", str(delay_ms), "--seed", str(seed)]
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.stats: dict = {}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> "LossyRelay":
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p))
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            self.proc.wait(5)
            raise RuntimeError(f"lossy relay did not start: {line!r}")
        self.port = int(line)
        return self

    def stop(self) -> dict:
        if self.proc is None or self.proc.returncode is not None:
            return self.stats
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        lines = [line for line in (out or "").splitlines() if line.startswith("{")]
        self.stats = json.loads(lines[-1]) if lines else {}
        return self.stats

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    main()
