"""A local SOCKS5 listener (RFC 1928, RFC 1929) whose traffic goes through a ``Hy2Client``.

CONNECT becomes a proxy stream spliced to the local socket; UDP ASSOCIATE gets a local UDP
socket whose datagrams travel in one Hysteria 2 UDP session for as long as the control
connection lives.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import socket
import struct

from fastpath.hy2.client import ConnectError, Hy2Client, Hy2Error
from fastpath.hy2.client_udp_pump import LocalUdpRelay
from fastpath.hy2.forwarding import open_udp_peer
from fastpath.hy2.udp_endpoint import make_udp_socket
from fastpath.hy2.listener import TcpListener
from fastpath.hy2.udp_relay import join_address, split_address

log = logging.getLogger("fastpath.hy2.socks5")

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


def decode_address(data: bytes, offset: int = 0) -> tuple[str, int]:
    """(address "host:port", bytes used) from ATYP at ``offset``; ValueError if malformed."""
    if len(data) <= offset:
        raise ValueError("truncated address")
    atyp = data[offset]
    if atyp == ATYP_V4:
        end = offset + 1 + 4 + 2
        if len(data) < end:
            raise ValueError("truncated address")
        host = socket.inet_ntop(socket.AF_INET, data[offset + 1:offset + 5])
    elif atyp == ATYP_V6:
        end = offset + 1 + 16 + 2
        if len(data) < end:
            raise ValueError("truncated address")
        host = socket.inet_ntop(socket.AF_INET6, data[offset + 1:offset + 17])
    elif atyp == ATYP_DOMAIN:
        if len(data) < offset + 2:
            raise ValueError("truncated address")
        n = data[offset + 1]
        end = offset + 2 + n + 2
        if len(data) < end or n == 0:
            raise ValueError("truncated address")
        host = data[offset + 2:offset + 2 + n].decode("idna")
    else:
        raise ValueError(f"address type {atyp} not supported")
    (port,) = struct.unpack(">H", data[end - 2:end])
    return join_address(host, port), end - offset


def reply(code: int, bound: str = "0.0.0.0:0") -> bytes:
    return bytes([VERSION, code, 0]) + encode_address(bound)


class Socks5Server(TcpListener):
    def __init__(self, client: Hy2Client, listen: tuple[str, int], *, username: str | None = None,
                 password: str | None = None, disable_udp: bool = False) -> None:
        self.client = client
        self.listen = listen
        self.username = username
        self.password = password
        self.disable_udp = disable_udp

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            cmd, address = await asyncio.wait_for(self._handshake(reader, writer), HANDSHAKE_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            log.debug("socks5 handshake failed: %s", exc)
            writer.close()
            return
        if cmd is None:
            writer.close()
            return
        if cmd == CMD_CONNECT:
            await self._connect(reader, writer, address)
        else:
            await self._udp_associate(reader, writer)

    async def _handshake(self, reader, writer):
        head = await reader.readexactly(2)
        if head[0] != VERSION:
            raise ValueError("not SOCKS5")
        methods = await reader.readexactly(head[1])
        want = USERPASS if self.username is not None else NO_AUTH
        if want not in methods:
            writer.write(bytes([VERSION, NO_ACCEPTABLE]))
            return None, None
        writer.write(bytes([VERSION, want]))
        if want == USERPASS:
            ver, ulen = await reader.readexactly(2)
            user = await reader.readexactly(ulen)
            (plen,) = await reader.readexactly(1)
            password = await reader.readexactly(plen)
            ok = (hmac.compare_digest(user, self.username.encode())
                  and hmac.compare_digest(password, (self.password or "").encode()))
            writer.write(bytes([1, 0 if ok else 1]))
            if not ok:
                return None, None
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
            return None, None
        address, _ = decode_address(atyp + rest)
        if cmd == CMD_UDP_ASSOCIATE and self.disable_udp:
            writer.write(reply(REP_NOT_ALLOWED))
            return None, None
        if cmd not in (CMD_CONNECT, CMD_UDP_ASSOCIATE):
            writer.write(reply(REP_CMD_UNSUPPORTED))
            return None, None
        return cmd, address

    async def _connect(self, reader, writer, address: str) -> None:
        try:
            conn, sid, resp = await self.client._open(address)
        except ConnectError as exc:
            log.info("socks5 CONNECT %s: %s", address, exc)
            writer.write(reply(REP_HOST_UNREACHABLE))
            writer.close()
            return
        except (Hy2Error, OSError, asyncio.TimeoutError) as exc:
            log.info("socks5 CONNECT %s: %s", address, exc)
            writer.write(reply(REP_FAILURE))
            writer.close()
            return
        writer.write(reply(REP_OK))
        self.client.splice_streams(conn, sid, resp, reader, writer)

    async def _udp_associate(self, reader, writer) -> None:
        """A local UDP relay (``LocalUdpRelay``, per packet in C) whose one peer is this
        association's client; its session is reopened if the connection to the server drops."""
        loop = asyncio.get_running_loop()
        sock = make_udp_socket(writer.get_extra_info("sockname")[0], 0)
        kept: list[bytes] = []            # packets read while a session reopens

        async def reopen(key: bytes) -> None:
            try:
                await open_udp_peer(self.client, relay, key, kept)
            except (Hy2Error, OSError, asyncio.TimeoutError) as exc:
                log.info("socks5 UDP ASSOCIATE: %s", exc)
                kept.clear()

        def new_peer(key: bytes, packet: bytes) -> None:
            if len(kept) < 64:
                kept.append(packet)
                if len(kept) == 1:
                    loop.create_task(reopen(key))

        relay = LocalUdpRelay(loop, sock, new_peer, socks=True, encode_address=encode_address,
                              decode_address=decode_address)
        try:
            # The peer's address is learnt from its packets (``NO_ADDRESS`` until the first).
            await open_udp_peer(self.client, relay, NO_ADDRESS, kept)
        except (Hy2Error, OSError, asyncio.TimeoutError) as exc:
            log.info("socks5 UDP ASSOCIATE: %s", exc)
            relay.close()
            writer.write(reply(REP_FAILURE))
            writer.close()
            return
        relay.start()
        bound = sock.getsockname()
        writer.write(reply(REP_OK, join_address(bound[0], bound[1])))
        try:
            while await reader.read(4096):     # the association lasts while TCP does
                pass
        except ConnectionError:
            pass
        finally:
            relay.close()
            writer.close()
