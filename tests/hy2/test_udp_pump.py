"""The server's UDP pump (fastpath/hy2/server/udp_pump.pyx) with a real client, server, counter table and
UDP target in one process: destinations that are names, IPv6 literals and IPv4 literals, more
destinations than the pump remembers, names that do not resolve, exact byte and packet counts,
and the sockets closing with the session."""
from __future__ import annotations

import asyncio
import os
import socket

import pytest

from fastpath.hy2.server import udp_pump
from fastpath.hy2.client.client import simple_client
from fastpath.shm import CounterTable
from fastpath.worker.event_loop import run
from tests.hy2.inprocess import password_server


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def _dual_stack_echo():
    """A UDP echo on every loopback address (IPv6 socket that also takes IPv4)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", 0))

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, t):
            self.t = t

        def datagram_received(self, d, a):
            self.t.sendto(d, a)

    transport, _ = await loop.create_datagram_endpoint(Echo, sock=sock)
    return transport, sock.getsockname()[1]


class Setup:
    """An echo target, a server counting into its own counter table, a client's UDP session."""

    async def start(self, tls_files, tmp_path, slots):
        self.writer = CounterTable.create(str(tmp_path / "counters"), 1, slots, 1).writer(0)
        self.echo, self.port = await _dual_stack_echo()
        self.server = await password_server(tls_files, counters=self.writer)
        self.client = simple_client(f"127.0.0.1:{self.server.address[1]}", "pw")
        self.udp = await self.client.udp_session()
        return self

    def server_session(self):
        [conn] = self.server.connections
        [session] = conn.session.udp.sessions.values()
        return session

    async def stop(self):
        await self.client.close()
        await self.server.close()
        self.echo.close()


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_names_literals_many_destinations_and_exact_counts(tls_files, tmp_path):
    async def main():
        t = await Setup().start(tls_files, tmp_path, 256)
        udp, port = t.udp, t.port
        sent = received = 0

        async def echo_via(target, payload, expect_from):
            nonlocal sent, received
            assert udp.send(target, payload)
            address, data = await asyncio.wait_for(udp.recv(), 5)
            assert data == payload and address in expect_from
            sent += len(payload)
            received += len(payload)

        await echo_via(f"127.0.0.1:{port}", os.urandom(100), {f"127.0.0.1:{port}"})
        await echo_via(f"[::1]:{port}", os.urandom(200), {f"[::1]:{port}"})
        # A name is resolved once, then remembered: its replies carry the address it resolved to.
        for _ in range(3):
            await echo_via(f"localhost:{port}", os.urandom(50),
                           {f"127.0.0.1:{port}", f"[::1]:{port}"})
        # A name that does not resolve, and an address that does not parse: dropped quietly.
        assert udp.send("no-such-host.invalid:53", b"lost")
        assert udp.send("not an address", b"lost")
        # More destinations than a session remembers (the table starts over), each sent to.
        for i in range(udp_pump.MAX_TARGETS + 10):
            assert udp.send(f"127.0.0.{2 + i // 200}:{10000 + i}", b"z")
            sent += 1
        await echo_via(f"127.0.0.1:{port}", os.urandom(1000), {f"127.0.0.1:{port}"})

        session = t.server_session()
        pump = session.handle
        assert isinstance(pump, udp_pump.UdpPump) and pump.slot >= 0
        record = t.writer.read(pump.slot)
        assert (record["tx"], record["rx"]) == (sent, received)
        assert record["rx_packets"] == 6 and record["tx_packets"] == 6 + udp_pump.MAX_TARGETS + 10

        await t.client.close()
        await asyncio.sleep(0.2)
        assert pump.closed and session.handle is None
        await t.stop()

    run(main())


def test_reply_larger_than_a_datagram_is_fragmented_and_counted_once(tls_files, tmp_path):
    async def main():
        t = await Setup().start(tls_files, tmp_path, 64)
        for size in (1, 1150, 1300, 5000):
            payload = os.urandom(size)
            assert t.udp.send(f"127.0.0.1:{t.port}", payload)
            assert (await asyncio.wait_for(t.udp.recv(), 5))[1] == payload
        record = t.writer.read(t.server_session().handle.slot)
        total = 1 + 1150 + 1300 + 5000
        assert (record["tx"], record["rx"], record["rx_packets"]) == (total, total, 4)
        await t.stop()

    run(main())


def test_datagram_from_client_takes_only_the_common_case(tls_files, tmp_path):
    """The C path for a datagram from the client (``udp_pump.datagram_from_client``) sends only
    a whole message to the destination its session sent to last, and counts it; everything
    else (other destinations, fragments, unknown sessions, hostile bytes) is left to the
    Python path, which the server then runs."""
    from hypothesis import given, settings, strategies as st

    from fastpath.hy2.wire.frames import encode_udp_message

    async def setup():
        t = await Setup().start(tls_files, tmp_path, 64)
        assert t.udp.send(f"127.0.0.1:{t.port}", b"first")
        assert (await asyncio.wait_for(t.udp.recv(), 5))[1] == b"first"
        return t

    loop = asyncio.new_event_loop()
    t = loop.run_until_complete(setup())
    session = t.server_session()
    pump = session.handle
    sessions = {session.session_id: session}
    last = f"127.0.0.1:{t.port}"
    sent = [len(b"first")]

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(
        st.binary(max_size=64),
        st.tuples(st.sampled_from([session.session_id, session.session_id + 1]),
                  st.integers(0, 2), st.integers(1, 3),
                  st.sampled_from([last, "127.0.0.1:9", f"[::1]:{t.port}"]),
                  st.binary(min_size=1, max_size=300))))
    def check(case):
        if isinstance(case, bytes):
            data, common = case, False
        else:
            sid, frag_id, frag_count, address, payload = case
            data = encode_udp_message(sid, 7 if frag_count > 1 else 0, min(frag_id, frag_count - 1),
                                      frag_count, address, payload)
            common = sid == session.session_id and frag_count == 1 and address == last
            if common:
                sent[0] += len(payload)
        before = session.last_active
        assert udp_pump.datagram_from_client(sessions, data, before + 1.0) is common
        assert session.last_active == (before + 1.0 if common else before)

    try:
        check()
        assert t.writer.read(pump.slot)["tx"] == sent[0]
        assert udp_pump.datagram_from_client({}, b"\x00" * 20, 0.0) is False
        assert udp_pump.datagram_from_client(sessions, bytearray(20), 0.0) is False
    finally:
        loop.run_until_complete(t.stop())
        loop.close()


def _gathered_runs(sizes: list[int]) -> int:
    """How many segmented sends the pump's rule makes of these message sizes, sent in one
    batch: a run is one size, at most one shorter datagram at its end, at most
    ``GSO_MAX_SEGMENTS`` (64) datagrams and 65 000 bytes; a run of one is a plain send."""
    runs, i = 0, 0
    while i < len(sizes):
        seg, used, count = sizes[i], sizes[i], 1
        i += 1
        while (i < len(sizes) and sizes[i] <= seg and count < 64 and used + sizes[i] <= 65000):
            used += sizes[i]
            count += 1
            i += 1
            if sizes[i - 1] < seg:
                break
        runs += count > 1
    return runs


class BatchTarget:
    """A plain UDP socket as the destination (no echo), and the client's session pointed at it
    so that ``datagram_from_client`` takes the compiled path for its messages."""

    def __init__(self, t):
        self.t = t
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.bind(("127.0.0.1", 0))
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.rx.settimeout(5)
        self.address = f"127.0.0.1:{self.rx.getsockname()[1]}"

    async def point(self):
        assert self.t.udp.send(self.address, b"hello")
        assert await asyncio.get_running_loop().run_in_executor(None, self.rx.recv, 65535) == b"hello"
        session = self.t.server_session()
        return session, {session.session_id: session}

    def send_batch(self, sessions, session_id, payloads):
        from fastpath.hy2.wire.frames import encode_udp_message
        messages = [encode_udp_message(session_id, 0, 0, 1, self.address, p) for p in payloads]
        udp_pump.begin_batch()
        try:
            took = [udp_pump.datagram_from_client(sessions, m, 0.0) for m in messages]
        finally:
            udp_pump.end_batch()
        return took

    def received(self, n):
        return [self.rx.recv(65535) for _ in range(n)]


def test_one_batch_of_messages_leaves_in_segmented_runs_with_every_boundary_kept(tls_files, tmp_path):
    """Messages of one batch to one destination leave as UDP_SEGMENT runs (``udp_pump``'s
    gathering): the target receives the same datagrams, in order, each with its own length,
    and the session's bytes and packets are counted exactly; with gathering off
    (``set_gso(False)``) the same messages leave one ``sendto`` each."""
    import random

    rng = random.Random(12)
    sizes = ([100] * 10 + [60] + [100] * 3 + [300, 300, 7] + [1] * 70 + [1200] * 60 + [2000] * 3
             + [rng.randint(1, 1400) for _ in range(40)] + [512] * 64 + [512])
    payloads = [os.urandom(n) for n in sizes]

    async def main():
        t = await Setup().start(tls_files, tmp_path, 64)
        target = BatchTarget(t)
        session, sessions = await target.point()
        pump = session.handle
        slot_before = t.writer.read(pump.slot)
        try:
            assert udp_pump.set_gso(True), "this kernel has no UDP_SEGMENT"
            runs_before = udp_pump.run_stats()
            assert all(target.send_batch(sessions, session.session_id, payloads))
            assert target.received(len(payloads)) == payloads
            gso_sends, gso_datagrams, fallback = (
                a - b for a, b in zip(udp_pump.run_stats(), runs_before))
            assert (gso_sends, fallback) == (_gathered_runs(sizes), 0)
            assert gso_datagrams > len(payloads) // 2
            record = t.writer.read(pump.slot)
            assert record["tx"] - slot_before["tx"] == sum(sizes)
            assert record["tx_packets"] - slot_before["tx_packets"] == len(sizes)

            assert udp_pump.set_gso(False) is False
            runs_before = udp_pump.run_stats()
            assert all(target.send_batch(sessions, session.session_id, payloads))
            assert target.received(len(payloads)) == payloads
            assert udp_pump.run_stats() == runs_before
            assert t.writer.read(pump.slot)["tx"] - record["tx"] == sum(sizes)
        finally:
            udp_pump.set_gso(True)
            target.rx.close()
            await t.stop()

    run(main())


def test_a_cap_reached_inside_a_run_lets_one_datagram_past_it_and_no_more(tls_files, tmp_path):
    """The user's budget counts what a run has gathered but not yet sent: with 1 050 bytes left,
    twenty 100-byte messages in one batch give the target eleven (the eleventh reaches the cap
    and goes whole, as a single ``sendto`` would), and the user is cut."""
    async def main():
        t = await Setup().start(tls_files, tmp_path, 64)
        target = BatchTarget(t)
        session, sessions = await target.point()
        pump = session.handle
        [conn] = t.server.connections
        used = t.writer.read(pump.slot)["tx"] + t.writer.read(pump.slot)["rx"]
        t.writer.set_budgets({conn.auth_id: used + 1050})
        try:
            payloads = [bytes([i]) * 100 for i in range(20)]
            target.send_batch(sessions, session.session_id, payloads)
            assert target.received(11) == payloads[:11]
            target.rx.settimeout(0.3)
            with pytest.raises(socket.timeout):
                target.rx.recv(65535)
            assert t.writer.read(pump.slot)["tx"] + t.writer.read(pump.slot)["rx"] == used + 1100
            await asyncio.sleep(0.3)
            assert conn.closed
        finally:
            target.rx.close()
            await t.stop()

    run(main())


def test_a_message_larger_than_a_run_goes_alone_inside_a_batch(tls_files, tmp_path):
    """A reassembled message can be larger than the run buffer (65 000 bytes): inside a batch it
    is sent on its own, whole, after what was gathered before it and before what follows."""
    async def main():
        t = await Setup().start(tls_files, tmp_path, 64)
        target = BatchTarget(t)
        session, _ = await target.point()
        pump = session.handle
        payloads = [os.urandom(100), os.urandom(100), os.urandom(65_400), os.urandom(100)]
        try:
            udp_pump.begin_batch()
            try:
                for p in payloads:
                    pump.send(target.address, p)
            finally:
                udp_pump.end_batch()
            assert target.received(len(payloads)) == payloads
            assert t.writer.read(pump.slot)["tx"] == len(b"hello") + sum(map(len, payloads))
        finally:
            target.rx.close()
            await t.stop()

    run(main())
