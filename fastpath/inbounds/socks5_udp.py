"""SOCKS5 UDP ASSOCIATE (RFC 1928 section 7) for the node's SOCKS5 inbound.

The association gets its own UDP socket on the address the client reached the TCP listener on
(port chosen by the kernel), named in the reply.  Datagrams are ``RSV (2) | FRAG (1) | address
| data``; fragments (FRAG != 0) are dropped, as most servers do.  Only the client's host may
use the socket, and the first datagram fixes its port (the client's request rarely knows it).
The association lasts while its TCP connection is open; a kick or the user's cap ends both.
"""
from __future__ import annotations

import asyncio
import logging

from fastpath.mesh.paths import join_address
from fastpath.inbounds.udp_relay import UdpRelay
from fastpath.proxy.socks5 import REP_FAILURE, REP_OK, decode_address, encode_address, reply

log = logging.getLogger("fastpath.inbounds")


def parse_datagram(data: bytes) -> tuple[str, bytes] | None:
    """(target address, payload) of a client datagram, None when it is not one we relay."""
    if len(data) < 4 or data[0] or data[1] or data[2]:
        return None
    try:
        address, used = decode_address(data, 3)
    except (ValueError, UnicodeError):
        return None
    return address, data[3 + used:]


def wrap_reply(address: str, payload: bytes) -> bytes:
    return bytes(3) + encode_address(address) + payload


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, association: "Association") -> None:
        self.association = association

    def datagram_received(self, data, addr) -> None:
        self.association.from_client(data, addr)


class Association:
    def __init__(self, core, writer, user_id) -> None:
        self.core = core
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.client_host = peer[0] if peer else None
        self.client_addr = None
        self.transport = None
        self.relay = UdpRelay(core, user_id, f"{peer[0]}:{peer[1]}" if peer else "", self.to_client,
                              self._relay_closed)

    def from_client(self, data: bytes, addr) -> None:
        if addr[0] != self.client_host:
            return                                  # someone else's datagram
        if self.client_addr is None:
            self.client_addr = addr
        elif addr != self.client_addr:
            return
        parsed = parse_datagram(data)
        if parsed is not None:
            self.relay.send(*parsed)

    def to_client(self, address: str, payload: bytes) -> None:
        if self.client_addr is not None and self.transport is not None:
            self.transport.sendto(wrap_reply(address, payload), self.client_addr)

    def _relay_closed(self, _relay) -> None:
        if not self.writer.is_closing():
            self.writer.transport.abort()

    def close(self) -> None:
        self.relay.close("association ended")
        if self.transport is not None:
            self.transport.close()


async def serve_association(core, reader, writer, identity) -> None:
    sockname = writer.get_extra_info("sockname")
    host = sockname[0] if sockname else "0.0.0.0"
    association = Association(core, writer, identity)
    try:
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Endpoint(association), local_addr=(host, 0))
    except OSError as exc:
        log.debug("inbound %s: UDP ASSOCIATE: %s", core.settings.tag, exc)
        association.close()
        writer.write(reply(REP_FAILURE))
        writer.close()
        return
    association.transport = transport
    bound = transport.get_extra_info("sockname")
    writer.write(reply(REP_OK, join_address(bound[0], bound[1])))
    try:
        while await reader.read(4096):               # nothing is expected; EOF ends it
            pass
    except (ConnectionError, OSError):
        pass
    finally:
        association.close()
        writer.close()

