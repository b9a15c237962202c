"""Local targets the tests dial through the proxy: TCP echo, TCP sink/source, UDP echo.

Each runs in its own thread with its own event loop, so a test's client and the target never
share a loop (as in real use), and stops when the test ends.
"""
from __future__ import annotations

import asyncio
import hashlib
import struct
import threading


class TargetThread:
    """Run ``async start(loop) -> port`` targets in a background loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._servers = []

    def call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def tcp(self, handler) -> int:
        async def start():
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            self._servers.append(server)
            return server.sockets[0].getsockname()[1]
        return self.call(start())

    def udp_echo(self) -> int:
        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                self.transport.sendto(data, addr)

        async def start():
            transport, _ = await self.loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
            self._servers.append(transport)
            return transport.get_extra_info("sockname")[1]
        return self.call(start())

    def close(self) -> None:
        async def stop():
            for s in self._servers:
                s.close()
            # Finish the handlers of connections still open here, so no coroutine is left to
            # be finalized later by the garbage collector on another thread.
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            self.call(stop(), 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            if not self.thread.is_alive():
                self.loop.close()


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


BANNER = b"SSH-2.0-fastpath-test-banner\r\n"


async def banner_echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Speaks first, as SSH or SMTP do (a banner on accept), then echoes."""
    writer.write(BANNER)
    await echo_handler(reader, writer)


async def source_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads ``uint64 n, uint64 seed``; sends n pseudo-random bytes, then closes."""
    try:
        n, seed = struct.unpack(">QQ", await reader.readexactly(16))
        for chunk in pattern(n, seed):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def hash_sink_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads ``uint64 n`` then n bytes; answers their SHA-256 (32 bytes)."""
    try:
        (n,) = struct.unpack(">Q", await reader.readexactly(8))
        h = hashlib.sha256()
        left = n
        while left:
            data = await reader.read(min(left, 1 << 20))
            if not data:
                break
            h.update(data)
            left -= len(data)
        writer.write(h.digest())
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def pattern(n: int, seed: int, chunk: int = 1 << 18):
    """n bytes, deterministic from seed, in chunks (cheap to make and to hash)."""
    block = hashlib.sha256(seed.to_bytes(8, "big")).digest() * (chunk // 32)
    left = n
    i = 0
    while left:
        k = min(left, chunk)
        b = bytearray(block[:k])
        b[:8] = i.to_bytes(8, "big")[:min(8, k)]
        yield bytes(b)
        left -= k
        i += 1


def standard_targets() -> TargetThread:
    """TCP echo, banner-then-echo, source, hash sink and UDP echo, as
    ``.echo/.banner/.source/.sink/.udp`` ports."""
    t = TargetThread()
    t.echo = t.tcp(echo_handler)
    t.banner = t.tcp(banner_echo_handler)
    t.source = t.tcp(source_handler)
    t.sink = t.tcp(hash_sink_handler)
    t.udp = t.udp_echo()
    return t
