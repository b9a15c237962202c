"""The server's UDP pump (fastpath/hy2/udp_pump.pyx) with a real client, server, counter table and
UDP target in one process: destinations that are names, IPv6 literals and IPv4 literals, more
destinations than the pump remembers, names that do not resolve, exact byte and packet counts,
and the sockets closing with the session."""
from __future__ import annotations

import asyncio
import os
import socket

import pytest

from fastpath.hy2 import udp_pump
from fastpath.hy2.auth_backends import NodeAuthenticator, PasswordAuth
from fastpath.hy2.client import simple_client
from fastpath.hy2.config import parse_server_config
from fastpath.hy2.masquerade import NotFoundMasquerade
from fastpath.hy2.server import Hy2Server
from fastpath.shm import CounterTable
from fastpath.worker.event_loop import run


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


async def _server(tls_files, writer):
    settings = parse_server_config({"listen": "127.0.0.1:0"})
    return await Hy2Server(settings, cert=tls_files[0], key=tls_files[1],
                           authenticator=NodeAuthenticator(None, PasswordAuth("pw")),
                           masquerade=NotFoundMasquerade(), counters=writer).start()


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_names_literals_many_destinations_and_exact_counts(tls_files, tmp_path):
    table = CounterTable.create(str(tmp_path / "counters"), 1, 256, 1)
    writer = table.writer(0)

    async def main():
        echo, port = await _dual_stack_echo()
        server = await _server(tls_files, writer)
        client = simple_client(f"127.0.0.1:{server.address[1]}", "pw")
        udp = await client.udp_session()
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

        [conn] = server.connections
        [session] = conn.session.udp.sessions.values()
        pump = session.handle
        assert isinstance(pump, udp_pump.UdpPump) and pump.slot >= 0
        record = writer.read(pump.slot)
        assert (record["tx"], record["rx"]) == (sent, received)
        assert record["rx_packets"] == 6 and record["tx_packets"] == 6 + udp_pump.MAX_TARGETS + 10

        await client.close()
        await asyncio.sleep(0.2)
        assert pump.closed and session.handle is None
        await server.close()
        echo.close()

    run(main())


def test_reply_larger_than_a_datagram_is_fragmented_and_counted_once(tls_files, tmp_path):
    table = CounterTable.create(str(tmp_path / "counters"), 1, 64, 1)
    writer = table.writer(0)

    async def main():
        echo, port = await _dual_stack_echo()
        server = await _server(tls_files, writer)
        client = simple_client(f"127.0.0.1:{server.address[1]}", "pw")
        udp = await client.udp_session()
        for size in (1, 1150, 1300, 5000):
            payload = os.urandom(size)
            assert udp.send(f"127.0.0.1:{port}", payload)
            assert (await asyncio.wait_for(udp.recv(), 5))[1] == payload
        [conn] = server.connections
        [session] = conn.session.udp.sessions.values()
        record = writer.read(session.handle.slot)
        total = 1 + 1150 + 1300 + 5000
        assert (record["tx"], record["rx"], record["rx_packets"]) == (total, total, 4)
        await client.close()
        await server.close()
        echo.close()

    run(main())
