"""The lossy relay the loss tests run (tests/support/lossy_relay.py) does what it is told: drops
near the configured share, reorders what it holds back, repeats its drops for the same seed,
and forwards both ways untouched when told nothing."""
from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from tests.support.lossy_relay import LossyRelay

N = 3000


class Sink(threading.Thread):
    """A UDP server that records the sequence numbers it gets and echoes each datagram."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seqs: list[int] = []
        self.running = True
        self.start()

    def run(self):
        while self.running:
            try:
                data, addr = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            self.seqs.append(struct.unpack(">I", data[:4])[0])
            self.sock.sendto(data, addr)

    def close(self):
        self.running = False
        self.join(2)
        self.sock.close()


def send_numbered(port: int, n: int = N) -> list[int]:
    """Send ``n`` numbered datagrams through the relay, paced; the echoes' numbers."""
    got: list[int] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        for i in range(n):
            s.send(struct.pack(">I", i) + b"x" * 100)
            if i % 50 == 49:
                time.sleep(0.002)          # paced: loopback itself must not drop
            try:
                while True:
                    got.append(struct.unpack(">I", s.recv(2048)[:4])[0])
            except BlockingIOError:
                pass
        s.settimeout(0.5)
        try:
            while True:
                got.append(struct.unpack(">I", s.recv(2048)[:4])[0])
        except TimeoutError:
            pass
    return got


def late_ones(arrived: list[int]) -> int:
    """How many arrived after a datagram sent later than them."""
    late, top = 0, -1
    for x in arrived:
        if x < top:
            late += 1
        top = max(top, x)
    return late


def through_relay(**kw) -> tuple[list[int], list[int], dict]:
    sink = Sink()
    try:
        with LossyRelay(("127.0.0.1", sink.port), **kw) as relay:
            echoed = send_numbered(relay.port)
            time.sleep(0.1)
        return list(sink.seqs), echoed, relay.stats
    finally:
        sink.close()


def test_a_clean_relay_forwards_everything_in_order():
    arrived, echoed, stats = through_relay()
    assert arrived == list(range(N))
    assert echoed == list(range(N))
    assert stats["up"] == {"seen": N, "dropped": 0, "held": 0}
    assert stats["down"]["seen"] == N and stats["clients"] == 1


@pytest.mark.parametrize("loss", [0.01, 0.10])
def test_drops_near_the_share_and_reorders_what_it_holds(loss):
    arrived, echoed, stats = through_relay(loss=loss, reorder=0.05, reorder_ms=5, seed=7)
    dropped = N - len(arrived)
    assert dropped == stats["up"]["dropped"]
    assert 0.5 * loss * N <= dropped <= 1.5 * loss * N + 5
    assert len(set(arrived)) == len(arrived), "a datagram was duplicated"
    assert late_ones(arrived) >= 0.8 * stats["up"]["held"] > 0, (late_ones(arrived), stats)
    # The echoes cross the relay again: dropped and held back there too.
    assert len(echoed) == len(arrived) - stats["down"]["dropped"]


def test_the_same_seed_drops_the_same_datagrams():
    first, _, _ = through_relay(loss=0.05, seed=3)
    again, _, _ = through_relay(loss=0.05, seed=3)
    other, _, _ = through_relay(loss=0.05, seed=4)
    lost = lambda arrived: set(range(N)) - set(arrived)  # noqa: E731
    assert lost(first) == lost(again) and lost(first)
    assert lost(first) != lost(other)
