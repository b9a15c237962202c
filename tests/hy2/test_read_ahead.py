"""Billing close to delivery (issue 20): the server reads a target no further ahead of what the
client acknowledged than the stream's flow-control window (plus one socket read).

A real server and our real client in one event loop, a target that sends without end, and a
reader that never reads: its stream stalls with a bounded amount billed beyond what the client
acknowledged, while a second stream on the same connection still downloads at full speed.
"""
from __future__ import annotations

import asyncio
import hashlib

from fastpath.hy2.client.client import simple_client
from fastpath.worker.event_loop import run
from tests.hy2.test_server_inprocess import addr, start_server

WINDOW = 1 << 20          # the client's stream window (initStreamReceiveWindow)
SOCKET_READ = 256 << 10   # the most asyncio reads from a TCP socket at once
CHUNK = bytes(range(256)) * 256
MAX_RESPONSE = 4096       # the server's TCP response with its padding


async def endless_source(reader, writer):
    """A target that sends as fast as it can until the connection goes."""
    try:
        while True:
            writer.write(CHUNK)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def sized_source(reader, writer):
    size = int((await reader.readline()).decode())
    sent = 0
    while sent < size:
        n = min(len(CHUNK), size - sent)
        writer.write(CHUNK[:n])
        await writer.drain()
        sent += n
    writer.close()


def window_client(server):
    """Our client of ``server`` with a stream window of ``WINDOW``."""
    client = simple_client(addr(server), "pw")
    client.settings.quic.init_stream_window = WINDOW
    client.settings.quic.max_stream_window = WINDOW
    return client


async def wait_stalled(pump, seconds: float = 20.0) -> None:
    """Until the pump has stopped reading its target for good (no growth for 0.5 s)."""
    deadline = asyncio.get_running_loop().time() + seconds
    last = -1
    while asyncio.get_running_loop().time() < deadline:
        if pump.reading_paused and pump.from_tcp_bytes == last:
            return
        last = pump.from_tcp_bytes
        await asyncio.sleep(0.5)
    raise AssertionError(f"the slow stream never stalled ({pump.from_tcp_bytes} bytes read)")


def test_a_reader_that_never_reads_is_billed_at_most_a_window_ahead(tls_files):
    async def main():
        server = await start_server(tls_files)
        endless = await asyncio.start_server(endless_source, "127.0.0.1", 0)
        sized = await asyncio.start_server(sized_source, "127.0.0.1", 0)
        client = window_client(server)
        try:
            slow_reader, _slow_writer = await client.open_tcp(
                f"127.0.0.1:{endless.sockets[0].getsockname()[1]}")
            conn = next(iter(server.connections))
            slow_sid, pump = next(iter(conn.pumps.items()))
            assert conn.quic.send_window(slow_sid) == WINDOW
            assert pump.high_water == WINDOW
            await wait_stalled(pump)

            # the bound: billed (read from the target) minus acknowledged by the client
            sender = conn.quic._streams[slow_sid].sender
            acked = sender._buffer_start
            billed = pump.from_tcp_bytes
            assert billed - acked <= WINDOW + SOCKET_READ, (billed, acked)
            # memory: what the server holds for the stream is that difference and the TCP
            # response that opened it (not billed; its padding has a random length)
            held = conn.quic.unsent_bytes(slow_sid)
            assert billed - acked < held <= billed - acked + MAX_RESPONSE, (held, billed, acked)
            # and the client did get what it acknowledged (it holds it, unread)
            assert acked > 0

            # another stream of the same connection is not held up by the stalled one
            reader, writer = await client.open_tcp(
                f"127.0.0.1:{sized.sockets[0].getsockname()[1]}")
            size = 8 << 20
            writer.write(f"{size}\n".encode())
            digest = hashlib.sha256()
            got = 0
            async with asyncio.timeout(30):
                while got < size:
                    data = await reader.read(1 << 16)
                    assert data, "the second stream ended early"
                    digest.update(data)
                    got += len(data)
            want = hashlib.sha256()
            for pos in range(0, size, len(CHUNK)):
                want.update(CHUNK[:min(len(CHUNK), size - pos)])
            assert digest.digest() == want.digest()

            # the slow stream is still held where it was: nothing more read, nothing more billed
            assert pump.from_tcp_bytes == billed and pump.reading_paused
            assert slow_reader.at_eof() is False
        finally:
            await client.close()
            await server.close()
            endless.close()
            sized.close()
    run(main())


def test_a_reader_that_reads_late_gets_every_byte_once_it_reads(tls_files):
    """The stall lifts: once the slow reader reads, the pump resumes and the bytes are the
    target's, in order."""
    async def main():
        server = await start_server(tls_files)
        sized = await asyncio.start_server(sized_source, "127.0.0.1", 0)
        client = window_client(server)
        try:
            reader, writer = await client.open_tcp(
                f"127.0.0.1:{sized.sockets[0].getsockname()[1]}")
            size = 12 << 20
            writer.write(f"{size}\n".encode())
            conn = next(iter(server.connections))
            pump = next(iter(conn.pumps.values()))
            await wait_stalled(pump)
            assert pump.from_tcp_bytes < size
            digest = hashlib.sha256()
            got = 0
            async with asyncio.timeout(30):
                while got < size:
                    data = await reader.read(1 << 16)
                    assert data
                    digest.update(data)
                    got += len(data)
            want = hashlib.sha256()
            for pos in range(0, size, len(CHUNK)):
                want.update(CHUNK[:min(len(CHUNK), size - pos)])
            assert digest.digest() == want.digest()
        finally:
            await client.close()
            await server.close()
            sized.close()
    run(main())
