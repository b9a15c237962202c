# The compiled send half of a QUIC stream, C level (fastpath.hy2.quic.stream_send).
from libc.stdint cimport uint8_t, int64_t

from fastpath.hy2.quic.quic_builder cimport QuicPacketBuilder


cdef struct fp_ranges:
    # sorted, disjoint, non-touching [start, stop) pairs: v[2*i], v[2*i + 1]
    int64_t *v
    Py_ssize_t n
    Py_ssize_t cap


cdef class StreamSendBuffer:
    cdef readonly object stream_id
    cdef int64_t _sid                  # stream_id as C (-1: none, a crypto stream)
    # the bytes from offset _start (lowest not acknowledged) to _stop (next to be written),
    # at _buf[_head:_head + (_stop - _start)]
    cdef uint8_t *_buf
    cdef Py_ssize_t _cap, _head
    cdef int64_t _start, _stop
    cdef int64_t _fin                  # final size once the stream was ended, else -1
    cdef fp_ranges _pending            # to send (first time or again after a loss)
    cdef fp_ranges _acked              # acknowledged above _start
    cdef bint _pending_eof, _acked_fin
    cdef object _reset_error_code
    cdef readonly int64_t highest_offset
    cdef public bint buffer_is_empty
    cdef public bint is_finished
    cdef public bint reset_pending

    cdef bint _peek(self, int64_t max_size, int64_t max_offset, int64_t *start, int64_t *stop,
                    bint *fin) noexcept
    cdef int _take(self, int64_t start, int64_t stop, bint fin) except -1
    cdef int _write(self, const uint8_t *data, Py_ssize_t size, bint end) except -1
    cdef int64_t write_frame(self, QuicPacketBuilder builder, int64_t max_offset) except -1
    cdef int delivered(self, bint acked, tuple frame) except -1
    cdef int _delivered(self, bint acked, int64_t a, int64_t b, bint fin) except -1
    cdef inline int64_t unacked(self):
        return self._stop - self._start
