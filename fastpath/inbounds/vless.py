"""The node's VLESS inbound: over TCP+TLS, or WebSocket (plain or TLS).

The request head names the user by UUID (``credentials.py``: the panel's ``vless.id``, or
one derived from the user's auth secret) and the target; the answer ``00 00`` goes back
before the target's first byte, and from then on the connection is the compiled splice
(with the WebSocket frame codec when that is the transport; VLESS adds nothing of its own).

TCP is spliced; UDP (command ``2``: length-prefixed datagrams to the request's address, or
to each datagram's own with packetaddr) and XUDP (command ``3``, Mux.Cool carrying UDP
sessions: sing-box's default for VLESS UDP) are ``stream_udp.py``'s; a mux TCP sub-connection
is refused with an error end frame.

``flow: xtls-rprx-vision`` is refused where it is configured (config
check, PasarGuard Start): Vision's point is to stop the outer TLS once the inner TLS is
seen, which needs a TLS layer this node can leave in the middle of a stream; asyncio's cannot,
and doing it halfway would mean a client that believes it has Vision and does not.  A request
asking for a flow the inbound does not serve is refused with a log line naming it.
"""
from __future__ import annotations

import logging

from fastpath.inbounds.credentials import CredentialIndex, user_uuid
from fastpath.inbounds.stream_inbound import StreamInbound
from fastpath.inbounds.stream_udp import StreamUdp
from fastpath.inbounds.udp_frames import LengthPackets, MuxFrames, is_packetaddr
from fastpath.inbounds.vless_header import CMD_MUX, CMD_UDP, MAX_HEAD, RESPONSE, parse_request

log = logging.getLogger("fastpath.inbounds.vless")


class VlessInbound(StreamInbound):
    protocol = "vless"
    max_head = MAX_HEAD

    def __init__(self, core) -> None:
        super().__init__(core)
        self.ids = CredentialIndex(core.users, lambda u: user_uuid(u, "vless"))

    def parse(self, head: bytes):
        return parse_request(head)

    async def serve(self, request, rest: bytes, conn) -> None:
        user_id = self.ids.lookup(request.uuid)
        if user_id is None:
            log.info("inbound %s: unknown VLESS id", self.tag)
            conn.close()
            return
        if not self.admit(user_id):
            conn.close()
            return
        if request.flow:
            log.info("inbound %s: user %s asks for flow %r, which this inbound does not serve",
                     self.tag, user_id, request.flow)
            conn.close()
            return
        if request.command in (CMD_UDP, CMD_MUX):
            framing = (MuxFrames() if request.command == CMD_MUX
                       else LengthPackets(packetaddr=is_packetaddr(request.address)))
            await StreamUdp(conn, user_id, framing, request.address).run(rest, answer=RESPONSE)
            return
        await conn.splice(request.address, user_id, answer=conn.frame(RESPONSE), first=rest)
