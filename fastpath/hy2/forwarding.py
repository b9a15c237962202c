"""Local port forwards through a ``Hy2Client``: TCP (each connection a proxy stream) and UDP
(each local source address its own UDP session, closed after ``timeout`` idle)."""
from __future__ import annotations

import asyncio
import logging
import time

from fastpath.hy2.client import Hy2Client, Hy2Error
from fastpath.hy2.listener import TcpListener

log = logging.getLogger("fastpath.hy2.forwarding")


class TcpForward(TcpListener):
    def __init__(self, client: Hy2Client, listen: tuple[str, int], remote: str) -> None:
        self.client, self.listen, self.remote = client, listen, remote

    async def _handle(self, reader, writer) -> None:
        transport = writer.transport
        transport.pause_reading()
        try:
            conn, sid, resp = await self.client._open(self.remote)
        except (Hy2Error, OSError, asyncio.TimeoutError) as exc:
            log.info("tcp forward to %s: %s", self.remote, exc)
            writer.close()
            return
        self.client.splice_streams(conn, sid, resp, reader, writer)
        if not transport.is_closing():
            transport.resume_reading()


class UdpForward:
    def __init__(self, client: Hy2Client, listen: tuple[str, int], remote: str,
                 timeout: float = 60.0) -> None:
        self.client, self.listen, self.remote, self.timeout = client, listen, remote, timeout
        self.transport = None
        self.sessions: dict = {}          # local addr -> [session, last_active, task]
        self._sweeper = None

    async def start(self) -> "UdpForward":
        loop = asyncio.get_running_loop()
        forward = self

        class Local(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                forward._from_local(data, addr)

        self.transport, _ = await loop.create_datagram_endpoint(Local, local_addr=self.listen)
        self._sweeper = asyncio.ensure_future(self._sweep())
        return self

    @property
    def address(self):
        return self.transport.get_extra_info("sockname")[:2]

    def _from_local(self, data: bytes, addr) -> None:
        entry = self.sessions.get(addr)
        if entry is None:
            entry = self.sessions[addr] = [None, time.monotonic(), None, [data]]
            entry[2] = asyncio.ensure_future(self._run(addr, entry))
            return
        entry[1] = time.monotonic()
        if entry[0] is None:
            if len(entry[3]) < 64:
                entry[3].append(data)
        else:
            entry[0].send(self.remote, data)

    async def _run(self, addr, entry) -> None:
        try:
            session = await self.client.udp_session()
        except (Hy2Error, OSError, asyncio.TimeoutError) as exc:
            log.info("udp forward to %s: %s", self.remote, exc)
            self.sessions.pop(addr, None)
            return
        entry[0] = session
        for data in entry[3]:
            session.send(self.remote, data)
        entry[3] = []
        try:
            while True:
                _source, payload = await session.recv()
                entry[1] = time.monotonic()
                self.transport.sendto(payload, addr)
        except ConnectionError:
            pass
        finally:
            session.close()
            if self.sessions.get(addr) is entry:
                del self.sessions[addr]

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.timeout / 2))
            limit = time.monotonic() - self.timeout
            for addr, entry in list(self.sessions.items()):
                if entry[1] < limit:
                    if entry[2] is not None:
                        entry[2].cancel()
                    self.sessions.pop(addr, None)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for entry in self.sessions.values():
            if entry[2] is not None:
                entry[2].cancel()
        if self.transport is not None:
            self.transport.close()
