# The compiled QUIC packet builder, C level: what fastpath.hy2.quic.send_path writes frames through.
from libc.stdint cimport uint8_t, uint64_t, int64_t


# aioquic's C Buffer object (aioquic/_buffer.c): the Python object header, then the start, end
# and write position of its memory.  Checked at import by quic_builder.layout_ok().
cdef extern from *:
    """
    typedef struct { PyObject_HEAD uint8_t *base; uint8_t *end; uint8_t *pos; } fp_quic_buffer;
    """
    ctypedef struct fp_quic_buffer:
        uint8_t *base
        uint8_t *end
        uint8_t *pos


cdef class SentPacket:
    # aioquic's QuicSentPacket record, field for field (the names its connection and recovery
    # read), as a typed object: the compiled recovery and send path read it per packet.
    cdef public object epoch
    cdef public bint in_flight, is_ack_eliciting, is_crypto_packet
    cdef public int64_t packet_number
    cdef public object packet_type
    cdef public object sent_time
    cdef public Py_ssize_t sent_bytes
    cdef public list delivery_handlers
    cdef public object quic_logger_frames


cdef class QuicPacketBuilder:
    cdef public object quic_logger_frames
    cdef bint _has_max_flight, _has_max_total
    cdef int64_t _max_flight_bytes, _max_total_bytes

    cdef bytes _host_cid, _peer_cid, _peer_token
    cdef bint _is_client, _spin_bit
    cdef object _quic_logger
    cdef object _version

    cdef list _datagrams
    cdef list _packets
    cdef int64_t _datagram_flight_bytes, _flight_bytes, _total_bytes
    cdef bint _datagram_init, _datagram_needs_padding

    # the packet being built (_packet_type is None when there is none)
    cdef object _packet_type
    cdef object _packet_crypto
    cdef object _packet_frames
    cdef list _packet_handlers
    cdef bint _pkt_ack_eliciting, _pkt_in_flight, _pkt_crypto
    cdef Py_ssize_t _header_size, _packet_start
    cdef int64_t _packet_number
    cdef int64_t _tag_size

    # the sending keys of the last packet's CryptoPair (a _SendKeys) and its key phase
    cdef object _keys_crypto
    cdef object _keys
    cdef int _keys_phase

    cdef object _buffer
    cdef fp_quic_buffer *_mem
    cdef int64_t _buffer_capacity, _flight_capacity

    # -- the C interface of the compiled frame writers (fastpath.hy2.quic.send_path) -----------------
    cdef inline Py_ssize_t _tell(self):
        return self._mem.pos - self._mem.base
    cdef inline bint packet_empty(self):
        return self._tell() - self._packet_start <= self._header_size
    cdef inline int64_t flight_room(self):
        """remaining_flight_space: bytes an in-flight frame may still take in this packet."""
        return self._flight_capacity - self._tell() - self._tag_size
    cdef inline int64_t buffer_room(self):
        """remaining_buffer_space: bytes any frame may still take in this packet."""
        return self._buffer_capacity - self._tell() - self._tag_size
    cdef uint8_t *open_frame(self, uint64_t ftype, Py_ssize_t capacity, object handler,
                             object handler_args) except NULL
    cdef uint8_t *_open(self, uint64_t ftype, Py_ssize_t capacity, bint in_flight,
                        bint ack_eliciting, object handler, object handler_args) except NULL
    cdef inline void close_frame(self, uint8_t *end):
        self._mem.pos = end
    cdef int begin_packet(self, object packet_type, object crypto) except -1
    cdef int _end_packet(self) except -1
    cdef int _flush_current_datagram(self) except -1
    # flush(): ends the packet and the datagram being built; (datagrams, sent packets), the
    # builder left empty (the compiled write loop calls it without the Python method)
    cdef tuple take_flush(self)
