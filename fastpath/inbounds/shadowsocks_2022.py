"""Shadowsocks 2022 (SIP022): keys, the request and response headers, the chunk codecs.

Facts of the wire (SIP022, ``2022-blake3-aes-128-gcm`` / ``2022-blake3-aes-256-gcm``):

- Keys are pre-shared: base64 of exactly the cipher's key size (16 or 32 bytes).  A session's
  subkey is ``BLAKE3-derive-key("shadowsocks 2022 session subkey", PSK || salt)``; the salt
  is as long as the key.  AES-GCM with a 12-byte little-endian nonce that counts every seal.
- A TCP request is ``salt [EIH] seal(fixed header) seal(variable header) chunks``.  The fixed
  header is ``type (0) | timestamp (u64 BE, unix s) | length (u16 BE)`` of the variable one,
  which is ``SOCKS5 address | padding length (u16 BE) | padding | initial payload``.  Chunks are
  ``seal(length u16) seal(payload)`` as in SIP004, with payloads up to 0xFFFF.
- The response is ``salt seal(type (1) | timestamp | request salt | length) seal(payload)``
  then chunks.  A timestamp more than 30 s from the server's clock is refused, and so is a salt
  seen within the window (``SaltWindow``).
- Identity headers (several users on one port): after the salt, 16 bytes
  ``AES-ECB(identity subkey, BLAKE3(uPSK)[:16])`` where the identity subkey is
  ``BLAKE3-derive-key("shadowsocks 2022 identity subkey", iPSK || salt)``; the server decrypts
  it with its own key (iPSK) and finds the user by that hash.  The rest of the request and the
  whole response are sealed with the user's key (uPSK).
- UDP (``udp_packet``): a separate header ``session id (8) | packet id (u64 BE)`` encrypted with
  AES-ECB under the first key of the chain; with EIH, then ``AES-ECB(iPSK, hash(uPSK)[:16] XOR
  separate header)``; then the body sealed with ``derive(PSK || session id)`` and the separate
  header's last 12 bytes as nonce.  Body: ``type | timestamp | [client session id, server
  side] | padding length | padding | address | payload``.

BLAKE3 is the ``blake3`` package's, AES the ``cryptography`` package's; what is written here
is the framing, which no library offers for Python.
"""
from __future__ import annotations

import base64
import binascii
import struct
import time

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fastpath.inbounds.shadowsocks_aead import TAG, ChunkError, Opener

# method -> key (and salt) size
METHODS_2022 = {"2022-blake3-aes-128-gcm": 16, "2022-blake3-aes-256-gcm": 32}
MAX_PAYLOAD = 0xFFFF
TIME_WINDOW = 30                      # seconds a request's timestamp may be off
FIXED_REQUEST = 1 + 8 + 2             # type, timestamp, variable header length
TYPE_CLIENT, TYPE_SERVER = 0, 1
SESSION_CONTEXT = "shadowsocks 2022 session subkey"
IDENTITY_CONTEXT = "shadowsocks 2022 identity subkey"
# Our own context for node users whose auth secret is not a key of the right size.
USER_KEY_CONTEXT = "fastpath 2026-12-02 shadowsocks 2022 user key"


def derive(context: str, material: bytes, size: int) -> bytes:
    return blake3.blake3(material, derive_key_context=context).digest(length=size)


def decode_psk(text: str, size: int) -> bytes:
    """A base64 PSK of exactly ``size`` bytes; ValueError otherwise."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != size:
        raise ValueError(f"a {size * 8}-bit key must be {size} bytes, not {len(raw)}")
    return raw


def user_key(secret: str, size: int) -> bytes:
    """A node user's uPSK: its auth secret when that is a base64 key of the right size (what
    a panel hands out for these methods), else one derived from the secret with BLAKE3, so
    every node user has a key (``user_key_text`` gives the client's form)."""
    try:
        return decode_psk(secret, size)
    except ValueError:
        return derive(USER_KEY_CONTEXT, secret.encode(), size)


def user_key_text(secret: str, size: int) -> str:
    return base64.b64encode(user_key(secret, size)).decode()


def session_aead(psk: bytes, salt: bytes) -> AESGCM:
    return AESGCM(derive(SESSION_CONTEXT, psk + salt, len(psk)))


def key_hash(psk: bytes) -> bytes:
    """What an identity header carries for a user: the first 16 bytes of BLAKE3(uPSK)."""
    return blake3.blake3(psk).digest(length=16)


def _ecb(key: bytes, block: bytes, decrypt: bool) -> bytes:
    c = Cipher(algorithms.AES(key), modes.ECB())
    op = c.decryptor() if decrypt else c.encryptor()
    return op.update(block) + op.finalize()


def identity_header(server_psk: bytes, salt: bytes, user_psk: bytes) -> bytes:
    """The client's EIH for ``user_psk`` (the tests' client side, and the spec's)."""
    return _ecb(derive(IDENTITY_CONTEXT, server_psk + salt, len(server_psk)), key_hash(user_psk), False)


def open_identity(server_psk: bytes, salt: bytes, eih: bytes) -> bytes:
    """The user key hash an EIH names."""
    return _ecb(derive(IDENTITY_CONTEXT, server_psk + salt, len(server_psk)), eih, True)


class Opener2022(Opener):
    """The client's chunks after the request headers (SIP004 framing, 0xFFFF payloads)."""

    __slots__ = ()
    MAX = MAX_PAYLOAD

    def open_exact(self, sealed: bytes) -> bytes:
        """One sealed header, counted on the same nonce as the chunks that follow."""
        return self._open(sealed)


class Sealer2022:
    """The server's direction: the response header goes with the first data, then chunks."""

    __slots__ = ("aead", "nonce", "head")

    def __init__(self, user_psk: bytes, request_salt: bytes, salt: bytes, now=None) -> None:
        self.aead = session_aead(user_psk, salt)
        self.nonce = 0
        # Sent before the first payload: salt, and the fixed header waiting for its length.
        self.head = (salt, struct.pack(">BQ", TYPE_SERVER, int(now if now is not None else time.time()))
                     + request_salt)

    def _seal(self, plain: bytes) -> bytes:
        nonce = self.nonce.to_bytes(12, "little")
        self.nonce += 1
        return self.aead.encrypt(nonce, plain, None)

    def seal(self, data: bytes) -> bytes:
        out = []
        view = memoryview(data)
        i = 0
        if self.head is not None:
            salt, fixed = self.head
            self.head = None
            first = bytes(view[:MAX_PAYLOAD])
            out += [salt, self._seal(fixed + struct.pack(">H", len(first))), self._seal(first)]
            i = len(first)
        while i < len(data):
            piece = bytes(view[i:i + MAX_PAYLOAD])
            out.append(self._seal(struct.pack(">H", len(piece))))
            out.append(self._seal(piece))
            i += len(piece)
        return b"".join(out)


def check_time(timestamp: int, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return abs(now - timestamp) <= TIME_WINDOW


class SaltWindow:
    """Salts (or UDP session ids) seen in the last ``2 * TIME_WINDOW`` seconds, bounded.

    Two generations, each covering one window: a request older than the window is refused by
    its timestamp, so a salt need only be remembered for as long, and the older generation is
    dropped whole when the next window begins.  Past ``limit`` salts in one generation new
    sessions are refused (``seen`` answers True) rather than forgetting salts still inside
    the window, which would let their recordings be replayed."""

    def __init__(self, limit: int = 1 << 18, window: float = 2 * TIME_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self.current: set[bytes] = set()
        self.previous: set[bytes] = set()
        self.started: float | None = None     # when the current generation began
        self.full_refusals = 0

    def seen(self, salt: bytes, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.started is None:
            self.started = now
        elif now - self.started >= self.window:
            gone = now - self.started >= 2 * self.window
            self.previous = set() if gone else self.current
            self.current = set()
            self.started = now
        if salt in self.current or salt in self.previous:
            return True
        if len(self.current) >= self.limit:
            self.full_refusals += 1
            return True
        self.current.add(salt)
        return False


# -- UDP ---------------------------------------------------------------------------------------

class PacketError(ValueError):
    """A UDP packet that does not open or is malformed: dropped."""


def seal_separate_header(psk: bytes, header: bytes) -> bytes:
    return _ecb(psk, header, False)


def open_separate_header(psk: bytes, block: bytes) -> bytes:
    return _ecb(psk, block, True)


def udp_body_aead(psk: bytes, session_id: bytes) -> AESGCM:
    return session_aead(psk, session_id)


def open_udp_body(aead: AESGCM, header: bytes, sealed: bytes) -> bytes:
    try:
        return aead.decrypt(header[4:16], sealed, None)
    except InvalidTag:
        raise PacketError("the packet did not authenticate") from None


def seal_udp_packet(psk: bytes, header: bytes, body: bytes, aead: AESGCM | None = None,
                    server_psk: bytes | None = None) -> bytes:
    """A whole packet (``server_psk``: the client side with EIH)."""
    aead = aead or udp_body_aead(psk, header[:8])
    sealed = aead.encrypt(header[4:16], body, None)
    if server_psk is None:
        return seal_separate_header(psk, header) + sealed
    eih = _ecb(server_psk, bytes(a ^ b for a, b in zip(key_hash(psk), header)), False)
    return seal_separate_header(server_psk, header) + eih + sealed


def user_of_udp_eih(server_psk: bytes, header: bytes, eih: bytes) -> bytes:
    """The user key hash a UDP identity header names (``header``: the separate header's
    plaintext)."""
    plain = _ecb(server_psk, eih, True)
    return bytes(a ^ b for a, b in zip(plain, header))


class PacketWindow:
    """Packet ids of one UDP session accepted at most once: a sliding window of the last
    ``size`` ids below the highest one seen (a bit set in an int)."""

    __slots__ = ("size", "top", "bits")

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.top = -1
        self.bits = 0

    def accept(self, packet_id: int) -> bool:
        if packet_id > self.top:
            shift = packet_id - self.top
            self.bits = ((self.bits << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self.top = packet_id
            return True
        back = self.top - packet_id
        if back >= self.size or self.bits >> back & 1:
            return False
        self.bits |= 1 << back
        return True


__all__ = ["METHODS_2022", "ChunkError", "TAG", "Opener2022", "Sealer2022", "SaltWindow",
           "PacketWindow", "PacketError", "decode_psk", "user_key", "user_key_text",
           "session_aead", "identity_header", "open_identity", "key_hash", "check_time"]
