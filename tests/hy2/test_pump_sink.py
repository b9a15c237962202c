"""In-order STREAM bytes handed to the relay pump by the compiled receive path
(``RelayPump.take``, ``Hy2QuicConnection.stream_pumps``): the same bytes, in the same order,
as through aioquic's events, and the direct hand-over really taken (``quic_receive.stats``).

Both directions go through a pump here: the server's pump takes what the client sends toward
the echo target, the client's pump (a TCP forward) takes the echo."""
from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from fastpath.hy2.quic import quic_connection, quic_receive
from fastpath.hy2.client.client import simple_client
from fastpath.hy2.client.forwarding import TcpForward
from fastpath.worker.event_loop import run
from tests.hy2.inprocess import password_server
from tests.hy2.targets import echo_handler

SIZE = 3 << 20


async def _echo_through_forward(tls_files, payload: bytes) -> bytes:
    echo = await asyncio.start_server(echo_handler, "127.0.0.1", 0)
    server = await password_server(tls_files)
    client = simple_client(f"127.0.0.1:{server.address[1]}", "pw")
    await client.connect()
    forward = TcpForward(client, ("127.0.0.1", 0),
                         f"127.0.0.1:{echo.sockets[0].getsockname()[1]}")
    await forward.start()
    try:
        reader, writer = await asyncio.open_connection(*forward.address)

        async def send():
            for i in range(0, len(payload), 65536):
                writer.write(payload[i:i + 65536])
                await writer.drain()

        sender = asyncio.ensure_future(send())
        got = await asyncio.wait_for(reader.readexactly(len(payload)), 60)
        await sender
        writer.close()
        return got
    finally:
        await forward.close()
        await client.close()
        await server.close()
        echo.close()


@pytest.mark.parametrize("sink", [True, False])
def test_stream_bytes_through_the_pump_sink_are_exact(tls_files, monkeypatch, sink):
    monkeypatch.setattr(quic_connection, "PUMP_SINK", sink)
    payload = os.urandom(SIZE)
    before = quic_receive.stats()["pump"]
    got = run(_echo_through_forward(tls_files, payload))
    taken = quic_receive.stats()["pump"] - before
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    if sink:
        # each direction is ~2300 full packets: most of their frames must have been taken
        assert taken > SIZE // 1500, taken
    else:
        assert taken == 0
