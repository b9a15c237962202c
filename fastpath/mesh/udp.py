"""UDP along exit paths: the entry's session (``MeshUdp``) and the exit's socket (``UdpExit``).

On a one-hop path the first hop's own Hysteria 2 UDP session carries the datagrams (as the
single-hop exits always did).  On a longer path they travel as frames on a relay stream
(``_relay_udpvia_``, ``fastpath.mesh.wire``): every hop relays that stream like any proxy
stream, so each counts the bytes for the peer user it serves, and the node at the path's end
(``UdpExit``) sends them from its own UDP socket and frames the replies back.

Per datagram in Python: exit-routed UDP is the rare case (the direct path stays in C,
``fastpath.hy2.server.udp_pump``), and the peers' client sessions hand packets over as objects.
"""
from __future__ import annotations

import asyncio
import logging

from fastpath.hy2.wire.udp_relay import literal_ip

from fastpath.mesh.paths import join_address, split_address
from fastpath.mesh.wire import FrameReader, RelayError, encode_frame

log = logging.getLogger("fastpath.mesh.udp")

RESOLVE_TIMEOUT = 5.0


class MeshUdp:
    """One UDP session of an exit-routed user (the ``UdpPump`` interface: ``send``, ``close``,
    ``slot``).  Packets that arrive before the carrier is open wait (at most ``QUEUE_MAX``);
    when no path can carry them they are dropped, never sent from here.  Counted on the
    session's slot: sent payload as tx, replies as rx."""

    QUEUE_MAX = 64

    def __init__(self, loop, owner, session_id: int, mesh, route, counters, slot: int):
        self.owner = owner
        self.session_id = session_id
        self.counters = counters
        self.slot = slot
        self.kind = None
        self.carrier = None
        self.closed = False
        self.waiting: list = []
        self.error = ""
        self.task = loop.create_task(self._run(mesh, route))

    def _count(self, tx: int, rx: int) -> None:
        if self.slot >= 0 and self.counters is not None:
            self.counters.count(self.slot, tx, rx)

    def send(self, address: str, payload: bytes) -> None:
        if self.closed:
            return
        if self.carrier is None:
            if len(self.waiting) < self.QUEUE_MAX and not self.error:
                self.waiting.append((address, payload))
            return
        if self.kind == "native":
            if self.carrier.send(address, payload):
                self._count(len(payload), 0)
            return
        try:
            frame = encode_frame(address, payload)
        except RelayError:
            return
        _reader, writer = self.carrier
        if writer.is_closing():
            return
        writer.write(frame)
        self._count(len(payload), 0)

    def _deliver(self, address: str, payload: bytes) -> None:
        self._count(0, len(payload))
        owner = self.owner
        if not owner.closed:
            owner.send_fragmented(self.session_id, address, payload)
            owner.want_transmit()

    async def _run(self, mesh, route) -> None:
        try:
            if mesh is None:
                raise OSError("this worker has no outbound peers")
            self.kind, self.carrier = await mesh.open_udp(route)
        except (OSError, ValueError) as exc:
            self.error = str(exc)
            self.waiting.clear()
            log.debug("UDP along %s dropped: %s", route, exc)
            return
        if self.closed:
            self._close_carrier()
            return
        waiting, self.waiting = self.waiting, []
        for address, payload in waiting:
            self.send(address, payload)
        if self.kind == "native":
            while not self.closed:
                try:
                    address, payload = await self.carrier.recv()
                except ConnectionError:
                    return
                self._deliver(address, payload)
            return
        reader, _writer = self.carrier
        frames = FrameReader()
        while not self.closed:
            data = await reader.read(65536)
            if not data:
                return
            try:
                got = frames.feed(data)
            except RelayError as exc:
                log.debug("UDP relay stream: %s", exc)
                self._close_carrier()
                return
            for address, payload in got:
                self._deliver(address, payload)

    def _close_carrier(self) -> None:
        if self.carrier is None:
            return
        if self.kind == "native":
            self.carrier.close()
        else:
            self.carrier[1].close()

    def close(self) -> None:
        self.closed = True
        self.task.cancel()
        self._close_carrier()


class _Replies(asyncio.DatagramProtocol):
    def __init__(self, exit_: "UdpExit"):
        self.exit = exit_

    def datagram_received(self, data, addr):
        self.exit.reply(join_address(addr[0], addr[1]), data)

    def error_received(self, exc):
        log.debug("UDP exit: %s", exc)


class UdpExit(asyncio.Protocol):
    """The end of a UDP relay stream: frames in from the stream, datagrams out of this node's
    socket (one per address family, opened on first use), replies framed back.  A malformed
    frame ends the stream."""

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.frames = FrameReader()
        self.sockets: dict[int, asyncio.DatagramTransport] = {}
        self.names: dict[str, str] = {}
        self.tasks: set = set()
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.frames.feed(data)
        except RelayError as exc:
            log.debug("UDP exit: %s", exc)
            self.transport.close()
            return
        for address, payload in frames:
            task = self.loop.create_task(self._send(address, payload))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _send(self, address: str, payload: bytes) -> None:
        try:
            host, port = split_address(address)
            ip = literal_ip(host)
            if ip is None:
                name = self.names.get(host)
                if name is None:
                    async with asyncio.timeout(RESOLVE_TIMEOUT):
                        infos = await self.loop.getaddrinfo(host, port, type=2)     # SOCK_DGRAM
                    if not infos:
                        return
                    name = self.names[host] = infos[0][4][0]
                ip = literal_ip(name)
            family = 10 if ip.version == 6 else 2
            sock = self.sockets.get(family)
            if sock is None:
                local = ("::", 0) if family == 10 else ("0.0.0.0", 0)
                sock, _ = await self.loop.create_datagram_endpoint(lambda: _Replies(self), local_addr=local)
                if self.closed:
                    sock.close()
                    return
                self.sockets[family] = sock
            sock.sendto(payload, (str(ip), port))
        except (OSError, ValueError, TimeoutError) as exc:
            log.debug("UDP exit: %s: %s", address, exc)

    def reply(self, address: str, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.transport.write(encode_frame(address, payload))
            except RelayError:
                pass

    def connection_lost(self, exc):
        self.closed = True
        for sock in self.sockets.values():
            sock.close()
        for task in self.tasks:
            task.cancel()
