"""The reference's speed-test target: requests to ``@SpeedTest:<any port>`` when enabled.

A tiny loopback TCP server in the worker speaks the reference's protocol, so the relay path
(pump, counting) is the ordinary one:
- download: ``0x01, uint32 n`` → status 0, ``uint16 len, "OK"``, then n bytes;
- upload: ``0x02, uint32 n`` → status 0, "OK"; reads n bytes; answers
  ``uint32 elapsed ms, uint32 bytes received``.
"""
from __future__ import annotations

import asyncio
import os
import struct
import time

CHUNK = 64 * 1024
TYPE_DOWNLOAD, TYPE_UPLOAD = 1, 2


def _ok() -> bytes:
    return b"\x00" + struct.pack(">H", 2) + b"OK"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        kind = (await reader.readexactly(1))[0]
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        if kind == TYPE_DOWNLOAD:
            writer.write(_ok())
            chunk = os.urandom(CHUNK)
            left = size
            while left > 0:
                n = min(left, CHUNK)
                writer.write(chunk[:n])
                left -= n
                await writer.drain()
        elif kind == TYPE_UPLOAD:
            writer.write(_ok())
            await writer.drain()
            start = time.monotonic()
            left = size
            while left > 0:
                data = await reader.read(min(left, CHUNK))
                if not data:
                    break
                left -= len(data)
            elapsed = int((time.monotonic() - start) * 1000)
            writer.write(struct.pack(">II", elapsed & 0xFFFFFFFF, size - left))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


class SpeedTestTarget:
    def __init__(self) -> None:
        self.server = None
        self.address = None

    async def start(self) -> "SpeedTestTarget":
        self.server = await asyncio.start_server(_serve, "127.0.0.1", 0)
        self.address = self.server.sockets[0].getsockname()[:2]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
