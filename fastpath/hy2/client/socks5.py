"""A local SOCKS5 listener (RFC 1928, RFC 1929) whose traffic goes through a ``Hy2Client``.

CONNECT becomes a proxy stream spliced to the local socket; UDP ASSOCIATE gets a local UDP
socket whose datagrams travel in one Hysteria 2 UDP session for as long as the control
connection lives.
"""
from __future__ import annotations

import asyncio
import logging

from fastpath.hy2.client.client import ConnectError, Hy2Client, Hy2Error
from fastpath.hy2.client.client_udp_pump import LocalUdpRelay
from fastpath.hy2.client.forwarding import open_udp_peer
from fastpath.hy2.quic.udp_endpoint import make_udp_socket
from fastpath.hy2.client.listener import TcpListener
from fastpath.mesh.paths import join_address
from fastpath.proxy.credentials import fixed_credentials
from fastpath.proxy.socks5 import (NO_ADDRESS, REP_FAILURE, REP_HOST_UNREACHABLE, REP_OK,
                                   Socks5Handshake, decode_address, encode_address, reply)

log = logging.getLogger("fastpath.hy2.socks5")


class Socks5Server(Socks5Handshake, TcpListener):
    def __init__(self, client: Hy2Client, listen: tuple[str, int], *, username: str | None = None,
                 password: str | None = None, disable_udp: bool = False) -> None:
        self.client = client
        self.listen = listen
        self.disable_udp = disable_udp
        self.asks_credentials = username is not None
        if username is not None:
            self.check_credentials = fixed_credentials(username, password)

    async def _connect(self, reader, writer, address: str, identity) -> None:
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

    async def _udp_associate(self, reader, writer, identity) -> None:
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
