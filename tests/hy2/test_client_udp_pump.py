"""The client's local UDP relay (fastpath/hy2/client/client_udp_pump.pyx) with a real server, client and
UDP echo in one process: a UDP forward with several sources, idle expiry and reconnection;
SOCKS5 UDP ASSOCIATE with IPv4, IPv6 and name destinations, fragments both ways and malformed
headers; and ``deliver_datagram`` fuzzed with hostile datagrams."""
from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fastpath.hy2.client.client import simple_client
from fastpath.hy2.client.client_udp_pump import LocalUdpRelay, UdpPeer, deliver_datagram
from fastpath.hy2.client.forwarding import UdpForward
from fastpath.hy2.wire.frames import encode_udp_message
from fastpath.hy2.client.socks5 import Socks5Server, encode_address
from fastpath.hy2.quic.udp_endpoint import make_udp_socket
from fastpath.worker.event_loop import run
from tests.hy2.inprocess import password_server
from tests.hy2.test_udp_pump import _dual_stack_echo, _has_ipv6_loopback


class Local:
    """A plain UDP socket on the event loop, as a local application would use."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    async def ask(self, data: bytes, dest, timeout: float = 3.0) -> bytes:
        loop = asyncio.get_running_loop()
        self.sock.sendto(data, dest)
        return await asyncio.wait_for(loop.sock_recv(self.sock, 65535), timeout)

    async def silent(self, data: bytes, dest, wait: float = 0.3) -> bool:
        """True if nothing comes back."""
        loop = asyncio.get_running_loop()
        self.sock.sendto(data, dest)
        try:
            await asyncio.wait_for(loop.sock_recv(self.sock, 65535), wait)
        except asyncio.TimeoutError:
            return True
        return False


async def _setup(tls_files):
    echo, port = await _dual_stack_echo()
    server = await password_server(tls_files)
    client = simple_client(f"127.0.0.1:{server.address[1]}", "pw")
    await client.connect()
    return echo, port, server, client


def _server_udp_sessions(server) -> int:
    return sum(len(c.session.udp.sessions) for c in server.connections)


def test_forward_sources_fragments_expiry_and_reconnect(tls_files):
    async def main():
        echo, port, server, client = await _setup(tls_files)
        fwd = await UdpForward(client, ("127.0.0.1", 0), f"127.0.0.1:{port}", timeout=0.6).start()
        dest = ("127.0.0.1", fwd.address[1])
        a, b = Local(), Local()
        try:
            for i in range(20):
                assert await a.ask(b"a%d" % i, dest) == b"a%d" % i
                assert await b.ask(b"b%d" % i, dest) == b"b%d" % i
            big = bytes(range(256)) * 12          # 3072 bytes: fragments both ways
            assert await a.ask(big, dest) == big
            assert len(fwd.relay.peers) == 2      # one session per source
            sids = {p.session_id for p in fwd.relay.peers.values()}
            assert len(sids) == 2 and sids <= set(client.conn.udp_sessions)
            # Idle past the timeout: both peers go (the sweep runs every timeout / 2).
            await asyncio.sleep(1.6)
            assert not fwd.relay.peers
            assert not sids & set(client.conn.udp_sessions)
            assert await a.ask(b"again", dest) == b"again"
            # The server drops the connection: the next packet reconnects and opens a session.
            server.kick(list(server.by_user))
            await asyncio.sleep(0.3)
            assert not fwd.relay.peers
            assert await a.ask(b"after kick", dest, timeout=8) == b"after kick"
            assert client.connected
        finally:
            await fwd.close()
            await client.close()
            await server.close()
            echo.close()
    run(main())


async def _associate(port: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x05\x01\x00")
    assert await reader.readexactly(2) == b"\x05\x00"
    writer.write(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
    rep = await reader.readexactly(10)
    assert rep[:2] == b"\x05\x00", rep
    return writer, (socket.inet_ntoa(rep[4:8]), struct.unpack(">H", rep[8:10])[0])


def test_socks5_destinations_fragments_and_malformed_headers(tls_files):
    async def main():
        echo, port, server, client = await _setup(tls_files)
        socks = await Socks5Server(client, ("127.0.0.1", 0)).start()
        ctl, relay = await _associate(socks.address[1])
        local = Local()
        v4 = b"\x00\x00\x00" + encode_address(f"127.0.0.1:{port}")
        name = b"\x00\x00\x00" + encode_address(f"localhost:{port}")
        try:
            for i in range(10):
                data = await local.ask(v4 + b"p%d" % i, relay)
                assert data == v4 + b"p%d" % i         # the reply names its source
            big = bytes(range(256)) * 12
            assert await local.ask(v4 + big, relay) == v4 + big
            data = await local.ask(name + b"by name", relay)
            assert data.endswith(b"by name") and data[3] in (1, 4)   # answered from an IP
            if _has_ipv6_loopback():
                v6 = b"\x00\x00\x00" + encode_address(f"[::1]:{port}")
                assert await local.ask(v6 + b"six", relay) == v6 + b"six"
            # Dropped, and the relay goes on: a fragment, unknown address types, truncated
            # headers, a header without payload, an empty name, a name that is not ASCII.
            for bad in (b"\x00\x00\x01" + v4[3:] + b"x", b"\x00\x00\x00\x09" + v4[4:] + b"x",
                        v4[:6], v4, b"\x00\x00\x00\x03\x00\x00\x35x", b"\x00\x00",
                        b"\x00\x00\x00\x03\x04\xff\xfe\xfd\xfc\x00\x35x"):
                assert await local.silent(bad, relay, 0.2)
            assert await local.ask(v4 + b"still here", relay) == v4 + b"still here"
            # The connection drops: the association's session is reopened on the next packet.
            server.kick(list(server.by_user))
            await asyncio.sleep(0.3)
            assert await local.ask(v4 + b"after kick", relay, timeout=8) == v4 + b"after kick"
        finally:
            ctl.close()
            await socks.close()
            await client.close()
            await server.close()
            echo.close()
    run(main())


@pytest.fixture(scope="module")
def delivering(tls_files):
    """A real client connection with one ``UdpPeer`` whose replies go to ``receiver``."""
    loop = asyncio.new_event_loop()
    echo, port, server, client = loop.run_until_complete(_setup(tls_files))
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    out = make_udp_socket("127.0.0.1", 0)
    relay = LocalUdpRelay(loop, out, lambda key, packet: None, remote="127.0.0.1:9")
    sa = struct.pack("=H", socket.AF_INET) + struct.pack(">H", receiver.getsockname()[1]) \
        + socket.inet_aton("127.0.0.1") + bytes(8)
    peer = UdpPeer(relay, client.conn, 78, sa)
    relay.add_peer(peer)
    sessions = {78: peer}
    yield sessions, receiver
    relay.close()
    receiver.close()
    loop.run_until_complete(client.close())
    loop.run_until_complete(server.close())
    echo.close()
    loop.close()


def _drain(sock) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(sock.recv(65535))
        except BlockingIOError:
            return got


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_deliver_datagram_survives_hostile_bytes(delivering, data):
    sessions, receiver = delivering
    handled = deliver_datagram(sessions, data)
    assert handled in (True, False)
    _drain(receiver)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=1100), st.integers(1, 255), st.booleans())
def test_deliver_datagram_delivers_whole_messages_only(delivering, payload, frag_count, known):
    sessions, receiver = delivering
    sid = 78 if known else 79
    whole = frag_count == 1
    msg = encode_udp_message(sid, 0 if whole else 5, 0, frag_count, "10.0.0.1:53", payload)
    handled = deliver_datagram(sessions, msg)
    got = []
    for _ in range(50):                     # loopback delivery is immediate but not synchronous
        got = _drain(receiver)
        if got or not (whole and known):
            break
    if whole:
        assert handled is True
        assert got == ([payload] if known else [])
    else:
        assert handled is False and got == []       # fragments are the Python path's
