"""The pure-Python request-head parsers the compiled ``fastpath.inbounds.request_heads``
replaced, kept as the oracle its tests compare it with (``tests/inbounds/test_request_heads.py``):
SOCKS5's ``decode_address`` (``fastpath/proxy/socks5.py``), VLESS's ``decode_address`` and
``parse_request`` (``fastpath/inbounds/vless_header.py``, the request as a tuple) and Trojan's
``parse_request`` (``fastpath/inbounds/trojan.py``), as they were; and Trojan's hex check of
the hash (``_could_be_hash``, now ``bytes.translate``)."""
from __future__ import annotations

import socket
import struct

from fastpath.mesh.paths import join_address

ATYP_V4, ATYP_DOMAIN, ATYP_V6 = 1, 2, 3             # VLESS's address types
SOCKS_V4, SOCKS_DOMAIN, SOCKS_V6 = 1, 3, 4          # SOCKS5's (and Trojan's)
CMD_TCP, CMD_UDP, CMD_MUX = 1, 2, 3
VERSION = 0
HASH_LEN = 56


def socks_address(data: bytes, offset: int = 0) -> tuple[str, int]:
    """(address "host:port", bytes used) from ATYP at ``offset``; ValueError if malformed."""
    if len(data) <= offset:
        raise ValueError("truncated address")
    atyp = data[offset]
    if atyp == SOCKS_V4:
        end = offset + 1 + 4 + 2
        if len(data) < end:
            raise ValueError("truncated address")
        host = socket.inet_ntop(socket.AF_INET, data[offset + 1:offset + 5])
    elif atyp == SOCKS_V6:
        end = offset + 1 + 16 + 2
        if len(data) < end:
            raise ValueError("truncated address")
        host = socket.inet_ntop(socket.AF_INET6, data[offset + 1:offset + 17])
    elif atyp == SOCKS_DOMAIN:
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


def vless_address(data: bytes, offset: int) -> tuple[str, int] | None:
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


def vless_request(head: bytes):
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
        return (user, flow, command, None, at + 1)
    if command not in (CMD_TCP, CMD_UDP):
        raise ValueError(f"command {command}")
    found = vless_address(head, at + 1)
    if found is None:
        return None
    address, end = found
    return (user, flow, command, address, end)


def trojan_request(head: bytes):
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
    if atyp == SOCKS_V4:
        size = 4
    elif atyp == SOCKS_V6:
        size = 16
    elif atyp == SOCKS_DOMAIN:
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
    address, _used = socks_address(head, HASH_LEN + 3)
    if head[end:end + 2] != b"\r\n":
        raise ValueError("no CRLF after the address")
    return head[:HASH_LEN], cmd, address, end + 2


def could_be_hash(prefix: bytes) -> bool:
    return all(c in b"0123456789abcdef" for c in prefix[:HASH_LEN])
