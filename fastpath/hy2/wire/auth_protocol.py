"""The HTTP/3 exchange that authenticates a Hysteria 2 connection, as headers in and out.

The client POSTs to ``https://hysteria/auth``; the server answers status 233 with its UDP
support and receive rate.  Everything else is an ordinary HTTP/3 request, served by the
masquerade, so a prober sees a plain web server.
"""
from __future__ import annotations

import os

AUTH_STATUS = 233
AUTHORITY = b"hysteria"
PATH = b"/auth"
HEADER_AUTH = b"hysteria-auth"
HEADER_CC_RX = b"hysteria-cc-rx"
HEADER_PADDING = b"hysteria-padding"
HEADER_UDP = b"hysteria-udp"
PADDING_RANGE = (256, 2048)          # 256..2047 characters

_ALPHABET = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

Headers = list[tuple[bytes, bytes]]


def padding() -> bytes:
    """256..2047 random characters of [a-zA-Z0-9]."""
    low, high = PADDING_RANGE
    raw = os.urandom(2 + high)
    length = low + int.from_bytes(raw[:2], "big") % (high - low)
    return bytes(_ALPHABET[b % 62] for b in raw[2:2 + length])


def header_map(headers: Headers) -> dict[bytes, bytes]:
    """First value of each header (names are lower case in HTTP/3)."""
    out: dict[bytes, bytes] = {}
    for name, value in headers:
        out.setdefault(name, value)
    return out


def is_auth_request(h: dict[bytes, bytes]) -> bool:
    return h.get(b":method") == b"POST" and h.get(b":authority") == AUTHORITY and h.get(b":path") == PATH


def parse_rate(value: bytes | None) -> int:
    """A decimal uint64 rate; 0 (unknown) for anything else."""
    if not value or not value.isdigit() or len(value) > 20:
        return 0
    rate = int(value)
    return rate if rate < 1 << 64 else 0


def auth_request_headers(auth: str, rx_rate: int) -> Headers:
    """The auth request as the reference client's HTTP/3 stack (quic-go) writes it: the same
    headers, its own three included, and the pseudo-headers in its order (it writes the others
    from a Go map, in no fixed order), so the request does not set our client apart."""
    return [(b":authority", AUTHORITY), (b":method", b"POST"), (b":path", PATH),
            (b":scheme", b"https"), (HEADER_AUTH, auth.encode()),
            (HEADER_CC_RX, str(max(0, int(rx_rate))).encode()), (HEADER_PADDING, padding()),
            (b"content-length", b"0"), (b"accept-encoding", b"gzip"),
            (b"user-agent", b"quic-go HTTP/3")]


def auth_response_headers(udp: bool, rx_rate: int | None) -> Headers:
    """``rx_rate`` None answers ``auto`` (the server ignores the client's bandwidth)."""
    rate = b"auto" if rx_rate is None else str(max(0, int(rx_rate))).encode()
    return [(b":status", str(AUTH_STATUS).encode()), (HEADER_UDP, b"true" if udp else b"false"),
            (HEADER_CC_RX, rate), (HEADER_PADDING, padding())]


def parse_auth_response(headers: Headers) -> tuple[bool, bool, int | None]:
    """(authenticated, udp enabled, server rx rate; None for ``auto``)."""
    h = header_map(headers)
    if h.get(b":status") != str(AUTH_STATUS).encode():
        return False, False, 0
    rx = h.get(HEADER_CC_RX)
    return True, h.get(HEADER_UDP) == b"true", None if rx == b"auto" else parse_rate(rx)
