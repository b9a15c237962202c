# QUIC variable-length integers (RFC 9000 §16), C level.
#
# The functions are ``inline`` here, in the .pxd, so that every Cython module that cimports them
# (frames, the server's stream dispatch) gets them compiled into its own loops: a varint is
# decoded several times per request and a call through a module's C-API capsule would cost more
# than the decode itself.
from libc.stdint cimport uint64_t

cdef enum:
    VARINT_MAX_SIZE = 8

# Largest value a varint can carry: 2**62 - 1.
cdef extern from *:
    """
    #define FP_VARINT_MAX 0x3fffffffffffffffULL
    """
    const uint64_t FP_VARINT_MAX


cdef inline int varint_size(uint64_t v) noexcept nogil:
    """Encoded length of ``v`` in its shortest form, -1 if it needs more than 62 bits."""
    if v < 0x40:
        return 1
    if v < 0x4000:
        return 2
    if v < 0x40000000:
        return 4
    if v <= FP_VARINT_MAX:
        return 8
    return -1


cdef inline int varint_decode(const unsigned char *buf, size_t n, uint64_t *value) noexcept nogil:
    """Decode one varint from ``buf[:n]``: bytes consumed (1, 2, 4 or 8), 0 if truncated.

    Non-shortest encodings are accepted, as QUIC requires of a receiver.
    """
    cdef int prefix
    if n == 0:
        return 0
    prefix = buf[0] >> 6
    if prefix == 0:
        value[0] = buf[0]
        return 1
    if prefix == 1:
        if n < 2:
            return 0
        value[0] = (<uint64_t>(buf[0] & 0x3f) << 8) | buf[1]
        return 2
    if prefix == 2:
        if n < 4:
            return 0
        value[0] = ((<uint64_t>(buf[0] & 0x3f) << 24) | (<uint64_t>buf[1] << 16)
                    | (<uint64_t>buf[2] << 8) | buf[3])
        return 4
    if n < 8:
        return 0
    value[0] = ((<uint64_t>(buf[0] & 0x3f) << 56) | (<uint64_t>buf[1] << 48)
                | (<uint64_t>buf[2] << 40) | (<uint64_t>buf[3] << 32)
                | (<uint64_t>buf[4] << 24) | (<uint64_t>buf[5] << 16)
                | (<uint64_t>buf[6] << 8) | buf[7])
    return 8


cdef inline int varint_encode(uint64_t v, unsigned char *out) noexcept nogil:
    """Write ``v`` in its shortest form to ``out`` (room for 8 bytes): the length, -1 if
    ``v >= 2**62`` (nothing written)."""
    if v < 0x40:
        out[0] = <unsigned char>v
        return 1
    if v < 0x4000:
        out[0] = <unsigned char>(0x40 | (v >> 8))
        out[1] = <unsigned char>v
        return 2
    if v < 0x40000000:
        out[0] = <unsigned char>(0x80 | (v >> 24))
        out[1] = <unsigned char>(v >> 16)
        out[2] = <unsigned char>(v >> 8)
        out[3] = <unsigned char>v
        return 4
    if v <= FP_VARINT_MAX:
        out[0] = <unsigned char>(0xc0 | (v >> 56))
        out[1] = <unsigned char>(v >> 48)
        out[2] = <unsigned char>(v >> 40)
        out[3] = <unsigned char>(v >> 32)
        out[4] = <unsigned char>(v >> 24)
        out[5] = <unsigned char>(v >> 16)
        out[6] = <unsigned char>(v >> 8)
        out[7] = <unsigned char>v
        return 8
    return -1
