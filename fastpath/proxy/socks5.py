"""SOCKS5 (RFC 1928) with username/password auth (RFC 1929): the wire and the server handshake.

``Socks5Handshake`` reads a client's greeting, its credentials and its request; a subclass says
whether it asks for credentials (``asks_credentials``) and checks them (``check_credentials``,
whose answer comes back with the request as its ``identity``), then serves the command.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct

from fastpath.mesh.paths import split_address
# (ATYP, address, port) at an offset -> ("host:port", bytes used); ValueError if malformed.  Compiled:
# it runs per request and per SOCKS5/Shadowsocks UDP datagram on bytes from anyone.
from fastpath.inbounds.request_heads import socks_address as decode_address

log = logging.getLogger("fastpath.proxy.socks5")

VERSION = 5
NO_AUTH, USERPASS, NO_ACCEPTABLE = 0x00, 0x02, 0xFF
CMD_CONNECT, CMD_UDP_ASSOCIATE = 1, 3
ATYP_V4, ATYP_DOMAIN, ATYP_V6 = 1, 3, 4
REP_OK, REP_FAILURE, REP_NOT_ALLOWED, REP_HOST_UNREACHABLE, REP_REFUSED = 0, 1, 2, 4, 5
REP_CMD_UNSUPPORTED, REP_ATYP_UNSUPPORTED = 7, 8
HANDSHAKE_TIMEOUT = 10.0
NO_ADDRESS = bytes(2)             # a socket address of family 0: nowhere, until the first packet


def encode_address(address: str) -> bytes:
    """"host:port" as SOCKS5 ATYP + address + port."""
    host, port = split_address(address)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raw = host.encode("idna")[:255]
        return bytes([ATYP_DOMAIN, len(raw)]) + raw + struct.pack(">H", port)
    if ip.version == 4:
        return bytes([ATYP_V4]) + ip.packed + struct.pack(">H", port)
    return bytes([ATYP_V6]) + ip.packed + struct.pack(">H", port)


def reply(code: int, bound: str = "0.0.0.0:0") -> bytes:
    return bytes([VERSION, code, 0]) + encode_address(bound)



class Socks5Handshake:
    """The server side of a SOCKS5 handshake, one instance per listener."""

    asks_credentials = False
    disable_udp = False

    async def check_credentials(self, user: bytes, password: bytes):
        """Who these credentials are (any object), or None to refuse them."""
        return None

    async def _handle(self, reader, writer) -> None:
        """One accepted connection: the handshake (bounded in time), then its command."""
        try:
            cmd, address, identity = await asyncio.wait_for(self._handshake(reader, writer),
                                                            HANDSHAKE_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            log.debug("socks5 handshake failed: %s", exc)
            writer.close()
            return
        if cmd is None:
            writer.close()
        elif cmd == CMD_CONNECT:
            await self._connect(reader, writer, address, identity)
        else:
            await self._udp_associate(reader, writer, identity)

    async def _connect(self, reader, writer, address: str, identity) -> None:
        raise NotImplementedError

    async def _udp_associate(self, reader, writer, identity) -> None:
        writer.write(reply(REP_CMD_UNSUPPORTED))
        writer.close()

    async def _handshake(self, reader, writer):
        """(command, "host:port", identity) of a request to serve, or (None, None, None) when
        the answer (a refusal) is already written; ValueError/IncompleteReadError on malformed
        input.  ``identity`` is what ``check_credentials`` answered (None without auth)."""
        identity = None
        head = await reader.readexactly(2)
        if head[0] != VERSION:
            raise ValueError("not SOCKS5")
        methods = await reader.readexactly(head[1])
        want = USERPASS if self.asks_credentials else NO_AUTH
        if want not in methods:
            writer.write(bytes([VERSION, NO_ACCEPTABLE]))
            return None, None, None
        writer.write(bytes([VERSION, want]))
        if want == USERPASS:
            ver, ulen = await reader.readexactly(2)
            user = await reader.readexactly(ulen)
            (plen,) = await reader.readexactly(1)
            password = await reader.readexactly(plen)
            identity = await self.check_credentials(user, password)
            writer.write(bytes([1, 0 if identity is not None else 1]))
            if identity is None:
                return None, None, None
        ver, cmd, _rsv = await reader.readexactly(3)
        atyp = await reader.readexactly(1)
        if atyp[0] == ATYP_V4:
            rest = await reader.readexactly(6)
        elif atyp[0] == ATYP_V6:
            rest = await reader.readexactly(18)
        elif atyp[0] == ATYP_DOMAIN:
            n = await reader.readexactly(1)
            rest = n + await reader.readexactly(n[0] + 2)
        else:
            writer.write(reply(REP_ATYP_UNSUPPORTED))
            return None, None, None
        address, _ = decode_address(atyp + rest)
        if cmd == CMD_UDP_ASSOCIATE and self.disable_udp:
            writer.write(reply(REP_NOT_ALLOWED))
            return None, None, None
        if cmd not in (CMD_CONNECT, CMD_UDP_ASSOCIATE):
            writer.write(reply(REP_CMD_UNSUPPORTED))
            return None, None, None
        return cmd, address, identity
