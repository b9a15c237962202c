"""What the VLESS, VMess and Trojan-over-WebSocket inbounds share: the transport under the
protocol (plain TCP, TLS, WebSocket over either), reading the protocol's request head through
it, the user check and the hand-over to the compiled splice with the right codecs.

The protocol module says how to parse its head (``parse``) and what to do with it
(``serve``); the bytes of the client are read here, through the WebSocket frame codec when
there is one, and that same codec object goes on into the splice, so a frame cut in two by
the head's end goes on where it stopped.
"""
from __future__ import annotations

import asyncio
import logging

from fastpath.inbounds import ws_transport
from fastpath.inbounds.credentials import admit
from fastpath.inbounds.node_proxies import InboundCore, Refused
from fastpath.inbounds.ws_frames import CodecChain, WsReader, WsWriter, pong

log = logging.getLogger("fastpath.inbounds")

HEAD_SECONDS = 30.0
READ = 64 * 1024
SING_MUX_HOST = "sp.mux.sing-box.arpa"      # sing-box's multiplex (sing-mux) carrier address


def is_sing_mux(address: str) -> bool:
    """Whether a TCP request is sing-box's ``multiplex`` carrier, which is not served: it is
    closed with a log line rather than dialed (the name does not resolve anyway)."""
    return address.rpartition(":")[0] == SING_MUX_HOST


class StreamInbound:
    """Base of one listener: ``parse(head)`` -> (request, used) | None (more) | ValueError;
    ``serve(request, rest, conn)`` handles one request."""

    protocol = "?"
    max_head = 4096

    def __init__(self, core: InboundCore) -> None:
        self.core = core
        self.settings = core.settings
        self.tag = core.settings.tag

    # -- to be given by the protocol --------------------------------------------------------
    def parse(self, head: bytes):
        raise NotImplementedError

    async def serve(self, request, rest: bytes, conn: "ClientConn") -> None:
        raise NotImplementedError

    def bad_head(self, conn: "ClientConn", head: bytes, why: str) -> None:
        """A head that is no request of a user: closed by default."""
        log.debug("inbound %s: %s", self.tag, why)
        conn.close()

    # -- the connection ---------------------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = ClientConn(self, reader, writer)
        head = b""
        if self.settings.transport == "ws":
            early = await ws_transport.accept(reader, writer, path=self.settings.ws_path,
                                              host=self.settings.ws_host, tag=self.tag)
            if early is None:
                return
            conn.ws_in, conn.ws_out = WsReader(), WsWriter()
            # Pings are answered on the socket itself (before and during the splice: writes
            # happen on the loop's thread, one whole frame each, so never inside a data frame).
            conn.ws_in.on_ping = lambda payload, w=writer: w.transport.write(pong(payload))
            head = early + conn.take_buffered()
        try:
            async with asyncio.timeout(HEAD_SECONDS):
                while True:
                    try:
                        parsed = self.parse(head)
                    except ValueError as exc:
                        self.bad_head(conn, head, str(exc))
                        return
                    if parsed is not None:
                        break
                    if len(head) > self.max_head:
                        self.bad_head(conn, head, "request head too long")
                        return
                    more = await conn.read()
                    if more is None:
                        conn.close()
                        return
                    head += more
        except (asyncio.TimeoutError, ConnectionError, ValueError) as exc:
            log.debug("inbound %s: no request head: %s", self.tag, exc or "timeout")
            conn.close()
            return
        request, used = parsed
        try:
            await self.serve(request, head[used:], conn)
        except (ValueError, ConnectionError) as exc:      # a malformed request ends only itself
            log.debug("inbound %s: request refused: %s", self.tag, exc)
            conn.close()

    def admit(self, user_id: str | None) -> bool:
        if user_id is None:
            return False
        refused = admit(self.core.users, user_id, self.tag)
        if refused:
            log.info("inbound %s: user %s refused: %s", self.tag, user_id, refused)
            return False
        return True


class ClientConn:
    """The accepted socket, seen through its transport."""

    def __init__(self, inbound: StreamInbound, reader, writer) -> None:
        self.inbound = inbound
        self.reader = reader
        self.writer = writer
        self.ws_in: WsReader | None = None
        self.ws_out: WsWriter | None = None

    def take_buffered(self) -> bytes:
        raw = bytes(self.reader._buffer)
        self.reader._buffer.clear()
        return self.ws_in.feed(raw) if self.ws_in is not None and raw else raw

    async def read(self) -> bytes | None:
        raw = await self.reader.read(READ)
        if not raw:
            return None
        return self.ws_in.feed(raw) if self.ws_in is not None else raw

    def frame(self, data: bytes) -> bytes:
        """Bytes of ours as they go on the wire (in a frame over WebSocket)."""
        return self.ws_out.seal(data) if self.ws_out is not None and data else data

    def codecs(self, opener=None, sealer=None):
        """The splice's (up, down) codecs: the transport's around the protocol's."""
        up, down = opener, sealer
        if self.ws_in is not None:
            up = self.ws_in if up is None else CodecChain(self.ws_in, up)
            down = self.ws_out if down is None else CodecChain(self.ws_out, down)
        return up, down

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    async def splice(self, address: str, user_id: str, *, answer: bytes = b"", first: bytes = b"",
                     opener=None, sealer=None) -> None:
        """Dial ``address`` for ``user_id`` and relay: ``answer`` (already framed) goes to the
        client first, ``first`` (plaintext) to the target."""
        core = self.inbound.core
        if is_sing_mux(address):
            log.info("inbound %s: user %s: sing-box multiplex is not served (turn multiplex off "
                     "in the client)", self.inbound.tag, user_id)
            self.close()
            return
        up, down = self.codecs(opener, sealer)
        try:
            await core.open_and_splice(self.reader, self.writer, address, user_id, answer=answer,
                                       prefix=first, up_codec=up, down_codec=down)
        except (Refused, OSError, ValueError, asyncio.TimeoutError) as exc:
            log.debug("inbound %s: %s for %s: %s", self.inbound.tag, address, user_id, exc)
            self.close()
