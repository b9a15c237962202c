"""The VMess AEAD request header (alterId 0) and response header, with ``cryptography``.

Request on the wire: ``auth id`` (16) | sealed header length (2 + 16) | connection nonce (8)
| sealed header (length + 16).  The auth id is ``timestamp (8) | random (4) | crc32 (4)``
encrypted with AES-128 (one block) under ``KDF(cmd key, "AES Auth ID Encryption")``: the
user is the one whose key makes the crc32 come out right, and the timestamp must be within
two minutes of now; an auth id seen before is a replay.  The header: version ``1``, body IV
(16), body key (16), response byte, option, ``padding << 4 | security``, a zero, command,
port, address (``1`` IPv4, ``2`` domain, ``3`` IPv6), padding, FNV-1a 32 of all that.

``cmd key = MD5(uuid + "c48619fe-8f02-49e0-b9e9-edf763e17e21")``; ``KDF(key, *path)`` is
HMAC-SHA256 nested once per path element under the root ``"VMess AEAD KDF"``.

The body codecs are ``vmess_chunks.VmessChunks`` (compiled): the per-chunk work is there.
"""
from __future__ import annotations

import hashlib
import struct
import time
import zlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fastpath.inbounds.vless_header import decode_address
from fastpath.inbounds.vmess_chunks import (OPTION_AUTHENTICATED_LENGTH, OPTION_CHUNK_STREAM,
                                           SECURITY_AES_128_GCM, SECURITY_CHACHA20_POLY1305,
                                           SECURITY_NONE, VmessChunks)

TAG = 16
AUTH_ID = 16
LENGTH_FIELD = 2 + TAG
NONCE = 8
PREAMBLE = AUTH_ID + LENGTH_FIELD + NONCE
MAX_HEADER = 1024                     # a real header is under 320 bytes
TIME_WINDOW = 120
CMD_TCP, CMD_UDP, CMD_MUX = 1, 2, 3
SECURITIES = {SECURITY_AES_128_GCM: "aes-128-gcm", SECURITY_CHACHA20_POLY1305: "chacha20-poly1305",
              SECURITY_NONE: "none"}


class VmessError(ValueError):
    """Not a VMess request of a known user (or a replay): the connection gets no answer."""


def cmd_key(user_uuid: bytes) -> bytes:
    return hashlib.md5(user_uuid + b"c48619fe-8f02-49e0-b9e9-edf763e17e21").digest()


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _hmac(keys: tuple[bytes, ...], message: bytes) -> bytes:
    """HMAC whose hash is the HMAC of the keys before the last (SHA-256 at the bottom): the
    nesting VMess's KDF uses.  Block size 64 at every level, as Go's hmac reports it.  A KDF of
    depth n is 2^n short SHA-256 digests; the pads are made by ``bytes.translate``.  Written
    here because ``cryptography``'s HMAC takes a fixed hash algorithm, not another HMAC; the
    SHA-256 under it is hashlib's (OpenSSL)."""
    if not keys:
        return hashlib.sha256(message).digest()
    inner, key = keys[:-1], keys[-1]
    if len(key) > 64:
        key = _hmac(inner, key)
    key = key.ljust(64, b"\0")
    return _hmac(inner, key.translate(_OPAD) + _hmac(inner, key.translate(_IPAD) + message))


def kdf(key: bytes, salt: bytes, *path: bytes) -> bytes:
    return _hmac((b"VMess AEAD KDF", salt, *path), key)


def chacha_key(key: bytes) -> bytes:
    first = hashlib.md5(key).digest()
    return first + hashlib.md5(first).digest()


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


@dataclass(frozen=True)
class VmessRequest:
    user_id: str
    body_iv: bytes
    body_key: bytes
    response_byte: int
    option: int
    security: int
    command: int
    address: str | None


class VmessUsers:
    """The users' auth-id keys (rebuilt when the user table changes; see credentials.py)."""

    def __init__(self, entries) -> None:
        # (user id, cmd key, AES-ECB cipher of the auth-id key)
        self.entries = [(uid, key, Cipher(algorithms.AES(kdf(key, b"AES Auth ID Encryption")[:16]),
                                          modes.ECB()))
                        for uid, key in entries]

    def match(self, auth_id: bytes, now: float) -> tuple[str, bytes] | None:
        """(user id, cmd key) of the user whose key opens ``auth_id``; VmessError for a stale
        timestamp; None for nobody."""
        for uid, key, cipher in self.entries:
            plain = cipher.decryptor().update(auth_id)
            if zlib.crc32(plain[:12]) != struct.unpack(">I", plain[12:])[0]:
                continue
            (stamp,) = struct.unpack(">q", plain[:8])
            if abs(stamp - now) > TIME_WINDOW:
                raise VmessError("auth id timestamp outside the two-minute window")
            return uid, key
        return None


def parse_request(data: bytes, users: VmessUsers, seen, now: float | None = None):
    """(request, bytes used) of a VMess AEAD request; None when more bytes are needed;
    VmessError when it is none of a known user's.  ``seen(auth_id) -> bool`` remembers auth
    ids and says whether one came before."""
    if len(data) < PREAMBLE:
        return None
    auth_id = bytes(data[:AUTH_ID])
    found = users.match(auth_id, time.time() if now is None else now)
    if found is None:
        raise VmessError("no user's key opens the auth id")
    user_id, key = found
    nonce = bytes(data[AUTH_ID + LENGTH_FIELD:PREAMBLE])
    try:
        length_plain = AESGCM(kdf(key, b"VMess Header AEAD Key_Length", auth_id, nonce)[:16]).decrypt(
            kdf(key, b"VMess Header AEAD Nonce_Length", auth_id, nonce)[:12],
            bytes(data[AUTH_ID:AUTH_ID + LENGTH_FIELD]), auth_id)
    except InvalidTag:
        raise VmessError("the header length did not authenticate") from None
    (length,) = struct.unpack(">H", length_plain)
    if not 38 < length <= MAX_HEADER:
        raise VmessError(f"header length {length}")
    end = PREAMBLE + length + TAG
    if len(data) < end:
        return None
    try:
        header = AESGCM(kdf(key, b"VMess Header AEAD Key", auth_id, nonce)[:16]).decrypt(
            kdf(key, b"VMess Header AEAD Nonce", auth_id, nonce)[:12], bytes(data[PREAMBLE:end]), auth_id)
    except InvalidTag:
        raise VmessError("the header did not authenticate") from None
    if seen(auth_id):
        raise VmessError("replayed auth id")
    return _decode_header(header, user_id), end


def _decode_header(header: bytes, user_id: str) -> VmessRequest:
    if header[0] != 1:
        raise VmessError(f"version {header[0]}")
    if fnv1a32(header[:-4]) != struct.unpack(">I", header[-4:])[0]:
        raise VmessError("header checksum")
    body_iv, body_key = header[1:17], header[17:33]
    response_byte, option = header[33], header[34]
    padding, security = header[35] >> 4, header[35] & 0x0F
    command = header[37]
    if security not in SECURITIES:
        raise VmessError(f"security {security} is not served (aes-128-gcm, chacha20-poly1305, none)")
    address = None
    if command in (CMD_TCP, CMD_UDP):
        try:
            found = decode_address(header, 38)
        except ValueError as exc:
            raise VmessError(str(exc)) from None
        if found is None:
            raise VmessError("address truncated")
        address, at = found
    elif command == CMD_MUX:
        at = 38
    else:
        raise VmessError(f"command {command}")
    if at + padding + 4 != len(header):
        raise VmessError("header size does not match its padding")
    return VmessRequest(user_id, body_iv, body_key, response_byte, option, security, command,
                        address)


def response_keys(req: VmessRequest) -> tuple[bytes, bytes]:
    return hashlib.sha256(req.body_key).digest()[:16], hashlib.sha256(req.body_iv).digest()[:16]


def response_header(req: VmessRequest) -> bytes:
    """The sealed response header: length (2 + 16), then ``response byte, 0, 0, 0`` (+ 16)."""
    key, iv = response_keys(req)
    sealed_length = AESGCM(kdf(key, b"AEAD Resp Header Len Key")[:16]).encrypt(
        kdf(iv, b"AEAD Resp Header Len IV")[:12], b"\x00\x04", None)
    sealed = AESGCM(kdf(key, b"AEAD Resp Header Key")[:16]).encrypt(
        kdf(iv, b"AEAD Resp Header IV")[:12], bytes([req.response_byte, 0, 0, 0]), None)
    return sealed_length + sealed


def _body_key(security: int, key: bytes) -> bytes:
    return chacha_key(key) if security == SECURITY_CHACHA20_POLY1305 else key


def body_codecs(req: VmessRequest):
    """(opener of the client's body or None, sealer of ours or None); None means the raw
    stream (security none without the chunk-stream option) — then the response header is
    the caller's to write."""
    s, o = req.security, req.option
    if s == SECURITY_NONE and not o & OPTION_CHUNK_STREAM:
        return None, None
    length_key = None
    if o & OPTION_AUTHENTICATED_LENGTH and s != SECURITY_NONE:
        length_key = _body_key(s, kdf(req.body_key, b"auth_len")[:16])
    key, iv = response_keys(req)
    opener = VmessChunks(s, o, _body_key(s, req.body_key), req.body_iv, seal=False,
                         length_key=length_key, length_iv=req.body_iv)
    sealer = VmessChunks(s, o, _body_key(s, key), iv, seal=True, length_key=length_key,
                         length_iv=req.body_iv, prefix=response_header(req))
    return opener, sealer


# -- the client side (tests and the fuzz harness) ---------------------------------------------
def encode_request(user_uuid: bytes, address_field: bytes, *, security: int, option: int,
                   body_key: bytes, body_iv: bytes, response_byte: int = 0x5A, padding: bytes = b"",
                   command: int = CMD_TCP, now: float | None = None, rand4: bytes = b"\1\2\3\4",
                   nonce: bytes = b"\7" * 8) -> bytes:
    key = cmd_key(user_uuid)
    stamp = struct.pack(">q", int(time.time() if now is None else now)) + rand4
    plain_id = stamp + struct.pack(">I", zlib.crc32(stamp))
    enc = Cipher(algorithms.AES(kdf(key, b"AES Auth ID Encryption")[:16]), modes.ECB()).encryptor()
    auth_id = enc.update(plain_id)
    header = (bytes([1]) + body_iv + body_key + bytes([response_byte, option,
                                                         (len(padding) << 4) | security, 0, command])
              + address_field + padding)
    header += struct.pack(">I", fnv1a32(header))
    sealed_length = AESGCM(kdf(key, b"VMess Header AEAD Key_Length", auth_id, nonce)[:16]).encrypt(
        kdf(key, b"VMess Header AEAD Nonce_Length", auth_id, nonce)[:12],
        struct.pack(">H", len(header)), auth_id)
    sealed = AESGCM(kdf(key, b"VMess Header AEAD Key", auth_id, nonce)[:16]).encrypt(
        kdf(key, b"VMess Header AEAD Nonce", auth_id, nonce)[:12], header, auth_id)
    return auth_id + sealed_length + nonce + sealed
