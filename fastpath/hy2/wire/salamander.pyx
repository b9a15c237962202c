# cython: language_level=3
"""Salamander, Hysteria 2's optional obfuscation of every UDP packet, both ways.

``packet = salt || payload XOR key``, the 32-byte key being BLAKE2b-256(password || salt) and
the salt 8 random bytes per packet.  It hides the QUIC handshake from pattern matching; it is
not encryption (QUIC's TLS is).

The key is derived in C (``blake2b.h``) from a copy of the hash state that has already absorbed
the password, so a packet costs one BLAKE2b compression and a word-wide XOR loop, with no
Python call; salts come from a pool of OS randomness refilled every 512 packets.
"""
import os

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy


cdef void xor_key_stream(const unsigned char *src, unsigned char *dst, size_t n,
                         const unsigned char *key) noexcept nogil:
    """``dst[i] = src[i] ^ key[i % 32]``, a 64-bit word at a time (``dst`` may be ``src``).

    memcpy loads and stores compile to plain unaligned moves and keep byte order irrelevant:
    word j of the key lines up with bytes 8j..8j+7 of every 32-byte block.
    """
    cdef uint64_t k[4]
    cdef uint64_t w
    cdef size_t i = 0
    memcpy(k, key, KEY_LEN)
    while i + 32 <= n:
        memcpy(&w, src + i, 8)
        w ^= k[0]
        memcpy(dst + i, &w, 8)
        memcpy(&w, src + i + 8, 8)
        w ^= k[1]
        memcpy(dst + i + 8, &w, 8)
        memcpy(&w, src + i + 16, 8)
        w ^= k[2]
        memcpy(dst + i + 16, &w, 8)
        memcpy(&w, src + i + 24, 8)
        w ^= k[3]
        memcpy(dst + i + 24, &w, 8)
        i += 32
    while i + 8 <= n:
        memcpy(&w, src + i, 8)
        w ^= k[(i & 31) >> 3]
        memcpy(dst + i, &w, 8)
        i += 8
    while i < n:
        dst[i] = src[i] ^ key[i & 31]
        i += 1


# Salt pool: one os.urandom call per 512 packets instead of one per packet.  Emptied in a
# forked child so that two workers never send the same salts.
cdef enum:
    SALT_POOL_SIZE = 4096
cdef unsigned char _salt_pool[SALT_POOL_SIZE]
cdef size_t _salt_pos = SALT_POOL_SIZE


def _drop_salt_pool():
    global _salt_pos
    _salt_pos = SALT_POOL_SIZE


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_salt_pool)


cdef inline int _next_salt(unsigned char *salt) except -1:
    global _salt_pos
    if _salt_pos + SALT_LEN > SALT_POOL_SIZE:
        fresh = os.urandom(SALT_POOL_SIZE)
        memcpy(_salt_pool, PyBytes_AS_STRING(fresh), SALT_POOL_SIZE)
        _salt_pos = 0
    memcpy(salt, _salt_pool + _salt_pos, SALT_LEN)
    _salt_pos += SALT_LEN
    return 0


cdef int next_salt(unsigned char *salt) except -1:
    """A fresh 8-byte salt from the pool, for other modules' C loops (``udp_batch``)."""
    return _next_salt(salt)


def blake2b_256(data):
    """Unkeyed BLAKE2b with a 32-byte digest, by this module's C code (tests compare it with
    hashlib)."""
    cdef Py_buffer view
    cdef fp_blake2b_state st
    cdef unsigned char out[KEY_LEN]
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        fp_blake2b_init(&st, KEY_LEN)
        fp_blake2b_update(&st, <const uint8_t *>view.buf, <size_t>view.len)
        fp_blake2b_final(&st, out)
    finally:
        PyBuffer_Release(&view)
    return PyBytes_FromStringAndSize(<char *>out, KEY_LEN)


cdef class Salamander:
    """Obfuscator for one password (bytes, or str taken as UTF-8; at least 4 bytes)."""

    def __cinit__(self, password):
        if isinstance(password, str):
            password = password.encode("utf-8")
        cdef Py_buffer view
        PyObject_GetBuffer(password, &view, PyBUF_SIMPLE)
        try:
            if view.len < MIN_PASSWORD_LEN:
                raise ValueError(f"salamander password must be at least {MIN_PASSWORD_LEN} bytes")
            fp_blake2b_init(&self._password_state, KEY_LEN)
            fp_blake2b_update(&self._password_state, <const uint8_t *>view.buf, <size_t>view.len)
        finally:
            PyBuffer_Release(&view)

    cdef void derive_key(self, const unsigned char *salt, unsigned char *key) noexcept nogil:
        """``key = BLAKE2b-256(password || salt)``."""
        cdef fp_blake2b_state st = self._password_state
        fp_blake2b_update(&st, salt, SALT_LEN)
        fp_blake2b_final(&st, key)

    cdef void obfuscate_into(self, const unsigned char *payload, size_t n,
                             const unsigned char *salt, unsigned char *out) noexcept nogil:
        """Write the ``n + 8``-byte packet for ``payload`` to ``out``."""
        cdef unsigned char key[KEY_LEN]
        memcpy(out, salt, SALT_LEN)
        self.derive_key(salt, key)
        xor_key_stream(payload, out + SALT_LEN, n, key)

    cdef Py_ssize_t deobfuscate_into(self, const unsigned char *packet, size_t n,
                                     unsigned char *out) noexcept nogil:
        """Write the ``n - 8``-byte payload of ``packet`` to ``out``; -1 if the packet is too
        short to carry one (8 bytes or less)."""
        cdef unsigned char key[KEY_LEN]
        if n <= SALT_LEN:
            return -1
        self.derive_key(packet, key)
        xor_key_stream(packet + SALT_LEN, out, n - SALT_LEN, key)
        return <Py_ssize_t>(n - SALT_LEN)

    cpdef bytes obfuscate(self, payload):
        """The packet for ``payload``, under a fresh random salt."""
        cdef unsigned char salt[SALT_LEN]
        _next_salt(salt)
        return self._obfuscate(payload, salt)

    cpdef bytes obfuscate_with_salt(self, payload, salt):
        """The packet for ``payload`` under the given 8-byte salt (for tests and vectors)."""
        cdef Py_buffer view
        PyObject_GetBuffer(salt, &view, PyBUF_SIMPLE)
        try:
            if view.len != SALT_LEN:
                raise ValueError(f"salt must be {SALT_LEN} bytes, got {view.len}")
            return self._obfuscate(payload, <const unsigned char *>view.buf)
        finally:
            PyBuffer_Release(&view)

    cdef bytes _obfuscate(self, payload, const unsigned char *salt):
        cdef Py_buffer view
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        try:
            packet = PyBytes_FromStringAndSize(NULL, view.len + SALT_LEN)
            self.obfuscate_into(<const unsigned char *>view.buf, <size_t>view.len, salt,
                                <unsigned char *>PyBytes_AS_STRING(packet))
            return packet
        finally:
            PyBuffer_Release(&view)

    cpdef object deobfuscate(self, packet):
        """The payload of ``packet``, or None for a packet of 8 bytes or less (dropped, as the
        reference does)."""
        cdef Py_buffer view
        PyObject_GetBuffer(packet, &view, PyBUF_SIMPLE)
        try:
            if view.len <= SALT_LEN:
                return None
            payload = PyBytes_FromStringAndSize(NULL, view.len - SALT_LEN)
            self.deobfuscate_into(<const unsigned char *>view.buf, <size_t>view.len,
                                  <unsigned char *>PyBytes_AS_STRING(payload))
            return payload
        finally:
            PyBuffer_Release(&view)
