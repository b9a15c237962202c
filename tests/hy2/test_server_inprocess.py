"""Server and client in one process (one event loop): behaviour that needs a knob the node does
not expose cheaply: UDP idle expiry, Brutal selection, the proxy masquerade, the speed test
target, reconnecting after a kick, and hostile bytes on proxy streams."""
from __future__ import annotations

import asyncio
import os
import struct

from hypothesis import HealthCheck, given, settings, strategies as st

from fastpath.hy2.server.auth_backends import NodeAuthenticator, PasswordAuth
from fastpath.hy2.quic.brutal import brutal_rate
from fastpath.hy2.client.client import simple_client
from fastpath.hy2.config import parse_server_config
from fastpath.hy2.server.masquerade import NotFoundMasquerade, make_masquerade
from fastpath.hy2.server.server import Hy2Server
from fastpath.hy2.server.speedtest import SpeedTestTarget
from fastpath.worker.event_loop import run
from tests.hy2.targets import echo_handler


async def start_server(tls_files, raw=None, masquerade=None, speedtest=None):
    settings = parse_server_config({"listen": "127.0.0.1:0", **(raw or {})})
    return await Hy2Server(settings, cert=tls_files[0], key=tls_files[1],
                           authenticator=NodeAuthenticator(None, PasswordAuth("pw")),
                           masquerade=masquerade or NotFoundMasquerade(),
                           speedtest=speedtest).start()


def addr(server) -> str:
    return f"127.0.0.1:{server.address[1]}"


def test_udp_session_expires_after_the_idle_timeout(tls_files):
    async def main():
        server = await start_server(tls_files, {"udpIdleTimeout": "2s"})
        loop = asyncio.get_running_loop()

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, t):
                self.t = t

            def datagram_received(self, d, a):
                self.t.sendto(d, a)

        t, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        target = f"127.0.0.1:{t.get_extra_info('sockname')[1]}"
        client = simple_client(addr(server), "pw")
        udp = await client.udp_session()
        udp.send(target, b"x")
        assert (await asyncio.wait_for(udp.recv(), 3))[1] == b"x"
        [conn] = server.connections
        assert len(conn.session.udp.sessions) == 1
        await asyncio.sleep(3.5)
        assert conn.session.udp.sessions == {}
        await client.close()
        await server.close()
        t.close()
    run(main())


def test_brutal_when_the_client_announces_its_rate_and_not_when_ignored(tls_files):
    async def main():
        server = await start_server(tls_files, {"bandwidth": {"up": "80 mbps"}})
        client = simple_client(addr(server), "pw", bandwidth_down=50_000_000)
        await client.connect()
        [conn] = server.connections
        assert brutal_rate(conn.quic) == 10_000_000
        assert conn.brutal.bps == 10_000_000           # min(client rx, server up)
        assert client.conn.session.server_rx == 0
        await client.close()
        await server.close()
        server = await start_server(tls_files, {"ignoreClientBandwidth": True})
        client = simple_client(addr(server), "pw", bandwidth_down=50_000_000)
        await client.connect()
        [conn] = server.connections
        assert brutal_rate(conn.quic) is None
        assert client.conn.session.server_rx is None   # "auto"
        await client.close()
        await server.close()
    run(main())


def test_proxy_masquerade_forwards_to_the_upstream(tls_files):
    from aiohttp import web
    from fastpath.hy2.config import MasqueradeSettings
    from tests.hy2.test_node import raw_h3_request

    async def main():
        async def page(request):
            return web.Response(text=f"upstream {request.path} {request.headers.get('Host')}",
                                headers={"X-Upstream": "yes"})
        app = web.Application()
        app.router.add_get("/{tail:.*}", page)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        masq = make_masquerade(MasqueradeSettings(type="proxy", proxy_url=f"http://127.0.0.1:{port}/",
                                                  proxy_rewrite_host=True))
        server = await start_server(tls_files, masquerade=masq)

        class N:
            hy2 = addr(server)
        headers, body = await raw_h3_request(N, [(b":method", b"GET"), (b":scheme", b"https"),
                                                 (b":authority", b"site.example"), (b":path", b"/x/y")])
        h = dict(headers)
        assert h[b":status"] == b"200" and h[b"x-upstream"] == b"yes"
        assert body == f"upstream /x/y 127.0.0.1:{port}".encode()
        await server.close()
        await masq.close()
        await runner.cleanup()
    run(main())


def test_speed_test_target(tls_files):
    async def main():
        target = await SpeedTestTarget().start()
        server = await start_server(tls_files, {"speedTest": True}, speedtest=target)
        client = simple_client(addr(server), "pw")
        reader, writer = await client.open_tcp("@SpeedTest:0")
        writer.write(b"\x01" + struct.pack(">I", 1_000_000))
        assert await reader.readexactly(5) == b"\x00\x00\x02OK"
        assert len(await reader.readexactly(1_000_000)) == 1_000_000
        reader, writer = await client.open_tcp("@SpeedTest:0")
        writer.write(b"\x02" + struct.pack(">I", 300_000))
        assert await reader.readexactly(5) == b"\x00\x00\x02OK"
        writer.write(os.urandom(300_000))
        _ms, received = struct.unpack(">II", await reader.readexactly(8))
        assert received == 300_000
        await client.close()
        await server.close()
        await target.close()
    run(main())


def test_client_reconnects_after_being_kicked(tls_files):
    async def main():
        server = await start_server(tls_files)
        es = await asyncio.start_server(echo_handler, "127.0.0.1", 0)
        target = f"127.0.0.1:{es.sockets[0].getsockname()[1]}"
        client = simple_client(addr(server), "pw")
        await client.connect()
        first = client.conn
        assert server.kick(["user"]) == 1
        await asyncio.wait_for(first.terminated.wait(), 2)
        assert first.close_reason.error_code == 0x107
        reader, writer = await client.open_tcp(target)
        writer.write(b"again")
        assert await reader.readexactly(5) == b"again"
        assert client.conn is not first
        await client.close()
        await server.close()
        es.close()
    run(main())


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(chunks=st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=8))
def test_hostile_bytes_on_streams_never_break_the_connection(tls_files, chunks):
    """Whatever a client writes on its streams, the server answers each stream or closes it,
    and the connection stays usable."""
    async def main():
        server = await start_server(tls_files)
        client = simple_client(addr(server), "pw")
        conn = await client.connect()
        quic = conn.quic
        for i, chunk in enumerate(chunks):
            sid = quic.get_next_available_stream_id()
            quic.send_stream_data(sid, b"\x44\x01" + chunk if i % 2 else chunk, end_stream=bool(i % 3))
        conn.transmit()
        await asyncio.sleep(0.05)
        assert not conn.closed
        assert server.connections
        await client.close()
        await server.close()
    run(main())


def test_a_dial_past_its_deadline_is_answered_and_the_connection_goes_on(tls_files, monkeypatch):
    """The dial's deadline (one timer cancelling its task): a target that never answers gets
    the client a "timeout" answer on that stream only; the next stream dials normally."""
    import fastpath.hy2.server.server as server_module
    from fastpath.hy2.client.client import ConnectError
    from fastpath.worker.egress import Egress

    class HangsOnce(Egress):
        hung = 0

        async def direct(self, loop, protocol_factory, host, port):
            if not self.hung:
                self.hung += 1
                await asyncio.Event().wait()        # a target that never answers
            return await super().direct(loop, protocol_factory, host, port)

    monkeypatch.setattr(server_module, "DIAL_TIMEOUT", 0.3)

    async def main():
        echo = await asyncio.start_server(echo_handler, "127.0.0.1", 0)
        target = f"127.0.0.1:{echo.sockets[0].getsockname()[1]}"
        settings = parse_server_config({"listen": "127.0.0.1:0"})
        server = await Hy2Server(settings, cert=tls_files[0], key=tls_files[1],
                                 authenticator=NodeAuthenticator(None, PasswordAuth("pw")),
                                 masquerade=NotFoundMasquerade(), egress=HangsOnce()).start()
        client = simple_client(addr(server), "pw")
        try:
            try:
                await asyncio.wait_for(client.open_tcp(target), 5)
                raise AssertionError("the hanging dial was answered as connected")
            except ConnectError as exc:
                assert "timeout" in str(exc)
            reader, writer = await asyncio.wait_for(client.open_tcp(target), 5)
            writer.write(b"after")
            assert await asyncio.wait_for(reader.readexactly(5), 5) == b"after"
            writer.close()
        finally:
            await client.close()
            await server.close()
            echo.close()
    run(main())
