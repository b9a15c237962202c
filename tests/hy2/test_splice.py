"""A local socket handed over to a relay pump keeps working after the garbage collector runs.

The client's SOCKS5, HTTP CONNECT and TCP forward listeners accept with asyncio streams and then
give the socket to a relay pump; a StreamWriter that is collected closes its transport (Python
3.11.5+), so the listener must keep it until the relay ends.  Collecting right after the
hand-over makes the failure certain instead of depending on when the collector happens to run.
"""
from __future__ import annotations

import asyncio
import gc
import socket
import struct

import pytest

from fastpath.hy2.client.client import simple_client
from fastpath.hy2.client.forwarding import TcpForward
from fastpath.hy2.client.http_proxy import HttpProxyServer
from fastpath.hy2.client.socks5 import Socks5Server
from fastpath.worker.event_loop import run
from tests.hy2.inprocess import password_server
from tests.hy2.targets import echo_handler

PAYLOAD = b"through the pump" * 1000


async def _socks_handshake(reader, writer, port):
    writer.write(b"\x05\x01\x00")
    assert await reader.readexactly(2) == b"\x05\x00"
    writer.write(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", port))
    assert (await reader.readexactly(10))[:2] == b"\x05\x00"


async def _http_handshake(reader, writer, port):
    writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")


async def _no_handshake(reader, writer, port):
    pass


@pytest.mark.parametrize("kind", ["socks5", "http", "forward"])
def test_relay_survives_collection_of_the_accepting_stream(tls_files, kind):
    async def main():
        echo = await asyncio.start_server(echo_handler, "127.0.0.1", 0)
        echo_port = echo.sockets[0].getsockname()[1]
        server = await password_server(tls_files)
        client = simple_client(f"127.0.0.1:{server.address[1]}", "pw")
        await client.connect()
        if kind == "socks5":
            listener, handshake = Socks5Server(client, ("127.0.0.1", 0)), _socks_handshake
        elif kind == "http":
            listener, handshake = HttpProxyServer(client, ("127.0.0.1", 0)), _http_handshake
        else:
            listener = TcpForward(client, ("127.0.0.1", 0), f"127.0.0.1:{echo_port}")
            handshake = _no_handshake
        await listener.start()
        reader, writer = await asyncio.open_connection(*listener.address)
        await handshake(reader, writer, echo_port)
        writer.write(b"x")
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"x"   # spliced by now
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.01)
        writer.write(PAYLOAD)
        assert await asyncio.wait_for(reader.readexactly(len(PAYLOAD)), 10) == PAYLOAD
        writer.close()
        await listener.close()
        await client.close()
        await server.close()
        echo.close()

    run(main())
