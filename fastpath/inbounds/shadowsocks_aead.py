"""Shadowsocks AEAD (SIP004 / SIP007): key derivation and the chunk stream codec.

A stream is ``salt`` then chunks ``[length (2 bytes) + tag][payload + tag]``, each sealed with
a per-session subkey ``HKDF-SHA1(master key, salt, "ss-subkey")`` and a 12-byte little-endian
nonce that counts every seal.  The master key comes from the password by OpenSSL's
``EVP_BytesToKey`` (MD5, one round), as every Shadowsocks implementation derives it.

AEAD and HKDF are the ``cryptography`` package's (OpenSSL underneath); what is written here is
only the framing, which no library offers.
"""
from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.exceptions import InvalidTag

TAG = 16
MAX_PAYLOAD = 0x3FFF
# method -> (key and salt size, AEAD class)
METHODS = {
    "aes-128-gcm": (16, AESGCM),
    "aes-256-gcm": (32, AESGCM),
    "chacha20-ietf-poly1305": (32, ChaCha20Poly1305),
}


class ChunkError(ValueError):
    """A chunk did not authenticate or is malformed: the stream cannot go on."""


def master_key(password: str, size: int) -> bytes:
    """OpenSSL's EVP_BytesToKey with MD5 and no salt, as Shadowsocks derives its keys."""
    secret = password.encode()
    out, block = b"", b""
    while len(out) < size:
        block = hashlib.md5(block + secret).digest()
        out += block
    return out[:size]


def session_cipher(method: str, key: bytes, salt: bytes):
    size, aead = METHODS[method]
    subkey = HKDF(algorithm=hashes.SHA1(), length=size, salt=salt, info=b"ss-subkey").derive(key)
    return aead(subkey)


class Opener:
    """Reads one direction of a stream after its salt: ``feed(bytes) -> plaintext``."""

    __slots__ = ("cipher", "nonce", "buf", "need")
    MAX = MAX_PAYLOAD              # the longest chunk payload (Shadowsocks 2022: 0xFFFF)

    def __init__(self, cipher) -> None:
        self.cipher = cipher
        self.nonce = 0
        self.buf = bytearray()
        self.need = 0                  # payload length of the chunk being read (0: a length)

    def _open(self, sealed: bytes) -> bytes:
        nonce = self.nonce.to_bytes(12, "little")
        self.nonce += 1
        try:
            return self.cipher.decrypt(nonce, sealed, None)
        except InvalidTag:
            raise ChunkError("a chunk did not authenticate") from None

    def feed(self, data: bytes) -> bytes:
        buf = self.buf
        buf += data
        out = []
        while True:
            if not self.need:
                if len(buf) < 2 + TAG:
                    break
                length = int.from_bytes(self._open(bytes(buf[:2 + TAG])), "big")
                del buf[:2 + TAG]
                if not 0 < length <= self.MAX:
                    raise ChunkError(f"chunk length {length} out of range")
                self.need = length
            if len(buf) < self.need + TAG:
                break
            out.append(self._open(bytes(buf[:self.need + TAG])))
            del buf[:self.need + TAG]
            self.need = 0
        return b"".join(out)


class Sealer:
    """Writes one direction: ``seal(plaintext) -> chunks`` (the salt goes first, once)."""

    __slots__ = ("cipher", "nonce", "prefix")

    def __init__(self, cipher, salt: bytes) -> None:
        self.cipher = cipher
        self.nonce = 0
        self.prefix = salt

    def _seal(self, plain: bytes) -> bytes:
        nonce = self.nonce.to_bytes(12, "little")
        self.nonce += 1
        return self.cipher.encrypt(nonce, plain, None)

    def seal(self, data: bytes) -> bytes:
        out = [self.prefix] if self.prefix else []
        self.prefix = b""
        view = memoryview(data)
        for i in range(0, len(data), MAX_PAYLOAD):
            piece = bytes(view[i:i + MAX_PAYLOAD])
            out.append(self._seal(len(piece).to_bytes(2, "big")))
            out.append(self._seal(piece))
        return b"".join(out)
