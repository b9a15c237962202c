# Salamander obfuscation, C level: the server's datagram path (Cython) obfuscates into its own
# buffers through these without a Python call per packet.
from libc.stdint cimport uint8_t, uint64_t

cdef extern from "blake2b.h":
    ctypedef struct fp_blake2b_state:
        uint64_t h[8]
        uint64_t t[2]
        uint8_t buf[128]
        size_t buflen
        size_t outlen
    void fp_blake2b_init(fp_blake2b_state *s, size_t outlen) noexcept nogil
    void fp_blake2b_update(fp_blake2b_state *s, const uint8_t *data, size_t n) noexcept nogil
    void fp_blake2b_final(fp_blake2b_state *s, uint8_t *out) noexcept nogil

cdef enum:
    SALT_LEN = 8
    KEY_LEN = 32
    MIN_PASSWORD_LEN = 4

cdef int next_salt(unsigned char *salt) except -1

cdef void xor_key_stream(const unsigned char *src, unsigned char *dst, size_t n,
                         const unsigned char *key) noexcept nogil


cdef class Salamander:
    cdef fp_blake2b_state _password_state   # BLAKE2b-256 after absorbing the password

    cdef void derive_key(self, const unsigned char *salt, unsigned char *key) noexcept nogil
    cdef void obfuscate_into(self, const unsigned char *payload, size_t n,
                             const unsigned char *salt, unsigned char *out) noexcept nogil
    cdef Py_ssize_t deobfuscate_into(self, const unsigned char *packet, size_t n,
                                     unsigned char *out) noexcept nogil
    cpdef bytes obfuscate(self, payload)
    cpdef bytes obfuscate_with_salt(self, payload, salt)
    cpdef object deobfuscate(self, packet)
    cdef bytes _obfuscate(self, payload, const unsigned char *salt)
