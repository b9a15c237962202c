"""Flow control both ways through a real ``fastpath serve``: a reader that never reads stalls its
own stream only, other streams on the same QUIC connection keep moving, and the server's memory
stays bounded.

One ``fastpath client`` process (one QUIC connection) forwards three local ports:

- to an endless source: the local side never reads, so the client stops granting credit, the
  node must stop reading the source (the bytes the source got rid of plateau);
- to a target that never reads: the local side writes as fast as it can, the node must stop
  granting credit once its socket to the target is full (the bytes accepted locally plateau);
- to an echo target: 16 MiB through each of three streams with SHA-256 checked, while the
  two stalled streams sit there.

The node's worker RSS is sampled before, while stalled, and after the echoes.
"""
from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest

from tests.hy2.conftest import default_secret
from tests.hy2.lossy_peers import FastpathClient, wait_listening
from tests.hy2.singbox import echo_sha256
from tests.hy2.targets import TargetThread, echo_handler
from tests.support.node import NodeProcess, free_tcp_port

pytestmark = pytest.mark.integration

# What may sit between a stalled end and its peer: the 8 MiB stream window, the node's bounded
# send buffer and the kernel's loopback socket buffers on each hop.  Without flow control the
# source would push ~30 MB/s for the whole test, far past this.
STALLED_BYTES_LIMIT = 64 << 20
RSS_GROWTH_LIMIT = 64 << 20
PLATEAU_SLACK = 1 << 20          # what a stalled stream may still move in the plateau window
ECHO = 16 << 20


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker_pid(node) -> int:
    return next(c["pid"] for c in node.get("/api/v1/node").json()["children"] if c["shard"] == 0)


class Stalls:
    """The endless source and the target that never reads, with what each got rid of."""

    def __init__(self, targets: TargetThread):
        self.sourced = 0
        self.sinks: list[asyncio.StreamWriter] = []
        self.endless = targets.tcp(self._endless)
        self.hole = targets.tcp(self._hole)

    async def _endless(self, reader, writer):
        chunk = os.urandom(256 << 10)
        try:
            while True:
                writer.write(chunk)
                await writer.drain()
                self.sourced += len(chunk)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _hole(self, reader, writer):
        self.sinks.append(writer)          # held open, never read
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()


class Pusher(threading.Thread):
    """Writes to a socket as fast as the kernel takes it, counting, until stopped."""

    def __init__(self, sock: socket.socket):
        super().__init__(daemon=True)
        self.sock, self.pushed, self.stop = sock, 0, threading.Event()

    def run(self):
        chunk = os.urandom(256 << 10)
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                self.pushed += self.sock.send(chunk)
            except TimeoutError:
                continue
            except OSError:
                return


def plateau(read, settle: float = 3.0, window: float = 2.0) -> tuple[int, int]:
    """Wait ``settle`` s for buffers to fill, then (value, growth over ``window`` s)."""
    time.sleep(settle)
    first = read()
    time.sleep(window)
    return read(), read() - first


@pytest.mark.timeout(180)
def test_a_reader_that_never_reads_stalls_its_own_stream_only(tmp_path):
    targets = TargetThread()
    stalls = Stalls(targets)
    echo = targets.tcp(echo_handler)
    ports = {"endless": free_tcp_port(), "hole": free_tcp_port(), "echo": free_tcp_port()}
    try:
        (tmp_path / "node").mkdir()
        with NodeProcess(tmp_path / "node", {}) as node:
            pid = worker_pid(node)
            config_forwards = {ports["endless"]: stalls.endless, ports["hole"]: stalls.hole,
                               ports["echo"]: echo}
            client = FastpathClient(tmp_path, {
                "server": node.config["listen"], "auth": default_secret(node.data_dir),
                "tls": {"insecure": True},
                "tcpForwarding": [{"listen": f"127.0.0.1:{local}", "remote": f"127.0.0.1:{target}"}
                                  for local, target in config_forwards.items()]})
            with client:
                for port in ports.values():
                    wait_listening(client, port)
                with socket.create_connection(("127.0.0.1", ports["echo"]), 10) as s:
                    s.settimeout(10)
                    sent, got = echo_sha256(s, 1 << 20)       # connected, warmed up
                    assert sent == got
                rss_before = rss(pid)

                never_read = socket.create_connection(("127.0.0.1", ports["endless"]), 10)
                never_read.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
                to_hole = socket.create_connection(("127.0.0.1", ports["hole"]), 10)
                pusher = Pusher(to_hole)
                pusher.start()
                try:
                    sourced, sourced_growth = plateau(lambda: stalls.sourced)
                    pushed, pushed_growth = plateau(lambda: pusher.pushed, settle=0)
                    rss_stalled = rss(pid)

                    # Other streams on the same connection keep moving, both ways at once.
                    t0 = time.monotonic()
                    for _ in range(3):
                        with socket.create_connection(("127.0.0.1", ports["echo"]), 10) as s:
                            s.settimeout(30)
                            sent, got = echo_sha256(s, ECHO)
                            assert sent == got, "an echo stream's bytes differ"
                    echo_s = time.monotonic() - t0

                    # And the stalled ones are still stalled afterwards.
                    sourced_after, pushed_after = stalls.sourced, pusher.pushed
                    rss_after = rss(pid)
                    client.alive()
                finally:
                    pusher.stop.set()
                    pusher.join(5)
                    never_read.close()
                    to_hole.close()
    finally:
        targets.close()

    print(f"\nsource stalled at {sourced / 2**20:.1f} MiB (+{sourced_growth / 2**20:.2f} in 2 s), "
          f"push stalled at {pushed / 2**20:.1f} MiB (+{pushed_growth / 2**20:.2f} in 2 s), "
          f"3x{ECHO >> 20} MiB echo in {echo_s:.1f} s, worker RSS {rss_before / 2**20:.0f} -> "
          f"{rss_stalled / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB")
    assert sourced > 0 and pushed > 0, "nothing moved at all on the stalled streams"
    assert sourced < STALLED_BYTES_LIMIT, f"the node kept reading a source nobody reads: {sourced}"
    assert pushed < STALLED_BYTES_LIMIT, f"the node kept granting credit to a full target: {pushed}"
    assert sourced_growth < PLATEAU_SLACK and pushed_growth < PLATEAU_SLACK
    assert sourced_after - sourced < PLATEAU_SLACK + (1 << 20)
    assert pushed_after - pushed < PLATEAU_SLACK + (1 << 20)
    assert rss_stalled - rss_before < RSS_GROWTH_LIMIT
    assert rss_after - rss_before < RSS_GROWTH_LIMIT
