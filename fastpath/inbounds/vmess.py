"""The node's VMess inbound (AEAD header, alterId 0) over TCP or WebSocket, TLS optional.

The head (``vmess_header.py``) names the user by whose key opens its auth id, then the body
is the compiled per-chunk codec (``vmess_chunks.pyx``) in the splice: ``aes-128-gcm``,
``chacha20-poly1305`` or ``none``, with the chunk options (masking, padding, authenticated
length) the client chose.  TCP is spliced; UDP (command ``2``: one datagram per chunk, to the
request's address or, with packetaddr, each datagram's own) and XUDP (command ``3``, Mux.Cool
UDP sessions in the body) are ``stream_udp.py``'s.

A head no user's key opens, a stale timestamp or a replayed auth id gets no answer: the
connection is read and dropped until the client goes (at most ``DRAIN_SECONDS``), as the
reference servers do, so a prober learns nothing from the timing of a close.
"""
from __future__ import annotations

import asyncio
import logging

from fastpath.inbounds.credentials import CredentialIndex, user_uuid
from fastpath.inbounds.shadowsocks import SaltMemory
from fastpath.inbounds.stream_inbound import StreamInbound
from fastpath.inbounds.stream_udp import StreamUdp
from fastpath.inbounds.udp_frames import Datagrams, MuxFrames, is_packetaddr
from fastpath.inbounds.vmess_header import (CMD_MUX, CMD_UDP, MAX_HEADER, PREAMBLE, TAG,
                                            VmessUsers, body_codecs, cmd_key, parse_request,
                                            response_header)

log = logging.getLogger("fastpath.inbounds.vmess")

DRAIN_SECONDS = 30.0


class VmessInbound(StreamInbound):
    protocol = "vmess"
    max_head = PREAMBLE + MAX_HEADER + TAG

    def __init__(self, core) -> None:
        super().__init__(core)
        self.ids = CredentialIndex(core.users, lambda u: user_uuid(u, "vmess"))
        self.auth_ids = SaltMemory()
        self._users_of = None
        self._users = VmessUsers([])

    def users(self) -> VmessUsers:
        table = self.ids.table()
        if table is not self._users_of:
            self._users = VmessUsers([(uid, cmd_key(u)) for u, uid in table.items()])
            self._users_of = table
        return self._users

    def parse(self, head: bytes):
        return parse_request(head, self.users(), self.auth_ids.seen)

    def bad_head(self, conn, head: bytes, why: str) -> None:
        log.debug("inbound %s: draining a connection: %s", self.tag, why)
        asyncio.ensure_future(self._drain(conn))

    async def _drain(self, conn) -> None:
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                while await conn.reader.read(65536):
                    pass
        except (asyncio.TimeoutError, ConnectionError):
            pass
        conn.close()

    async def serve(self, request, rest: bytes, conn) -> None:
        user_id = request.user_id
        if not self.admit(user_id):
            conn.close()
            return
        opener, sealer = body_codecs(request)
        if request.command in (CMD_UDP, CMD_MUX):
            await self._serve_udp(request, rest, conn, opener, sealer)
            return
        answer = b""
        if opener is None:                       # "none" without chunks: the raw stream
            answer = conn.frame(response_header(request))
            first = rest
        else:
            try:
                first = opener.feed(rest) if rest else b""
            except ValueError as exc:
                log.debug("inbound %s: %s: bad first chunk: %s", self.tag, user_id, exc)
                conn.close()
                return
        await conn.splice(request.address, user_id, answer=answer, first=first, opener=opener,
                          sealer=sealer)

    async def _serve_udp(self, request, rest: bytes, conn, opener, sealer) -> None:
        if request.command == CMD_MUX:
            framing, chunked = MuxFrames(), False
        elif opener is None:
            log.info("inbound %s: user %s: VMess UDP without the chunk stream has no datagram "
                     "boundaries; not served", self.tag, request.user_id)
            conn.close()
            return
        else:
            framing, chunked = Datagrams(packetaddr=is_packetaddr(request.address)), True
        answer = response_header(request) if opener is None else b""
        await StreamUdp(conn, request.user_id, framing, request.address, opener=opener,
                        sealer=sealer, chunked=chunked).run(rest, answer=answer)
