# The relay between one QUIC stream and one TCP socket, C level.
from fastpath.hy2.quic.stream_send cimport StreamSendBuffer
from fastpath.shm.counter_table cimport ShardWriter


cdef class RelayPump:
    cdef object owner            # the glue: want_transmit(), pump_paused(p), pump_pending(p),
                                 # pump_finished(p, why)
    cdef object quic             # Hy2QuicConnection
    cdef object transport        # the TCP transport once connected
    cdef readonly long long stream_id
    cdef ShardWriter writer
    cdef readonly int slot       # counter slot, -1 when not counting
    cdef bint quic_is_tx         # bytes from QUIC are tx (server side: toward the target)
    cdef readonly bint reading_paused
    cdef readonly bint finished
    cdef bint credit_held
    cdef readonly bint send_stopped
    cdef list pending            # QUIC bytes that arrived before the TCP side connected
    cdef public bytes head       # written to the QUIC stream before any byte of the TCP side
    cdef bint pending_end
    cdef readonly unsigned long long from_quic_bytes
    cdef readonly unsigned long long from_tcp_bytes
    cdef public Py_ssize_t high_water
    cdef public Py_ssize_t low_water

    cdef list unwritten          # QUIC bytes for the TCP side, written by flush()
    cdef bint flush_asked        # the owner was told (pump_pending) and has not flushed yet
    cpdef from_quic(self, bytes data, bint end)
    cdef bint take(self, const unsigned char *data, Py_ssize_t n) except -1
    cpdef flush(self)
    cpdef check_resume(self)
    cpdef abort(self)
    cpdef stop_sending(self)
    cdef Py_ssize_t _left        # set by _spend: what may still go of the chunk
    cdef bint _spend(self, Py_ssize_t n) noexcept
    cdef void _count(self, Py_ssize_t from_quic, Py_ssize_t from_tcp) noexcept
    cdef _finish(self, str reason)
    cdef StreamSendBuffer _sender  # the stream's compiled send buffer, once known
    cdef StreamSendBuffer _stream_sender(self)
