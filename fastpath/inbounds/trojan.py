"""The node's Trojan inbound (TCP over TLS), with the fallback of anything that is not Trojan.

After the TLS handshake a Trojan client sends ``hex(SHA-224(password))`` (56 bytes), CRLF, a
command byte, a SOCKS5-form address, CRLF, then its data.  The password is a node user's auth
secret, so the hash names the user.  A connection whose first bytes are not a known user's
hash (a browser, a prober) is spliced as it came, bytes already read included, to the
inbound's ``fallback`` address (an ordinary web site), as Trojan servers do, so the port looks
like that site; with no fallback it is closed.  CONNECT (``1``) is spliced; UDP ASSOCIATE
(``3``) carries datagrams framed in the stream (``udp_frames.TrojanPackets``,
``stream_udp.py``).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging

from fastpath.inbounds.credentials import admit, user_password
from fastpath.inbounds.node_proxies import InboundCore, Refused
from fastpath.inbounds.stream_inbound import is_sing_mux
from fastpath.proxy.socks5 import ATYP_DOMAIN, ATYP_V4, ATYP_V6, decode_address

log = logging.getLogger("fastpath.inbounds.trojan")

HASH_LEN = 56
CMD_CONNECT = 1
CMD_UDP = 3
HEAD_SECONDS = 30.0
MAX_HEAD = HASH_LEN + 2 + 1 + 1 + 1 + 255 + 2 + 2


def password_hash(secret: str) -> bytes:
    return hashlib.sha224(secret.encode()).hexdigest().encode()


def parse_request(head: bytes):
    """(user hash, command, address, bytes used) of a Trojan request head; None when more
    bytes are needed; ValueError when it is not one."""
    n = len(head)
    if n < HASH_LEN + 2:
        return None
    if head[HASH_LEN:HASH_LEN + 2] != b"\r\n":
        raise ValueError("no CRLF after the password hash")
    if n < HASH_LEN + 4:
        return None
    cmd, atyp = head[HASH_LEN + 2], head[HASH_LEN + 3]
    if atyp == ATYP_V4:
        size = 4
    elif atyp == ATYP_V6:
        size = 16
    elif atyp == ATYP_DOMAIN:
        if n < HASH_LEN + 5:
            return None
        if not head[HASH_LEN + 4]:
            raise ValueError("empty domain name")
        size = 1 + head[HASH_LEN + 4]
    else:
        raise ValueError(f"address type {atyp}")
    end = HASH_LEN + 4 + size + 2               # after the port
    if n < end + 2:
        return None
    address, _used = decode_address(head, HASH_LEN + 3)
    if head[end:end + 2] != b"\r\n":
        raise ValueError("no CRLF after the address")
    return head[:HASH_LEN], cmd, address, end + 2


def _could_be_hash(prefix: bytes) -> bool:
    return all(c in b"0123456789abcdef" for c in prefix[:HASH_LEN])


class TrojanInbound:
    """One Trojan listener: the users' hashes and the fallback."""

    def __init__(self, core: InboundCore, fallback: tuple[str, int] | None) -> None:
        self.core = core
        self.fallback = fallback
        self._hashes_of = None
        self._hashes: dict[bytes, str] = {}

    def hashes(self) -> dict[bytes, str]:
        """SHA-224 hex of every user's Trojan password (credentials.py: the panel's, or the
        auth secret) -> the user id, rebuilt when the table changes."""
        table = self.core.users.by_id
        if table is not self._hashes_of:
            self._hashes = {password_hash(password): user.id for user in table.values()
                            if (password := user_password(user, "trojan"))}
            self._hashes_of = table
        return self._hashes

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b""
        parsed = None
        try:
            async with asyncio.timeout(HEAD_SECONDS):
                # Read until the head is whole, or it cannot be a user's request (then every
                # byte read goes to the fallback, so a short HTTP request is not kept waiting).
                while _could_be_hash(head) and len(head) <= MAX_HEAD:
                    if len(head) >= HASH_LEN and head[:HASH_LEN] not in self.hashes():
                        break
                    parsed = parse_request(head)
                    if parsed is not None:
                        break
                    chunk = await reader.read(MAX_HEAD)
                    if not chunk:
                        writer.close()
                        return
                    head += chunk
        except ValueError:
            parsed = None
        except (asyncio.TimeoutError, ConnectionError):
            writer.close()
            return
        if parsed is None:
            await self._fall_back(reader, writer, head)
            return
        user_hash, cmd, address, used = parsed
        core = self.core
        user_id = self.hashes()[user_hash]
        refused = admit(core.users, user_id, core.settings.tag)
        if refused:
            log.info("inbound %s: user %s refused: %s", core.settings.tag, user_id, refused)
            writer.close()
            return
        if cmd == CMD_UDP:
            await _serve_udp(self, reader, writer, user_id, head[used:])
            return
        if cmd != CMD_CONNECT:
            log.debug("inbound %s: command %d not served", core.settings.tag, cmd)
            writer.close()
            return
        if is_sing_mux(address):
            log.info("inbound %s: user %s: sing-box multiplex is not served", core.settings.tag,
                     user_id)
            writer.close()
            return
        reader._buffer[:0] = head[used:]        # the data that came with the request
        try:
            await core.open_and_splice(reader, writer, address, user_id, answer=b"")
        except (Refused, OSError, ValueError, asyncio.TimeoutError) as exc:
            log.debug("inbound %s: %s for %s: %s", core.settings.tag, address, user_id, exc)
            writer.close()

    async def _fall_back(self, reader, writer, head: bytes) -> None:
        if self.fallback is None:
            writer.close()
            return
        host, port = self.fallback
        try:
            await self.core.open_and_splice(reader, writer, f"{host}:{port}", None, answer=b"",
                                            prefix=head, routed=False)
        except (OSError, asyncio.TimeoutError) as exc:
            log.debug("inbound %s: fallback %s:%d: %s", self.core.settings.tag, host, port, exc)
            writer.close()


async def _serve_udp(inbound: TrojanInbound, reader, writer, user_id: str, rest: bytes) -> None:
    from fastpath.inbounds.stream_inbound import ClientConn
    from fastpath.inbounds.stream_udp import StreamUdp
    from fastpath.inbounds.udp_frames import TrojanPackets
    await StreamUdp(ClientConn(inbound, reader, writer), user_id, TrojanPackets(), None).run(rest)
