# Hysteria 2 frames, C level: the parsers' state and the UDP message, so the server's stream
# dispatch and UDP session code (Cython) read fields without a Python attribute lookup.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from fastpath.hy2.wire.varint cimport varint_decode

cdef enum:
    TCP_REQUEST_ID = 0x401
    MAX_ADDRESS_LEN = 2048
    MAX_MESSAGE_LEN = 2048
    MAX_PADDING_LEN = 4096
    # session id (4) + packet id (2) + fragment id (1) + fragment count (1)
    UDP_FIXED_HEADER_LEN = 8
    # Everything of a TCP request or response before its padding, at its largest: two 8-byte
    # varints (frame type or status + length), 2048 bytes, an 8-byte padding length.
    TCP_HEADER_MAX = 8 + 8 + 2048 + 8
    # A whole request on the wire at its largest (header + padding).
    TCP_REQUEST_MAX = TCP_HEADER_MAX + 4096

# Why a parse failed (0 = it did not); ``_error_text`` in frames.pyx words them.
cdef enum FrameError:
    FRAME_OK = 0
    FRAME_BAD_TYPE
    FRAME_ADDRESS_EMPTY
    FRAME_ADDRESS_TOO_LONG
    FRAME_MESSAGE_TOO_LONG
    FRAME_PADDING_TOO_LONG
    FRAME_BAD_UTF8

# What ``tcp_header_scan`` found in the bytes before the padding.
cdef struct TcpHeader:
    uint64_t kind           # frame type (request) or status byte (response)
    size_t text_offset      # where the address / message starts
    size_t text_len
    size_t header_len       # bytes up to and including the padding length varint
    uint64_t padding_len
    FrameError error

# Bytes of a Python argument: bytes directly, anything else through the buffer protocol.
cdef struct Borrowed:
    const unsigned char *ptr
    Py_ssize_t len
    bint has_view
    Py_buffer view

cdef int tcp_header_scan(const unsigned char *buf, size_t n, bint response,
                         TcpHeader *out) noexcept nogil


cdef class UdpMessage:
    cdef readonly uint32_t session_id
    cdef readonly uint16_t packet_id
    cdef readonly uint8_t frag_id
    cdef readonly uint8_t frag_count
    cdef readonly str address
    cdef readonly bytes payload

cdef UdpMessage udp_message_from_buffer(const unsigned char *buf, size_t n)
cdef size_t udp_header_size(size_t alen) noexcept nogil
cdef size_t udp_header_put(unsigned char *out, uint32_t session_id, uint16_t packet_id,
                           uint8_t frag_id, uint8_t frag_count, const char *addr,
                           size_t alen) noexcept nogil


cdef class _TcpFrameParser:
    cdef unsigned char *_buf      # NULL unless a header is split across feeds
    cdef bytearray _hold          # the memory ``_buf`` points into
    cdef size_t _buf_len
    cdef int _state
    cdef uint64_t _padding_left
    cdef uint64_t _kind
    cdef str _text
    cdef bytes _leftover          # None until bytes follow the frame
    cdef str _error

    cdef int _feed_ptr(self, const unsigned char *data, size_t n) except -1
    cdef int _header_done(self, const unsigned char *hdr, TcpHeader *h) except -1
    cdef int _skip_padding(self, const unsigned char *data, size_t n) except -1
    cdef _fail(self, str reason)
    cdef void _release_buffer(self) noexcept


cdef class TcpRequestParser(_TcpFrameParser):
    pass


cdef class TcpResponseParser(_TcpFrameParser):
    pass


cdef class Defragmenter:
    cdef uint16_t _packet_id
    cdef uint8_t _frag_count     # 0: no packet in progress
    cdef uint8_t _received
    cdef bint _finished          # the current packet was delivered or given up: ignore it
    cdef size_t _size
    cdef readonly size_t max_packet_size
    cdef list _frags

    cpdef object feed(self, UdpMessage msg)


# Where the parts of a UDP message in one piece are, read in place (``udp_whole_message``).
cdef struct UdpWhole:
    uint32_t session_id
    size_t address            # offset and length of the address
    size_t address_len
    size_t payload            # offset of the payload (at least one byte)


cdef inline int udp_whole_message(const unsigned char *buf, size_t n, UdpWhole *out) noexcept nogil:
    """For the pumps' C paths: 1 if ``buf[:n]`` is a well-formed UDP message in one piece
    (fragment 0 of 1), its parts in ``out``; 0 if it is a fragment of a larger packet; -1 if
    it is not a well-formed message (dropped, as ``parse_udp_message`` + the defragmenter do)."""
    cdef uint64_t alen = 0
    cdef int used
    cdef size_t pos
    if n < UDP_FIXED_HEADER_LEN + 3:  # + 1-byte varint, 1-byte address, 1-byte payload
        return -1
    used = varint_decode(buf + UDP_FIXED_HEADER_LEN, n - UDP_FIXED_HEADER_LEN, &alen)
    if used == 0 or alen == 0 or alen > MAX_ADDRESS_LEN:
        return -1
    pos = UDP_FIXED_HEADER_LEN + <size_t>used
    if n - pos <= alen:
        return -1
    if buf[7] != 1:
        return 0 if buf[6] < buf[7] else -1
    if buf[6] != 0:
        return -1
    out.session_id = ((<uint32_t>buf[0] << 24) | (<uint32_t>buf[1] << 16)
                      | (<uint32_t>buf[2] << 8) | buf[3])
    out.address = pos
    out.address_len = <size_t>alen
    out.payload = pos + <size_t>alen
    return 1
