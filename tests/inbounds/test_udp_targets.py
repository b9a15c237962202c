"""The compiled target side of the inbounds' UDP (``udp_targets.UdpTargets``) on real loopback
sockets: a queue leaves in one ``sendmmsg``, a burst of replies comes in one ``recvmmsg``,
every datagram is counted on the session's slot (one packet each), the user's cap stops both
ways at the first datagram that would cross it, and what it cannot send is said, not hidden."""
from __future__ import annotations

import os
import socket
import time

import pytest

import fastpath.shm as shm
from fastpath.inbounds.udp_targets import NEEDS_RESOLVING, OVER_BUDGET, UdpTargets


@pytest.fixture
def writer():
    path = f"/dev/shm/fastpath-test-udp-{os.getpid()}-{time.monotonic_ns()}"
    table = shm.CounterTable.create(path, 1, 64, 1)
    try:
        yield table.writer(0)
    finally:
        os.unlink(path)


@pytest.fixture
def sockets():
    """(the session's socket toward targets, a target socket that answers nothing by itself)."""
    ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ours.bind(("127.0.0.1", 0))
    ours.setblocking(False)
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target.settimeout(2)
    yield ours, target
    ours.close()
    target.close()


def session(writer, user="alice"):
    return writer.open(shm.KIND_UDP_SESSION, user, user_slot=writer.user_slot(user))


def wait_readable(sock) -> None:
    import select
    assert select.select([sock], [], [], 2)[0], "nothing came"


def test_a_queue_leaves_in_one_sendmmsg_and_a_burst_comes_back_in_one_recvmmsg(writer, sockets):
    ours, target = sockets
    slot = session(writer)
    targets = UdpTargets(writer, slot)
    address = "127.0.0.1:%d" % target.getsockname()[1]
    assert targets.queue(b"x", address) == socket.AF_INET        # no socket of that family yet
    targets.attach(socket.AF_INET, ours.fileno())
    payloads = [os.urandom(1200) for _ in range(40)]
    for p in payloads:
        assert targets.queue(p, address) == 0
    assert targets.pending == 40
    assert targets.flush() == 40 * 1200
    assert (targets.send_calls, targets.sent, targets.pending) == (1, 40, 0)
    got = [target.recvfrom(2048) for _ in payloads]
    assert [g[0] for g in got] == payloads
    for data, _ in got:
        target.sendto(data[::-1], ours.getsockname())
    wait_readable(ours)
    time.sleep(0.05)
    batch = targets.recv(ours.fileno())
    assert targets.recv_calls == 1
    assert batch == [(address, p[::-1]) for p in payloads]
    rec = writer.read(slot)
    assert (rec["tx"], rec["rx"], rec["tx_packets"], rec["rx_packets"]) == (48000, 48000, 40, 40)
    assert targets.recv(ours.fileno()) == []                      # nothing waiting: no error


def test_names_are_left_to_the_caller_and_v6_asks_for_its_own_socket(writer):
    targets = UdpTargets(writer, session(writer))
    for address in ("example.com:53", "no-port", "1.2.3.4:99999", ":53"):
        assert targets.queue(b"x", address) == NEEDS_RESOLVING, address
    assert targets.queue(b"x", "[::1]:53") == socket.AF_INET6
    assert targets.pending == 0


def test_the_users_cap_stops_each_way_at_the_first_datagram_that_crosses_it(writer, sockets):
    ours, target = sockets
    slot = session(writer)
    writer.set_budgets({"alice": 2500})
    targets = UdpTargets(writer, slot)
    targets.attach(socket.AF_INET, ours.fileno())
    address = "127.0.0.1:%d" % target.getsockname()[1]
    assert targets.queue(b"a" * 1000, address) == 0
    assert targets.queue(b"b" * 1000, address) == 0
    assert targets.queue(b"c" * 1000, address) == OVER_BUDGET     # 3000 > 2500: not queued
    assert targets.over_budget and targets.flush() == 2000
    target.sendto(b"r" * 400, ours.getsockname())
    target.sendto(b"s" * 400, ours.getsockname())
    wait_readable(ours)
    time.sleep(0.05)
    assert targets.recv(ours.fileno()) == [(address, b"r" * 400)]   # 2400 fits, 2800 does not
    assert writer.budget(slot) == 100


def test_an_uncounted_session_sends_and_a_full_kernel_drops(sockets):
    ours, target = sockets
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    targets = UdpTargets()
    targets.attach(socket.AF_INET, ours.fileno())
    address = "127.0.0.1:%d" % target.getsockname()[1]
    sent = 0
    for _ in range(20):                  # far more than a 4 KiB send buffer holds at once
        for _ in range(64):
            assert targets.queue(b"z" * 8000, address) == 0
        sent += targets.flush()
    assert sent > 0 and targets.sent + targets.dropped == 20 * 64
