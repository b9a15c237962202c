"""Our client against a real ``fastpath serve`` on loopback, with local targets.

One node serves most tests (module scope); each test uses its own client.  Transfers are
checked end to end (SHA-256), and counters are read from the shared-memory segment and the
native API.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import time

import pytest
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic import events as qe

from fastpath.config import load_config
from fastpath.hy2.client.client import AuthError, ConnectError, simple_client
from fastpath.hy2.client.client_session import ClientSession
from fastpath.hy2.quic.quic_connection import Hy2QuicConnection
from fastpath.shm import (KIND_CONNECTION, KIND_TCP_STREAM, KIND_UDP_SESSION, CounterTable,
                          scan_slots)
from fastpath.supervisor.command_channel import CommandClient
from fastpath.worker.event_loop import run
from tests.hy2.conftest import default_secret, hy2_node
from tests.hy2.targets import pattern
from tests.support.node import NodeProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with hy2_node(tmp_path_factory, "hy2node") as n:
        n.hy2 = n.config["listen"]
        yield n


def client_for(node, auth=None, **kw):
    return simple_client(node.hy2, node.secret if auth is None else auth, **kw)


def counter_table(node):
    cfg = load_config(node.config_path, node.data_dir)
    return CounterTable.attach(cfg.counter_segment_path, readonly=True)


async def connected(client, timeout: float = 15.0):
    """Connect, retrying while the worker is still starting."""
    return await asyncio.wait_for(client.ensure_connected(), timeout)


def test_echo_and_counted_slots(node, targets):
    async def main():
        client = client_for(node)
        await connected(client)
        reader, writer = await client.open_tcp(f"127.0.0.1:{targets.echo}")
        writer.write(b"ping" * 1000)
        assert await reader.readexactly(4000) == b"ping" * 1000
        slots = scan_slots(counter_table(node))
        conns = [s for s in slots if s["kind"] == KIND_CONNECTION and s["key"] == "default"]
        streams = [s for s in slots if s["kind"] == KIND_TCP_STREAM and s["key"] == "default"]
        assert conns and streams
        stream = streams[-1]
        assert stream["text_b"] == f"127.0.0.1:{targets.echo}"
        assert stream["tx"] == 4000 and stream["rx"] == 4000
        assert stream["stream_id"] == writer.stream_id
        assert stream["conn_id"] == conns[-1]["conn_id"] and 0 <= stream["conn_id"] < 2 ** 32
        assert conns[-1]["text_a"].startswith("127.0.0.1:")
        writer.close()
        await client.close()
        await asyncio.sleep(0.5)
        left = [s for s in scan_slots(counter_table(node), [KIND_TCP_STREAM])
                if s["stream_id"] == writer.stream_id and s["conn_id"] == conns[-1]["conn_id"]]
        assert left == []
    run(main())


def test_dial_failure_is_reported_with_the_servers_message(node):
    async def main():
        client = client_for(node)
        await connected(client)
        with pytest.raises(ConnectError):
            await client.open_tcp("127.0.0.1:1")
        await client.close()
    run(main())


@pytest.mark.slow
def test_100_mb_download_and_20_mb_upload_keep_their_sha256(node, targets):
    size, seed = 100 * 1024 * 1024, 42

    async def main():
        client = client_for(node)
        await connected(client)
        reader, writer = await client.open_tcp(f"127.0.0.1:{targets.source}")
        writer.write(struct.pack(">QQ", size, seed))
        h = hashlib.sha256()
        got = 0
        start = time.monotonic()
        while True:
            data = await reader.read(1 << 20)
            if not data:
                break
            h.update(data)
            got += len(data)
        elapsed = time.monotonic() - start
        expected = hashlib.sha256()
        for chunk in pattern(size, seed):
            expected.update(chunk)
        assert got == size
        assert h.hexdigest() == expected.hexdigest()
        print(f"download {size / elapsed / 1e6:.1f} MB/s")

        up = 20 * 1024 * 1024
        reader, writer = await client.open_tcp(f"127.0.0.1:{targets.sink}")
        writer.write(struct.pack(">Q", up))
        expected = hashlib.sha256()
        for chunk in pattern(up, 7):
            expected.update(chunk)
            writer.write(chunk)
            await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(32), 60) == expected.digest()
        await client.close()
    run(main())


@pytest.mark.slow
def test_1000_parallel_short_connections(node, targets):
    async def main():
        client = client_for(node)
        await connected(client)

        async def one(i: int):
            reader, writer = await client.open_tcp(f"127.0.0.1:{targets.echo}")
            msg = f"hello {i}\n".encode()
            writer.write(msg)
            assert await reader.readexactly(len(msg)) == msg
            writer.close()

        start = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(1000))), 120)
        print(f"1000 connections in {time.monotonic() - start:.2f}s")
        await client.close()
    run(main())


def test_udp_echo_small_and_fragmented(node, targets):
    async def main():
        client = client_for(node)
        await connected(client)
        udp = await client.udp_session()
        for size in (100, 3000):
            for i in range(5):
                payload = os.urandom(size)
                assert udp.send(f"127.0.0.1:{targets.udp}", payload)
                address, data = await asyncio.wait_for(udp.recv(), 5)
                assert data == payload and address == f"127.0.0.1:{targets.udp}"
                await asyncio.sleep(0.01)
        slots = [s for s in scan_slots(counter_table(node), [KIND_UDP_SESSION])
                 if s["stream_id"] == udp.session_id]
        assert slots and slots[0]["tx"] == 5 * 3100 and slots[0]["rx"] == 5 * 3100
        await client.close()
    run(main())


class RawQuic:
    """A bare QUIC connection to the node, driven by hand (no Hysteria client logic)."""

    def __init__(self, node, on_event):
        from fastpath.hy2.client.client import client_quic_configuration
        from fastpath.hy2.config import ClientSettings
        from fastpath.hy2.quic.udp_endpoint import UdpEndpoint, make_udp_socket
        self.loop = asyncio.get_running_loop()
        host, port = node.hy2.rsplit(":", 1)
        self.quic = Hy2QuicConnection(configuration=client_quic_configuration(
            ClientSettings(server_host=host, server_port=int(port), insecure=True)))
        self.session = ClientSession(self.quic, "")
        self.on_event = on_event
        self.endpoint = UdpEndpoint(make_udp_socket("127.0.0.1", 0), self._batch)
        self.endpoint.start(self.loop)
        self.quic.connect((host, int(port)), now=self.loop.time())
        self.ticker = asyncio.ensure_future(self._tick())

    def _batch(self, batch):
        for data, addr in batch:
            self.quic.receive_datagram(data, addr, self.loop.time())
        self.flush()

    def flush(self):
        while (ev := self.quic.next_event()) is not None:
            self.on_event(self, ev)
        self.endpoint.send(self.quic.datagrams_to_send(self.loop.time()))

    async def _tick(self):
        while True:
            await asyncio.sleep(0.005)
            at = self.quic.get_timer()
            if at is not None and at <= self.loop.time():
                self.quic.handle_timer(self.loop.time())
            self.flush()

    def close(self):
        self.ticker.cancel()
        self.quic.close()
        self.endpoint.send(self.quic.datagrams_to_send(self.loop.time()))
        self.endpoint.close()


async def raw_h3_request(node, headers, timeout=5.0):
    """One HTTP/3 request on a fresh connection, without our client: (headers, body)."""
    result = {"headers": None, "body": b""}
    done = asyncio.get_running_loop().create_future()

    def on_event(raw, ev):
        for h3e in raw.session.h3.handle_event(ev):
            if isinstance(h3e, HeadersReceived):
                result["headers"] = h3e.headers
            elif isinstance(h3e, DataReceived):
                result["body"] += h3e.data
            if getattr(h3e, "stream_ended", False) and not done.done():
                done.set_result(None)

    raw = RawQuic(node, on_event)
    raw.session.h3.send_headers(raw.quic.get_next_available_stream_id(), headers, end_stream=True)
    raw.flush()
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        raw.close()
    return result["headers"], result["body"]


def test_wrong_password_gets_a_plain_404_without_hysteria_headers(node):
    async def main():
        client = client_for(node, auth="wrong password")
        with pytest.raises(AuthError) as err:
            await client.connect()
        assert err.value.status == 404
        headers, body = await raw_h3_request(node, [
            (b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"hysteria"),
            (b":path", b"/auth"), (b"hysteria-auth", b"nope"), (b"hysteria-cc-rx", b"0"),
            (b"hysteria-padding", b"x" * 300)])
        names = {k for k, _ in headers}
        assert dict(headers)[b":status"] == b"404" and body == b"404 page not found\n"
        assert not any(b"hysteria" in k for k in names)
        headers, body = await raw_h3_request(node, [
            (b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.com"),
            (b":path", b"/index.html")])
        assert dict(headers)[b":status"] == b"404" and body == b"404 page not found\n"
        assert dict(headers)[b"content-type"] == b"text/plain; charset=utf-8"
    run(main())


def test_tcp_request_before_auth_gets_no_answer(node, targets):
    async def main():
        with pytest.raises(asyncio.TimeoutError):
            # A proxy request on a connection that never authenticated: H3 treats it as an
            # unknown frame and nothing comes back.
            from fastpath.hy2.wire.frames import encode_tcp_request
            await raw_stream_exchange(node, encode_tcp_request(f"127.0.0.1:{targets.echo}") + b"hi")
    run(main())


async def raw_stream_exchange(node, payload: bytes, timeout: float = 1.5):
    """Send ``payload`` on a new stream of an unauthenticated connection; the first answer."""
    got = asyncio.get_running_loop().create_future()

    def on_event(raw, ev):
        if isinstance(ev, qe.StreamDataReceived) and ev.stream_id == 0 and not got.done():
            got.set_result(ev.data)

    raw = RawQuic(node, on_event)
    raw.quic.send_stream_data(raw.quic.get_next_available_stream_id(), payload)
    raw.flush()
    try:
        return await asyncio.wait_for(got, timeout)
    finally:
        raw.close()


def _create_user(node, user_id: str, **fields) -> str:
    body = {"id": user_id, "auth_secret": f"secret-{user_id}", **fields}
    r = node.post("/api/v1/users", body)
    assert r.status == 201, r.text
    return body["auth_secret"]


def test_kick_closes_every_connection_of_a_user(node, targets):
    secret = _create_user(node, "kicked")

    async def main():
        clients = [client_for(node, auth=secret) for _ in range(3)]
        other = client_for(node)
        for c in clients + [other]:
            await connected(c)
        await asyncio.sleep(0.2)
        result = await asyncio.to_thread(
            CommandClient(str(node.data_dir / "control.sock")).call, "kick", {"ids": ["kicked"]})
        assert result == {"closed": 3}
        for c in clients:
            await asyncio.wait_for(c.conn.terminated.wait(), 2)
            assert c.conn.close_reason.error_code == 0x107
        assert not other.conn.closed
        await other.close()
    run(main())


def test_over_limit_user_is_cut_off_within_a_second(node, targets):
    secret = _create_user(node, "limited", traffic_limit=300_000)

    async def main():
        client = client_for(node, auth=secret)
        await connected(client)
        reader, writer = await client.open_tcp(f"127.0.0.1:{targets.echo}")
        chunk = b"x" * 50_000
        crossed_at = None
        sent = 0
        while not client.conn.closed and sent < 5_000_000:
            writer.write(chunk)
            sent += len(chunk)
            try:
                await asyncio.wait_for(reader.readexactly(len(chunk)), 2)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                break
            if crossed_at is None and 2 * sent >= 300_000:
                crossed_at = time.monotonic()
        await asyncio.wait_for(client.conn.terminated.wait(), 2)
        assert client.conn.close_reason.error_code == 0x107
        assert time.monotonic() - crossed_at < 1.5
        # And it is refused at auth from now on.
        again = client_for(node, auth=secret)
        with pytest.raises(AuthError):
            await again.connect()
    run(main())


def test_disabled_user_is_cut_off(node, targets):
    secret = _create_user(node, "soon-disabled")

    async def main():
        client = client_for(node, auth=secret)
        await connected(client)
        r = await asyncio.to_thread(node.request, "PATCH", "/api/v1/users/soon-disabled",
                                    {"enabled": False})
        assert r.status == 200, r.text
        await asyncio.wait_for(client.conn.terminated.wait(), 1.5)
        assert client.conn.close_reason.error_code == 0x107
    run(main())


def test_salamander_on_both_ends(tmp_path, targets):
    with NodeProcess(tmp_path, {"obfs": {"type": "salamander",
                                         "salamander": {"password": "cry me a river"}}}) as node:
        secret = default_secret(node.data_dir)

        async def main():
            client = simple_client(node.config["listen"], secret, obfs="cry me a river")
            await connected(client)
            reader, writer = await client.open_tcp(f"127.0.0.1:{targets.echo}")
            writer.write(b"z" * 100_000)
            assert await reader.readexactly(100_000) == b"z" * 100_000
            udp = await client.udp_session()
            udp.send(f"127.0.0.1:{targets.udp}", b"u" * 3000)
            assert (await asyncio.wait_for(udp.recv(), 5))[1] == b"u" * 3000
            await client.close()
        run(main())


def test_command_auth_backend_gets_the_secret_on_stdin_not_in_argv(tmp_path, targets):
    """A node with the reference's ``command`` backend: the program sees ``addr - tx`` as its
    arguments (nothing another local user could read with ``ps``) and the auth string on stdin;
    its stdout is the user id; a refused secret is an auth failure for the client."""
    import stat
    argv_log = tmp_path / "argv.log"
    script = tmp_path / "auth.sh"
    script.write_text(f'#!/bin/sh\necho "$@" >> {argv_log}\nIFS= read -r auth\n'
                      '[ "$auth" = "cmd-secret-42" ] && { echo carol; exit 0; }\nexit 1\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    with NodeProcess(tmp_path, {"auth": {"type": "command", "command": str(script)}}) as node:
        async def main():
            client = simple_client(node.config["listen"], "cmd-secret-42")
            await connected(client)
            reader, writer = await client.open_tcp(f"127.0.0.1:{targets.echo}")
            writer.write(b"c" * 10_000)
            assert await reader.readexactly(10_000) == b"c" * 10_000
            # The program's stdout is the id that keys the connection's counters.
            conns = scan_slots(counter_table(node), [KIND_CONNECTION])
            assert any(s["key"] == "carol" for s in conns), conns
            await client.close()
            bad = simple_client(node.config["listen"], "wrong-secret")
            with pytest.raises(AuthError):
                await asyncio.wait_for(bad.ensure_connected(), 15)
            await bad.close()
        run(main())
    lines = argv_log.read_text().splitlines()
    assert lines and all(line.split()[1] == "-" and len(line.split()) == 3 for line in lines), lines
    assert "cmd-secret-42" not in argv_log.read_text() and "wrong-secret" not in argv_log.read_text()
