# cython: language_level=3
"""QUIC variable-length integers (RFC 9000 §16), the length prefix of every Hysteria 2 frame.

The C-level functions live in ``varint.pxd`` (inline, so cimporting modules compile them into
their own parsers); this module is their small Python surface, for tests and cold paths.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint64_t

MAX = 0x3fffffffffffffff
"""Largest encodable value, 2**62 - 1."""


def decode(data, Py_ssize_t offset=0):
    """Decode the varint at ``data[offset:]``; return ``(value, consumed)``.

    Raises ValueError when the buffer ends inside the varint or the offset is out of range.
    """
    cdef Py_buffer view
    cdef uint64_t value = 0
    cdef int used
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if offset < 0 or offset > view.len:
            raise ValueError(f"offset {offset} out of range for {view.len} bytes")
        used = varint_decode(<const unsigned char *>view.buf + offset,
                             <size_t>(view.len - offset), &value)
    finally:
        PyBuffer_Release(&view)
    if used == 0:
        raise ValueError("truncated varint")
    return value, used


def encode(v):
    """Shortest encoding of ``v``; ValueError unless ``0 <= v < 2**62``."""
    cdef unsigned char out[VARINT_MAX_SIZE]
    if v < 0 or v > MAX:
        raise ValueError(f"varint out of range: {v}")
    cdef int n = varint_encode(<uint64_t>v, out)
    return PyBytes_FromStringAndSize(<char *>out, n)


def size(v):
    """Encoded length of ``v`` (1, 2, 4 or 8); ValueError unless ``0 <= v < 2**62``."""
    if v < 0 or v > MAX:
        raise ValueError(f"varint out of range: {v}")
    return varint_size(<uint64_t>v)
