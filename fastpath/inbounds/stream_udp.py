"""UDP datagrams carried inside one client stream (Trojan, VLESS, VMess; over TLS or WebSocket).

The stream's framing (``udp_frames``) is read through the transport (``ClientConn.read``: the
WebSocket frame codec when there is one) and the protocol's body codec (VMess); each session
is one ``UdpRelay``, so counting, the user's cap, the kick and the user's exit are those of every
inbound's UDP; replies are framed back on the same stream.

The stream lasts as long as the client keeps it (its end ends the sessions); a kick or the
user's cap ends the sessions and the stream; a malformed frame ends this stream only; with no
datagram either way for ``IDLE_SECONDS`` it is closed.  A reply that finds the stream's write
buffer over ``WRITE_LIMIT`` is dropped: it is UDP, and a client that reads slowly must not make
the node hold its replies.
"""
from __future__ import annotations

import asyncio
import logging
import time

from fastpath.inbounds.udp_frames import MuxFrames
from fastpath.inbounds.udp_relay import IDLE_SECONDS, UdpRelay

log = logging.getLogger("fastpath.inbounds")

WRITE_LIMIT = 1 << 20


class StreamUdp:
    """The UDP sessions of one stream.  ``framing`` is a ``udp_frames`` reader/writer;
    ``destination`` the request's address (for framings whose datagrams name none);
    ``opener``/``sealer`` the protocol's body codecs, ``chunked`` when each body chunk is one
    datagram (VMess UDP)."""

    def __init__(self, conn, user_id: str, framing, destination: str | None, *, opener=None,
                 sealer=None, chunked: bool = False) -> None:
        self.conn = conn
        self.core = conn.inbound.core
        self.tag = self.core.settings.tag
        self.user_id = user_id
        self.framing = framing
        self.destination = destination
        self.opener = opener
        self.sealer = sealer
        self.chunked = chunked
        self.relays: dict[int, UdpRelay] = {}
        self.closed = False
        self.dropped = 0
        peer = conn.writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else ""

    # -- client -> targets ----------------------------------------------------------------------
    async def run(self, first: bytes = b"", answer: bytes = b"") -> None:
        """Serve until the stream ends; ``answer`` (the protocol's response, as it goes on the
        stream) goes to the client first (with a sealer, its prefix, the response header, is
        sent instead); ``first`` is what came after the request head."""
        reason = "the client closed the stream"
        try:
            if self.sealer is not None:
                answer = self.sealer.seal(b"")
            if answer:
                self.conn.writer.write(self.conn.frame(answer))
            if first:
                self._take(first)
            while not self.closed:
                try:
                    async with asyncio.timeout(IDLE_SECONDS):
                        data = await self.conn.read()
                except TimeoutError:
                    if self._idle():
                        reason = "idle"
                        break
                    continue
                if data is None:
                    break
                self._take(data)
                if self.opener is not None and self.opener.ended:
                    break
        except (ValueError, ConnectionError, OSError) as exc:
            reason = f"malformed or broken stream: {exc}"
        finally:
            log.debug("inbound %s: UDP stream of %s ends: %s", self.tag, self.user_id, reason)
            self.close()

    def _take(self, data: bytes) -> None:
        opener = self.opener
        if opener is None:
            units = [data]
        elif self.chunked:
            units = opener.feed_packets(data)
        else:
            units = [opener.feed(data)]
        for unit in units:
            for session, address, payload in self.framing.feed(unit):
                if payload is None:
                    relay = self.relays.pop(session, None)
                    if relay is not None:
                        relay.close("ended by the client")
                    continue
                relay = self._relay(session)
                if relay is not None:
                    relay.send(address or self.destination, payload)
        if isinstance(self.framing, MuxFrames) and self.framing.refused:
            for session in self.framing.refused:
                log.info("inbound %s: user %s: a mux TCP sub-connection (or one past the "
                         "session limit) is not served", self.tag, self.user_id)
                self._write(MuxFrames.end(session, error=True), whole=True)
            self.framing.refused.clear()

    def _relay(self, session: int) -> UdpRelay | None:
        relay = self.relays.get(session)
        if relay is None and not self.closed:
            relay = UdpRelay(self.core, self.user_id, self.peer,
                             lambda address, payload, s=session: self._reply(s, address, payload),
                             lambda r, s=session: self._relay_closed(s, r))
            self.relays[session] = relay
        return relay

    # -- targets -> client ----------------------------------------------------------------------
    def _reply(self, session: int, address: str, payload: bytes) -> None:
        if not payload:
            return                       # nothing to carry (and an empty VMess chunk would end it)
        try:
            self._write(self.framing.wrap(session, address, payload))
        except ValueError as exc:        # an address the framing cannot name, an oversize chunk
            log.debug("inbound %s: a reply from %s dropped: %s", self.tag, address, exc)

    def _write(self, plain: bytes, whole: bool = False) -> None:
        """One framed datagram (or, ``whole``, a control frame that is never dropped) sealed
        and sent."""
        writer = self.conn.writer
        if self.closed or writer.is_closing():
            return
        if not whole and writer.transport.get_write_buffer_size() > WRITE_LIMIT:
            self.dropped += 1
            return
        sealer = self.sealer
        if sealer is not None:
            plain = sealer.seal_packet(plain) if self.chunked else sealer.seal(plain)
        writer.write(self.conn.frame(plain))

    # -- end --------------------------------------------------------------------------------------
    def _idle(self) -> bool:
        now = time.monotonic()
        return all(relay.idle(now) for relay in self.relays.values())

    def _relay_closed(self, session: int, relay: UdpRelay) -> None:
        """A session ended from outside (a kick, the user's cap, the inbound closing): the
        stream goes with it."""
        if self.closed or self.relays.get(session) is not relay:
            return
        del self.relays[session]
        writer = self.conn.writer
        if not writer.is_closing():
            writer.transport.abort()
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        relays, self.relays = self.relays, {}
        for relay in relays.values():
            relay.close("stream ended")
        self.conn.close()
