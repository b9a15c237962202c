"""Short streams per second through ``fastpath serve``, driven so the server is the limit: each
one a local TCP connection to the official client's TCP forward (so one new Hysteria 2 stream on
its one QUIC connection, a TCP dial by the node to an echo target), 32 bytes echoed, closed.

The official client is compiled Go and the driver here keeps ``CONCURRENCY`` of them in flight
from one selector loop, so the figure is the node's worker; beside the rate, the worker's CPU µs
per stream.

    python bench/hy2_short_streams.py profile [SECONDS] [ENV=VALUE ...]   # py-spy --native
    python bench/hy2_short_streams.py rate [ENV=VALUE ...]
"""
from __future__ import annotations

import errno
import os
import selectors
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import hy2_peers as peers  # noqa: E402
from hy2_udp_relay import Echo, ForwardSetup, cli  # noqa: E402

CONCURRENCY = int(os.environ.get("HY2_SHORT_CONCURRENCY", "32"))
SECONDS = float(os.environ.get("HY2_SHORT_SECONDS", "3"))
PAYLOAD = b"s" * 32


class ShortStreamSetup(ForwardSetup):
    """A node (with ``env``) and the official client forwarding a TCP port to an echo process."""

    label = "short-client"

    def wait_ready(self) -> None:
        peers.wait_tcp(self.port, self.client.proc, "official client")
        for _ in range(20):
            if streams(self.port, 0.2)[0]:
                break
            time.sleep(0.2)

    def measure(self, seconds: float = SECONDS) -> dict:
        (done, failed, elapsed), cpu = self.timed(lambda: streams(self.port, seconds))
        return {"streams_per_s": done / elapsed, "streams": done, "failed": failed,
                "cpu_us_per_stream": cpu / done * 1e6 if done else float("nan")}


def streams(port: int, seconds: float, concurrency: int = CONCURRENCY) -> tuple[int, int, float]:
    """Short echo streams through 127.0.0.1:port, ``concurrency`` at a time, for ``seconds``:
    (completed, failed, elapsed)."""
    sel = selectors.DefaultSelector()
    done = failed = 0
    start = time.perf_counter()
    end = start + seconds

    def open_one():
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            return False
        sel.register(s, selectors.EVENT_WRITE, [b""])
        return True

    for _ in range(concurrency):
        open_one()
    while sel.get_map():
        for key, ev in sel.select(1.0):
            s, state = key.fileobj, key.data
            try:
                if ev & selectors.EVENT_WRITE and not state[0]:
                    s.send(PAYLOAD)
                    state[0] = b"sent"
                    sel.modify(s, selectors.EVENT_READ, state)
                    continue
                data = s.recv(64)
            except OSError:
                data = None
            if data:
                state.append(data)
                if sum(len(x) for x in state[1:]) < len(PAYLOAD):
                    continue
                done += 1
            else:
                failed += 1
            sel.unregister(s)
            s.close()
            if time.perf_counter() < end:
                open_one()
        if time.perf_counter() > end + 10:
            break
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    return done, failed, time.perf_counter() - start


def main(argv: list[str]) -> None:
    cli(argv, ShortStreamSetup, lambda echo: echo.tcp, str, 60)


if __name__ == "__main__":
    main(sys.argv[1:])
