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
