"""The VLESS request and response headers (no encryption of their own: TLS or the transport
carries them).

Request: version ``0``, the user's UUID (16 bytes), addons (one length byte, then protobuf:
field 1 is the flow name), command (``1`` TCP, ``2`` UDP, ``3`` mux), port (2 bytes), address
type (``1`` IPv4, ``2`` domain, ``3`` IPv6) and address; the client's data follows at once.
Response: version ``0`` and an empty addons length, before the first byte from the target.

Parsed in Python: it runs once per connection and is a handful of slices; the relayed bytes
after it never come back here.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from fastpath.hy2.udp_relay import join_address

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


def parse_flow(addons: bytes) -> str:
    """The flow of the addons protobuf (field 1, a string); ValueError if malformed."""
    i, flow = 0, ""
    while i < len(addons):
        key = addons[i]
        i += 1
        field, wire = key >> 3, key & 7
        if wire == 2:
            length, i = _varint(addons, i)
            if i + length > len(addons):
                raise ValueError("addons truncated")
            if field == 1:
                flow = addons[i:i + length].decode("utf-8", "replace")
            i += length
        elif wire == 0:
            _value, i = _varint(addons, i)
        else:
            raise ValueError(f"addons wire type {wire}")
    return flow


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 28:
            raise ValueError("addons varint truncated")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def decode_address(data: bytes, offset: int) -> tuple[str, int] | None:
    """("host:port", end) of a port-then-address field at ``offset``; None if more bytes are
    needed; ValueError if malformed."""
    if len(data) < offset + 3:
        return None
    (port,) = struct.unpack_from(">H", data, offset)
    atyp = data[offset + 2]
    at = offset + 3
    if atyp == ATYP_V4:
        if len(data) < at + 4:
            return None
        return join_address(socket.inet_ntop(socket.AF_INET, data[at:at + 4]), port), at + 4
    if atyp == ATYP_V6:
        if len(data) < at + 16:
            return None
        return join_address(socket.inet_ntop(socket.AF_INET6, data[at:at + 16]), port), at + 16
    if atyp == ATYP_DOMAIN:
        if len(data) < at + 1:
            return None
        n = data[at]
        if n == 0:
            raise ValueError("empty domain name")
        if len(data) < at + 1 + n:
            return None
        try:
            host = data[at + 1:at + 1 + n].decode("idna")
        except UnicodeError:
            raise ValueError("domain name is not valid IDNA") from None
        return join_address(host, port), at + 1 + n
    raise ValueError(f"address type {atyp}")


def parse_request(head: bytes) -> tuple[VlessRequest, int] | None:
    """(request, bytes used) of a VLESS request head; None when more bytes are needed;
    ValueError when it is not one."""
    if len(head) < 18:
        return None
    if head[0] != VERSION:
        raise ValueError(f"version {head[0]}")
    user = bytes(head[1:17])
    n = head[17]
    if len(head) < 18 + n + 1:
        return None
    flow = parse_flow(bytes(head[18:18 + n]))
    at = 18 + n
    command = head[at]
    if command == CMD_MUX:
        return VlessRequest(user, flow, command, None), at + 1
    if command not in (CMD_TCP, CMD_UDP):
        raise ValueError(f"command {command}")
    found = decode_address(head, at + 1)
    if found is None:
        return None
    address, end = found
    return VlessRequest(user, flow, command, address), end


def encode_request(user: bytes, address: str, command: int = CMD_TCP, flow: str = "") -> bytes:
    """A request head (for tests and a client)."""
    from fastpath.hy2.udp_relay import split_address
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
