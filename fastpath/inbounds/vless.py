"""The node's VLESS inbound: over TCP+TLS, or WebSocket (plain or TLS).

The request head names the user by UUID (``credentials.py``: the panel's ``vless.id``, or
one derived from the user's auth secret) and the target; the answer ``00 00`` goes back
before the target's first byte, and from then on the connection is the compiled splice
(with the WebSocket frame codec when that is the transport; VLESS adds nothing of its own).

Only TCP is served.  ``flow: xtls-rprx-vision`` is refused where it is configured (config
check, PasarGuard Start): Vision's point is to stop the outer TLS once the inner TLS is
seen, which needs a TLS layer this node can leave in the middle of a stream; asyncio's cannot,
and doing it halfway would mean a client that believes it has Vision and does not.  A request
asking for a flow the inbound does not serve is refused with a log line naming it.
"""
from __future__ import annotations

import logging

from fastpath.inbounds.credentials import CredentialIndex, user_uuid
from fastpath.inbounds.stream_inbound import StreamInbound
from fastpath.inbounds.vless_header import CMD_TCP, MAX_HEAD, RESPONSE, parse_request

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
        if request.command != CMD_TCP:
            log.info("inbound %s: user %s: VLESS command %d (UDP/mux) is not served", self.tag,
                     user_id, request.command)
            conn.close()
            return
        await conn.splice(request.address, user_id, answer=conn.frame(RESPONSE), first=rest)
