"""The VLESS request and response headers (no encryption of their own: TLS or the transport
carries them).

Request: version ``0``, the user's UUID (16 bytes), addons (one length byte, then protobuf:
field 1 is the flow name), command (``1`` TCP, ``2`` UDP, ``3`` mux), port (2 bytes), address
type (``1`` IPv4, ``2`` domain, ``3`` IPv6) and address; the client's data follows at once.
Response: version ``0`` and an empty addons length, before the first byte from the target.

Parsed in C (``request_heads.pyx``): it runs once per connection on bytes from anyone; the
relayed bytes after it never come back here.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

# The port-then-address field (VLESS, VMess, their UDP frames) at an offset -> ("host:port",
# end), None if more bytes are needed, ValueError if malformed; compiled, as is the request.
from fastpath.inbounds.request_heads import vless_address as decode_address
from fastpath.inbounds.request_heads import vless_request

VERSION = 0
CMD_TCP, CMD_UDP, CMD_MUX = 1, 2, 3
ATYP_V4, ATYP_DOMAIN, ATYP_V6 = 1, 2, 3
RESPONSE = b"\x00\x00"
MAX_HEAD = 1 + 16 + 1 + 255 + 1 + 2 + 1 + 1 + 255


@dataclass(frozen=True)
class VlessRequest:
    uuid: bytes
    flow: str
    command: int
    address: str | None     # "host:port"; None for mux


def parse_request(head: bytes) -> tuple[VlessRequest, int] | None:
    """(request, bytes used) of a VLESS request head; None when more bytes are needed;
    ValueError when it is not one."""
    found = vless_request(head)
    if found is None:
        return None
    uuid, flow, command, address, end = found
    return VlessRequest(uuid, flow, command, address), end


def encode_request(user: bytes, address: str, command: int = CMD_TCP, flow: str = "") -> bytes:
    """A request head (for tests and a client)."""
    from fastpath.mesh.paths import split_address
    host, port = split_address(address)
    addons = b""
    if flow:
        raw = flow.encode()
        addons = b"\x0a" + bytes([len(raw)]) + raw
    return (bytes([VERSION]) + user + bytes([len(addons)]) + addons + bytes([command])
            + encode_port_address(host, port))


def encode_port_address(host: str, port: int) -> bytes:
    for family, atyp in ((socket.AF_INET, ATYP_V4), (socket.AF_INET6, ATYP_V6)):
        try:
            return struct.pack(">HB", port, atyp) + socket.inet_pton(family, host)
        except OSError:
            pass
    raw = host.encode("idna")
    return struct.pack(">HBB", port, ATYP_DOMAIN, len(raw)) + raw
