"""The batched UDP endpoint (``fastpath.hy2.quic.udp_batch``) on real loopback sockets: what goes
in comes out whole, in order, from the right address, through every path it has (sendmmsg with
and without GSO, recvmmsg with and without GRO, Salamander), and what must be dropped is.
"""
from __future__ import annotations

import asyncio
import os
import socket

import pytest

udp_batch = pytest.importorskip("fastpath.hy2.quic.udp_batch",
                                reason="udp_batch is built on Linux only")
from fastpath.hy2.wire.salamander import Salamander  # noqa: E402
from fastpath.hy2.quic.udp_endpoint import UdpEndpoint, make_endpoint, make_udp_socket  # noqa: E402

BatchEndpoint = udp_batch.BatchEndpoint
_probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
HAVE_GSO, HAVE_GRO = udp_batch.kernel_features(_probe)
_probe.close()
needs_gso = pytest.mark.skipif(not HAVE_GSO, reason="this kernel has no UDP_SEGMENT")
needs_gro = pytest.mark.skipif(not HAVE_GRO, reason="this kernel has no UDP_GRO")


class Collector:
    def __init__(self):
        self.got: list = []
        self.batches = 0

    def __call__(self, batch):
        self.batches += 1
        self.got.extend(batch)


def _sock(host="127.0.0.1"):
    return make_udp_socket(host, 0)


def _run_until(loop, pred, timeout=5.0):
    async def wait():
        deadline = loop.time() + timeout
        while not pred():
            if loop.time() > deadline:
                raise AssertionError("timed out waiting for datagrams")
            await asyncio.sleep(0.005)
    loop.run_until_complete(wait())


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _payloads(sizes):
    return [os.urandom(n) for n in sizes]


def test_batch_round_trip_many_datagrams_few_calls(loop):
    rx_c = Collector()
    rx = BatchEndpoint(_sock(), rx_c, gro=False)
    tx = BatchEndpoint(_sock(), Collector())
    rx.start(loop)
    try:
        sizes = [1 + (i * 37) % 1400 for i in range(200)]
        data = _payloads(sizes)
        dest = rx.local_address
        tx.send([(d, dest) for d in data])
        _run_until(loop, lambda: len(rx_c.got) >= len(data))
        assert [d for d, _ in rx_c.got] == data
        assert {a for _, a in rx_c.got} == {tx.local_address}
        # Read in batches, not one wakeup per datagram; sent in a handful of calls.
        assert rx.stats.recv_calls < len(data) // 4
        assert tx.stats.send_calls <= 4
        assert tx.dropped == 0
    finally:
        rx.close()
        tx.close()


@needs_gso
def test_gso_segments_arrive_as_separate_datagrams_of_the_right_sizes():
    tx = BatchEndpoint(_sock(), Collector(), gso=True)
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plain.bind(("127.0.0.1", 0))
    plain.settimeout(2)
    try:
        sizes = [1200] * 20 + [731] + [1200] * 3      # a run cut by the short one, then another
        data = _payloads(sizes)
        tx.send([(d, plain.getsockname()) for d in data])
        got = [plain.recv(65535) for _ in data]
        assert [len(g) for g in got] == sizes
        assert got == data
        assert tx.stats.gso_messages == 2
        assert tx.stats.send_calls == 1
    finally:
        tx.close()
        plain.close()


@needs_gso
@needs_gro
def test_gro_receive_cuts_coalesced_runs(loop):
    rx_c = Collector()
    rx = BatchEndpoint(_sock(), rx_c, gro=True)
    tx = BatchEndpoint(_sock(), Collector(), gso=True)
    rx.start(loop)
    try:
        assert rx.gro
        sizes = [1252] * 40 + [100] + [900] * 10
        data = _payloads(sizes)
        tx.send([(d, rx.local_address) for d in data])
        _run_until(loop, lambda: len(rx_c.got) >= len(data))
        assert [len(d) for d, _ in rx_c.got] == sizes
        assert [d for d, _ in rx_c.got] == data
        assert rx.stats.gro_runs >= 1            # loopback hands GSO sends over whole
    finally:
        rx.close()
        tx.close()


def test_fallback_without_gso_sends_one_message_per_datagram_in_one_call():
    tx = BatchEndpoint(_sock(), Collector(), gso=False)
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plain.bind(("127.0.0.1", 0))
    plain.settimeout(2)
    try:
        assert not tx.gso
        data = _payloads([1200] * 30)
        tx.send([(d, plain.getsockname()) for d in data])
        assert [plain.recv(65535) for _ in data] == data
        assert tx.stats.gso_messages == 0
        assert tx.stats.send_calls == 1
    finally:
        tx.close()
        plain.close()


@pytest.mark.parametrize("gso,gro", [(False, False), (True, True)])
def test_salamander_through_the_batch_path_equals_the_existing_codec(loop, gso, gro):
    if gso and not (HAVE_GSO and HAVE_GRO):
        pytest.skip("this kernel has no UDP_SEGMENT/UDP_GRO")
    obfs = Salamander(b"batch-obfs-password")
    data = _payloads([1200] * 25 + [333, 9, 1, 1400])
    # batch (obfuscating) -> the existing endpoint (deobfuscating with the Python-level codec)
    old_c, new_c = Collector(), Collector()
    old = UdpEndpoint(_sock(), old_c, obfs=obfs, gso=False)
    new = BatchEndpoint(_sock(), new_c, obfs=obfs, gso=gso, gro=gro)
    old.start(loop)
    new.start(loop)
    try:
        new.send([(d, old.local_address) for d in data])
        _run_until(loop, lambda: len(old_c.got) >= len(data))
        assert [d for d, _ in old_c.got] == data
        # the existing endpoint (obfuscating) -> batch (deobfuscating in C)
        old.send([(d, new.local_address) for d in data])
        _run_until(loop, lambda: len(new_c.got) >= len(data))
        assert [d for d, _ in new_c.got] == data
        assert new_c.got[0][1] == old.local_address
        # on the wire: salt + payload XOR key, as Salamander.deobfuscate reads it
        plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        plain.bind(("127.0.0.1", 0))
        plain.settimeout(2)
        new.send([(d, plain.getsockname()) for d in data[:3]])
        wire = [plain.recv(65535) for _ in range(3)]
        plain.close()
        assert [len(w) for w in wire] == [len(d) + 8 for d in data[:3]]
        assert [obfs.deobfuscate(w) for w in wire] == data[:3]
        assert len({w[:8] for w in wire}) == 3         # a fresh salt per packet
    finally:
        old.close()
        new.close()


def test_truncated_oversized_and_short_obfuscated_datagrams_are_dropped(loop):
    rx_c = Collector()
    rx = BatchEndpoint(_sock(), rx_c, gro=False)
    obfs = Salamander(b"batch-obfs-password")
    orx_c = Collector()
    orx = BatchEndpoint(_sock(), orx_c, obfs=obfs, gro=False)
    rx.start(loop)
    orx.start(loop)
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        plain.sendto(os.urandom(5000), rx.local_address)   # larger than a 4 KiB slot
        plain.sendto(b"", rx.local_address)                 # empty: carries no QUIC packet
        plain.sendto(b"after", rx.local_address)
        _run_until(loop, lambda: len(rx_c.got) >= 1)
        assert [d for d, _ in rx_c.got] == [b"after"]
        assert rx.stats.truncated == 1
        plain.sendto(b"12345678", orx.local_address)        # only a salt: nothing to carry
        plain.sendto(obfs.obfuscate(b"kept"), orx.local_address)
        _run_until(loop, lambda: len(orx_c.got) >= 1)
        assert [d for d, _ in orx_c.got] == [b"kept"]
        assert orx.stats.short_obfs == 1
    finally:
        plain.close()
        rx.close()
        orx.close()


def test_dual_stack_socket_addresses_match_python_and_reach_ipv4_peers(loop):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    rx_c = Collector()
    try:
        rx = BatchEndpoint(make_udp_socket("::", 0), rx_c, gro=False)
    except OSError:
        pytest.skip("no dual-stack socket here")
    rx.start(loop)
    v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v4.bind(("127.0.0.1", 0))
    v4.settimeout(2)
    try:
        port = rx.local_address[1]
        v4.sendto(b"hello", ("127.0.0.1", port))
        _run_until(loop, lambda: rx_c.got)
        data, addr = rx_c.got[0]
        assert data == b"hello"
        assert addr == ("::ffff:127.0.0.1", v4.getsockname()[1], 0, 0)   # as recvfrom says
        rx.send([(b"back-mapped", addr), (b"back-v4", ("127.0.0.1", v4.getsockname()[1]))])
        assert v4.recv(100) == b"back-mapped"
        assert v4.recv(100) == b"back-v4"
    finally:
        v4.close()
        rx.close()


def test_an_address_c_cannot_parse_goes_through_python_sendto():
    tx = BatchEndpoint(_sock(), Collector())
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plain.bind(("127.0.0.1", 0))
    plain.settimeout(2)
    try:
        tx.send([(b"by-name", ("localhost", plain.getsockname()[1]))])
        assert plain.recv(100) == b"by-name"
    finally:
        tx.close()
        plain.close()


def test_make_endpoint_switch(monkeypatch):
    s = _sock()
    try:
        monkeypatch.delenv("FASTPATH_UDP_BATCH", raising=False)
        assert isinstance(make_endpoint(s, Collector()), BatchEndpoint)
        assert isinstance(make_endpoint(s, Collector(), obfs=Salamander(b"pw-pw")), BatchEndpoint)
        assert type(make_endpoint(s, Collector(), obfs=object())) is UdpEndpoint
        monkeypatch.setenv("FASTPATH_UDP_BATCH", "0")
        assert type(make_endpoint(s, Collector())) is UdpEndpoint
        monkeypatch.setenv("FASTPATH_UDP_BATCH", "1")
        monkeypatch.setenv("FASTPATH_HY2_GSO", "0")
        assert make_endpoint(s, Collector()).gso is False
        monkeypatch.setenv("FASTPATH_UDP_GRO", "0")
        assert make_endpoint(s, Collector()).gro is False
    finally:
        s.close()


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_runs = st.lists(st.tuples(st.integers(1, 1452), st.integers(1, 70)), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=_runs, obfs=st.booleans(), gso=st.booleans(), gro=st.booleans(),
       two_peers=st.booleans())
def test_any_mix_of_runs_arrives_whole_and_in_order(loop, runs, obfs, gso, gro, two_peers):
    """Runs of equal sizes (longer than one GSO message can hold, a shorter datagram inside),
    with or without Salamander and the offloads, to one or two peers: every datagram arrives
    once, unchanged, in order per peer."""
    sal = Salamander(b"hypothesis-pw") if obfs else None
    cols = [Collector(), Collector()]
    rxs = [BatchEndpoint(_sock(), cols[k], obfs=sal, gro=gro) for k in range(2)]
    tx = BatchEndpoint(_sock(), Collector(), obfs=sal, gso=gso)
    for rx in rxs:
        rx.start(loop)
    try:
        sizes = [size for size, count in runs for _ in range(count)]
        data = [os.urandom(n) for n in sizes]
        dests = [rxs[(i // 7) % 2 if two_peers else 0].local_address for i in range(len(data))]
        tx.send(list(zip(data, dests)))
        expect = [[d for d, a in zip(data, dests) if a == rx.local_address] for rx in rxs]
        _run_until(loop, lambda: all(len(c.got) >= len(e) for c, e in zip(cols, expect)))
        for c, e in zip(cols, expect):
            assert [d for d, _ in c.got] == e
        assert tx.dropped == 0
    finally:
        for rx in rxs:
            rx.close()
        tx.close()
