"""Local port forwards through a ``Hy2Client``: TCP (each connection a proxy stream) and UDP
(each local source address its own UDP session, closed after ``timeout`` idle)."""
from __future__ import annotations

import asyncio
import logging
import time

from fastpath.hy2.client.client import Hy2Client, Hy2Error
from fastpath.hy2.client.client_udp_pump import LocalUdpRelay, UdpPeer
from fastpath.hy2.quic.udp_endpoint import make_udp_socket
from fastpath.hy2.client.listener import TcpListener

log = logging.getLogger("fastpath.hy2.forwarding")


async def open_udp_peer(client: Hy2Client, relay: LocalUdpRelay, key: bytes, kept: list) -> None:
    """Open a UDP session for the local peer ``key`` of ``relay`` (reconnecting if need be),
    then send the packets it sent meanwhile (``kept``, emptied)."""
    peer = await client.udp_session(lambda conn, sid: UdpPeer(relay, conn, sid, key))
    if relay.closed:
        peer.close()
        return
    relay.add_peer(peer)
    for packet in kept:
        relay.send_from(peer, packet)
    kept.clear()


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
    """A local UDP port relayed to ``remote``: each source address its own UDP session, closed
    after ``timeout`` idle.  Packets are relayed in C (``LocalUdpRelay``); here a session is
    opened for a new source (keeping up to ``BACKLOG`` of its packets meanwhile) and idle ones
    are swept."""

    BACKLOG = 64

    def __init__(self, client: Hy2Client, listen: tuple[str, int], remote: str,
                 timeout: float = 60.0) -> None:
        self.client, self.listen, self.remote, self.timeout = client, listen, remote, timeout
        self.relay: LocalUdpRelay | None = None
        self.opening: dict[bytes, list[bytes]] = {}     # source -> packets kept meanwhile
        self._sweeper = None
        self._sock = None

    async def start(self) -> "UdpForward":
        self._sock = make_udp_socket(self.listen[0], self.listen[1])
        self.relay = LocalUdpRelay(asyncio.get_running_loop(), self._sock, self._new_source,
                                   remote=self.remote)
        self.relay.start()
        self._sweeper = asyncio.ensure_future(self._sweep())
        return self

    @property
    def address(self):
        return self._sock.getsockname()[:2]

    def _new_source(self, key: bytes, packet: bytes) -> None:
        kept = self.opening.get(key)
        if kept is not None:
            if len(kept) < self.BACKLOG:
                kept.append(packet)
            return
        self.opening[key] = [packet]
        asyncio.ensure_future(self._open(key))

    async def _open(self, key: bytes) -> None:
        try:
            await open_udp_peer(self.client, self.relay, key, self.opening[key])
        except (Hy2Error, OSError, asyncio.TimeoutError) as exc:
            log.info("udp forward to %s: %s", self.remote, exc)
        finally:
            self.opening.pop(key, None)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.timeout / 2))
            limit = time.monotonic() - self.timeout
            for peer in list(self.relay.peers.values()):
                if peer.last_active < limit:
                    peer.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.relay is not None:
            self.relay.close()
