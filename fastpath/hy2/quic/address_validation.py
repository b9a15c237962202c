"""Bounding half-open QUIC connections: a budget per worker, and Retry beyond it (RFC 9000 §8.1).

Every Initial that opens a connection costs a TLS handshake (key exchange and a signature) and
the memory of a whole aioquic connection before the client has proved anything, not even that
it can receive at its source address.  A flood of well-formed Initials therefore stalls the
worker and fills its memory.  So each worker lets at most ``quic.maxHalfOpen`` connections (64 by
default) be half-open (handshake not complete) at once; past that, an Initial without a valid token is answered with
a Retry packet, which costs one HMAC and no state.  A client that returns the token from the
same address has proved it is there and gets its connection; spoofed floods never do.

The token is ours to define (§8.1.4): it must only be checkable by this node.  aioquic's own
token handler encrypts with RSA, which costs about a millisecond to check per token — too dear
for the one path that must stay cheap under a flood — so tokens here are authenticated with an
HMAC over the client's address, the time and the connection IDs the handshake must repeat.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time

TOKEN_LIFETIME = 10.0            # seconds a Retry token stays good (one round trip is enough)
_MAC_SIZE = 16
_HEAD = struct.Struct(">dB")     # issue time, length of the original destination CID


def _address_bytes(addr) -> bytes:
    return f"{addr[0]}|{addr[1]}".encode()


class RetryTokens:
    """Issues and checks the tokens carried by Retry packets and the Initials that answer them."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or os.urandom(32)

    def _mac(self, addr, body: bytes) -> bytes:
        return hmac.new(self.key, _address_bytes(addr) + body, hashlib.sha256).digest()[:_MAC_SIZE]

    def issue(self, addr, original_dcid: bytes, retry_scid: bytes) -> bytes:
        body = _HEAD.pack(time.time(), len(original_dcid)) + original_dcid + retry_scid
        return body + self._mac(addr, body)

    def check(self, addr, token: bytes, now: float | None = None):
        """(original destination CID, retry source CID) when ``token`` was issued by this node
        to ``addr`` within the lifetime, else None."""
        if len(token) < _HEAD.size + _MAC_SIZE:
            return None
        body, mac = token[:-_MAC_SIZE], token[-_MAC_SIZE:]
        if not hmac.compare_digest(mac, self._mac(addr, body)):
            return None
        issued, odcid_len = _HEAD.unpack_from(body)
        now = time.time() if now is None else now
        if not 0 <= now - issued <= TOKEN_LIFETIME:
            return None
        odcid = body[_HEAD.size:_HEAD.size + odcid_len]
        scid = body[_HEAD.size + odcid_len:]
        if len(odcid) != odcid_len or not scid:
            return None
        return odcid, scid
