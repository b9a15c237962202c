"""Trojan over WebSocket (plain or TLS): the Trojan request inside the WebSocket stream.

Same head and users as ``trojan.py``; what is not a user's request is closed (the fallback to
a web site belongs to Trojan over bare TLS, where a browser could land: over WebSocket the
upgrade request's path and host already decided).  UDP (command ``3``) as over TLS
(``stream_udp.py``).
"""
from __future__ import annotations

from fastpath.inbounds.credentials import CredentialIndex, user_password
from fastpath.inbounds.stream_inbound import StreamInbound
from fastpath.inbounds.stream_udp import StreamUdp
from fastpath.inbounds.trojan import CMD_CONNECT, CMD_UDP, MAX_HEAD, parse_request, password_hash
from fastpath.inbounds.udp_frames import TrojanPackets


class TrojanWsInbound(StreamInbound):
    protocol = "trojan"
    max_head = MAX_HEAD

    def __init__(self, core) -> None:
        super().__init__(core)
        self.hashes = CredentialIndex(core.users, _hash_of)

    def parse(self, head: bytes):
        parsed = parse_request(head)
        return None if parsed is None else (parsed, parsed[3])

    async def serve(self, request, rest: bytes, conn) -> None:
        user_hash, cmd, address, _used = request
        user_id = self.hashes.lookup(bytes(user_hash))
        if not self.admit(user_id) or cmd not in (CMD_CONNECT, CMD_UDP):
            conn.close()
            return
        if cmd == CMD_UDP:
            await StreamUdp(conn, user_id, TrojanPackets(), None).run(rest)
            return
        await conn.splice(address, user_id, first=rest)


def _hash_of(user):
    password = user_password(user, "trojan")
    return password_hash(password) if password else None
