# cython: language_level=3, binding=False
# distutils: extra_compile_args = -mmemset-strategy=unrolled_loop:256:noalign,libcall:-1:noalign
#
# binding=False: the functions are plain builtins, called a few ns faster than cyfunctions.
# -mmemset-strategy: gcc otherwise clears a recycled parser or message (freelist) with
# ``rep stosq``, which costs more here than creating the whole object.
"""Hysteria 2 frames: the TCP request and response that open a proxy stream, and the UDP message
carried in QUIC datagrams, with its fragmentation and reassembly.

Sans-I/O: everything here is fed bytes and hands back bytes or small objects; nothing touches a
socket.  The parsers are written for hostile peers: lengths are checked against the protocol's
limits as soon as they are read, so no input makes a parser buffer more than one request header
(``TCP_HEADER_MAX`` bytes, padding is skipped without being kept) or a reassembler hold more
than one UDP datagram's worth of fragments.
"""
import os

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.unicode cimport (PyUnicode_1BYTE_DATA, PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8,
                             PyUnicode_New)
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

from fastpath.hy2.wire.varint cimport varint_decode, varint_encode, varint_size

# Random padding lengths of the reference implementation: a request carries 64..512 bytes, a
# response 128..1024, so the first packets of a stream do not have a telltale size.
TCP_REQUEST_PADDING = (64, 512)
TCP_RESPONSE_PADDING = (128, 1024)

# The protocol's limits, for Python callers (the C enums are in frames.pxd).
MAX_ADDRESS_BYTES = MAX_ADDRESS_LEN
MAX_MESSAGE_BYTES = MAX_MESSAGE_LEN
MAX_PADDING_BYTES = MAX_PADDING_LEN
MAX_TCP_REQUEST_BYTES = TCP_REQUEST_MAX

# Largest reassembled UDP payload: anything larger could not be sent as one UDP datagram, so a
# peer announcing more is either broken or hostile.
MAX_UDP_PACKET = 65535

class Incomplete(ValueError):
    """The bytes so far are a valid prefix of a frame, but the frame is not complete yet."""


# ----------------------------------------------------------------------------------------------
# Randomness for padding and packet ids.  Neither needs to be unpredictable, only to vary, so a
# splitmix64 generator (seeded from the OS, reseeded in a forked child) saves a Python call or a
# syscall per stream.

cdef uint64_t _rng_state = 0


def _reseed():
    global _rng_state
    _rng_state = int.from_bytes(os.urandom(8), "little")


_reseed()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


cdef inline uint64_t _rand64() noexcept nogil:
    global _rng_state
    _rng_state += <uint64_t>0x9E3779B97F4A7C15
    cdef uint64_t z = _rng_state
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline uint64_t _rand_between(uint64_t lo, uint64_t hi) noexcept nogil:
    """Uniform enough in ``lo..hi`` inclusive (the modulo bias is irrelevant for padding)."""
    return lo + _rand64() % (hi - lo + 1)


cdef inline void _fill_random(unsigned char *out, size_t n) noexcept nogil:
    cdef uint64_t r
    cdef size_t i = 0
    while i + 8 <= n:
        r = _rand64()
        memcpy(out + i, &r, 8)
        i += 8
    if i < n:
        r = _rand64()
        memcpy(out + i, &r, n - i)


cdef inline uint32_t _load_be32(const unsigned char *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline void _store_be32(unsigned char *p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 24)
    p[1] = <unsigned char>(v >> 16)
    p[2] = <unsigned char>(v >> 8)
    p[3] = <unsigned char>v


cdef str _error_text(FrameError err, uint64_t kind):
    if err == FRAME_BAD_TYPE:
        return f"not a TCP request: frame type {kind:#x}"
    if err == FRAME_ADDRESS_EMPTY:
        return "empty address"
    if err == FRAME_ADDRESS_TOO_LONG:
        return f"address longer than {MAX_ADDRESS_LEN} bytes"
    if err == FRAME_MESSAGE_TOO_LONG:
        return f"message longer than {MAX_MESSAGE_LEN} bytes"
    if err == FRAME_PADDING_TOO_LONG:
        return f"padding longer than {MAX_PADDING_LEN} bytes"
    if err == FRAME_BAD_UTF8:
        return "address is not valid UTF-8"
    return "malformed frame"


cdef inline int _check_uint(long long value, long long limit, str name) except -1:
    """ValueError unless ``0 <= value <= limit``."""
    if value < 0 or value > limit:
        raise ValueError(f"{name} out of range 0..{limit}: {value}")
    return 0


cdef inline const char *_utf8(str text, Py_ssize_t *n, Py_ssize_t lo, Py_ssize_t hi,
                             str name) except NULL:
    """UTF-8 bytes of ``text`` (CPython's cached encoding: no copy for ASCII), length checked."""
    cdef const char *p = PyUnicode_AsUTF8AndSize(text, n)
    if n[0] < lo or n[0] > hi:
        raise ValueError(f"{name} must be {lo}..{hi} bytes of UTF-8, got {n[0]}")
    return p


cdef inline bint _is_ascii(const unsigned char *p, size_t n) noexcept nogil:
    cdef unsigned char acc = 0
    cdef size_t i
    for i in range(n):
        acc |= p[i]
    return acc < 0x80


cdef inline str _decode_text(const unsigned char *p, size_t n, bint strict):
    """``p[:n]`` as str: strict UTF-8 (None if invalid) or with replacement characters.

    Addresses are nearly always ASCII, which cannot fail to decode: checking that first keeps
    the exception machinery of a ``try`` off the common path.
    """
    cdef str text
    if _is_ascii(p, n):
        text = PyUnicode_New(n, 127)            # compact ASCII: its bytes are its data
        memcpy(PyUnicode_1BYTE_DATA(text), p, n)
        return text
    if not strict:
        return PyUnicode_DecodeUTF8(<const char *>p, n, "replace")
    try:
        return PyUnicode_DecodeUTF8(<const char *>p, n, NULL)
    except UnicodeDecodeError:
        return None


cdef inline int _borrow(object data, Borrowed *b) except -1:
    """Point ``b`` at the bytes of ``data``: bytes directly, anything else through the buffer
    protocol (which ``_release`` gives back)."""
    if type(data) is bytes:
        b.ptr = <const unsigned char *>PyBytes_AS_STRING(data)
        b.len = PyBytes_GET_SIZE(data)
        b.has_view = False
    else:
        PyObject_GetBuffer(data, &b.view, PyBUF_SIMPLE)
        b.ptr = <const unsigned char *>b.view.buf
        b.len = b.view.len
        b.has_view = True
    return 0


cdef inline void _release(Borrowed *b) noexcept:
    if b.has_view:
        PyBuffer_Release(&b.view)


# ----------------------------------------------------------------------------------------------
# TCP request and response


cdef int tcp_header_scan(const unsigned char *buf, size_t n, bint response,
                         TcpHeader *out) noexcept nogil:
    """Scan the part of a request (``response`` false) or response before its padding.

    1: complete, ``out`` filled; 0: a valid prefix, need more bytes; -1: malformed, ``out.error``
    says why.  Every length is checked the moment it is read, so a 0 always means
    ``n < out's eventual header_len <= TCP_HEADER_MAX``.  Constant time: no byte is scanned.
    """
    cdef size_t pos
    cdef int used
    cdef uint64_t v = 0
    out.error = FRAME_OK
    if response:
        if n == 0:
            return 0
        out.kind = buf[0]
        pos = 1
    else:
        used = varint_decode(buf, n, &v)
        if used == 0:
            return 0
        out.kind = v
        if v != TCP_REQUEST_ID:
            out.error = FRAME_BAD_TYPE
            return -1
        pos = <size_t>used
    used = varint_decode(buf + pos, n - pos, &v)
    if used == 0:
        return 0
    pos += <size_t>used
    if response:
        if v > MAX_MESSAGE_LEN:
            out.error = FRAME_MESSAGE_TOO_LONG
            return -1
    elif v == 0:
        out.error = FRAME_ADDRESS_EMPTY
        return -1
    elif v > MAX_ADDRESS_LEN:
        out.error = FRAME_ADDRESS_TOO_LONG
        return -1
    out.text_offset = pos
    out.text_len = <size_t>v
    if n - pos < v:
        return 0
    pos += <size_t>v
    used = varint_decode(buf + pos, n - pos, &v)
    if used == 0:
        return 0
    if v > MAX_PADDING_LEN:
        out.error = FRAME_PADDING_TOO_LONG
        return -1
    out.header_len = pos + <size_t>used
    out.padding_len = v
    return 1


cdef bytes _encode_tcp_frame(bint response, uint64_t kind, const char *text, Py_ssize_t text_len,
                             object padding_len, uint64_t pad_lo, uint64_t pad_hi):
    cdef uint64_t pad
    if padding_len is None:
        pad = _rand_between(pad_lo, pad_hi)
    else:
        _check_uint(padding_len, MAX_PADDING_LEN, "padding_len")
        pad = <uint64_t>padding_len
    cdef Py_ssize_t total = ((1 if response else varint_size(kind)) + varint_size(<uint64_t>text_len)
                             + text_len + varint_size(pad) + <Py_ssize_t>pad)
    cdef bytes frame = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char *out = <unsigned char *>PyBytes_AS_STRING(frame)
    cdef Py_ssize_t pos
    if response:
        out[0] = <unsigned char>kind
        pos = 1
    else:
        pos = varint_encode(kind, out)
    pos += varint_encode(<uint64_t>text_len, out + pos)
    memcpy(out + pos, text, text_len)
    pos += text_len
    pos += varint_encode(pad, out + pos)
    _fill_random(out + pos, <size_t>pad)
    return frame


def encode_tcp_request(str address not None, padding_len=None):
    """The request that opens a proxy stream to ``address`` ("host:port", "[v6]:port").

    ``padding_len`` None picks a random 64..512 bytes, as the reference client does.
    """
    cdef Py_ssize_t alen
    cdef const char *addr = _utf8(address, &alen, 1, MAX_ADDRESS_LEN, "address")
    return _encode_tcp_frame(False, TCP_REQUEST_ID, addr, alen, padding_len,
                             TCP_REQUEST_PADDING[0], TCP_REQUEST_PADDING[1])


def encode_tcp_response(bint ok, str message not None, padding_len=None):
    """The server's answer after dialing: status 0 (ok) or 1 (error) and a message of at most
    2048 bytes of UTF-8 (callers shorten dial errors).  ``padding_len`` None: random 128..1024."""
    cdef Py_ssize_t mlen
    cdef const char *msg = _utf8(message, &mlen, 0, MAX_MESSAGE_LEN, "message")
    return _encode_tcp_frame(True, 0 if ok else 1, msg, mlen, padding_len,
                             TCP_RESPONSE_PADDING[0], TCP_RESPONSE_PADDING[1])


cdef str _parse_tcp_frame(data, bint response, TcpHeader *h):
    """One-shot parse shared by ``parse_tcp_request`` and ``parse_tcp_response``: the text,
    ``h`` filled in."""
    cdef Borrowed b
    cdef int r
    _borrow(data, &b)
    try:
        r = tcp_header_scan(b.ptr, <size_t>b.len, response, h)
        if r < 0:
            raise ValueError(_error_text(h.error, h.kind))
        if r == 0:
            raise Incomplete("incomplete TCP response" if response else "incomplete TCP request")
        # The text is checked before the padding is waited for, as the incremental parser does.
        text = _decode_text(b.ptr + h.text_offset, h.text_len, not response)
        if text is None:
            raise ValueError(_error_text(FRAME_BAD_UTF8, h.kind))
        if <size_t>b.len - h.header_len < h.padding_len:
            raise Incomplete("incomplete TCP response" if response else "incomplete TCP request")
        return text
    finally:
        _release(&b)


@cython.always_allow_keywords(False)   # METH_O: one positional argument
def parse_tcp_request(data):
    """Parse a whole TCP request at the start of ``data``: ``(address, consumed)``.

    ValueError if malformed; ``Incomplete`` (a ValueError) if ``data`` ends before the request
    does, padding included.  Bytes after ``consumed`` are the client's early payload.
    """
    cdef TcpHeader h
    address = _parse_tcp_frame(data, False, &h)
    return address, h.header_len + h.padding_len


@cython.always_allow_keywords(False)   # METH_O: one positional argument
def parse_tcp_response(data):
    """Parse a whole TCP response at the start of ``data``: ``(ok, message, consumed)``; errors
    as ``parse_tcp_request``.  A message that is not valid UTF-8 is decoded with replacement
    characters: it is only ever shown to a person."""
    cdef TcpHeader h
    message = _parse_tcp_frame(data, True, &h)
    return h.kind == 0, message, h.header_len + h.padding_len


# Parser states.
cdef enum:
    ST_HEADER = 0
    ST_PADDING = 1
    ST_DONE = 2
    ST_ERROR = 3


# no_gc: the object fields are only ever str or bytes, which cannot form a reference cycle, so
# leaving these objects out of the cycle collector makes them cheaper to create and free.
@cython.no_gc
@cython.freelist(16)
cdef class _TcpFrameParser:
    """Incremental parser of the request or the response; the two differ only in their first
    field and in how their text is checked.

    A header that arrives whole is scanned in place.  One split across feeds is gathered in a
    buffer of ``TCP_HEADER_MAX`` bytes, allocated only then and freed as soon as the header is
    read (the scan rejects any length that would not fit before asking for more); padding is
    counted down, never stored.  A malformed frame sets ``error`` and the parser ignores
    everything after: feed never raises on what the peer sent.
    """

    # No __cinit__ nor __dealloc__: a new object is already in its start state (C fields
    # zeroed, so ``_state`` is ST_HEADER and ``_buf`` NULL; object fields None, ``leftover``
    # reads None as b""), and the split-header buffer is a bytearray field that goes with the
    # object, so creating and freeing a parser per stream stays cheap.

    @cython.always_allow_keywords(False)
    def feed(self, data):
        """Feed the next bytes of the stream.

        Bytes fed after ``done`` are appended to ``leftover`` (the caller normally hands the
        stream to the relay once done and stops feeding); bytes fed after ``error`` are dropped.
        """
        # A ``def`` of one positional argument is called through METH_O, the cheapest call
        # there is from Python (the only caller); C callers use ``_feed_ptr``.
        cdef Borrowed b
        if self._state == ST_DONE:
            self._leftover = (self._leftover or b"") + bytes(data)
            return
        if self._state == ST_ERROR:
            return
        if type(data) is bytes:         # the common case: nothing to release afterwards
            self._feed_ptr(<const unsigned char *>PyBytes_AS_STRING(data),
                           <size_t>PyBytes_GET_SIZE(data))
            return
        _borrow(data, &b)
        try:
            self._feed_ptr(b.ptr, <size_t>b.len)
        finally:
            _release(&b)

    cdef int _feed_ptr(self, const unsigned char *data, size_t n) except -1:
        cdef TcpHeader h
        cdef int r
        cdef size_t prev, take, off
        cdef bint response = type(self) is TcpResponseParser
        if self._state == ST_PADDING:
            return self._skip_padding(data, n)
        # ST_HEADER
        if n == 0:
            return 0
        if self._buf_len == 0:
            # Common case: the whole header is in this one chunk, scan it in place.
            r = tcp_header_scan(data, n, response, &h)
            if r == 0:
                if n > TCP_HEADER_MAX:  # cannot happen: see tcp_header_scan
                    self._fail("oversized header")
                    return 0
                if self._buf == NULL:
                    self._hold = PyByteArray_FromStringAndSize(NULL, TCP_HEADER_MAX)
                    self._buf = <unsigned char *>PyByteArray_AS_STRING(self._hold)
                memcpy(self._buf, data, n)
                self._buf_len = n
                return 0
            if r < 0:
                self._fail(_error_text(h.error, h.kind))
                return 0
            self._header_done(data, &h)
            off = h.header_len
        else:
            prev = self._buf_len
            take = TCP_HEADER_MAX - prev
            if take > n:
                take = n
            memcpy(self._buf + prev, data, take)
            self._buf_len = prev + take
            r = tcp_header_scan(self._buf, self._buf_len, response, &h)
            if r == 0:
                if self._buf_len == TCP_HEADER_MAX:  # cannot happen: see tcp_header_scan
                    self._fail("oversized header")
                return 0
            if r < 0:
                self._fail(_error_text(h.error, h.kind))
                return 0
            self._header_done(self._buf, &h)
            # Every byte buffered before this feed belongs to the header (it was incomplete
            # without them), so the header ends inside this chunk.
            off = h.header_len - prev
        self._release_buffer()
        if self._state == ST_ERROR:
            return 0
        self._padding_left = h.padding_len
        self._state = ST_PADDING
        return self._skip_padding(data + off, n - off)

    cdef int _header_done(self, const unsigned char *hdr, TcpHeader *h) except -1:
        self._kind = h.kind
        self._text = _decode_text(hdr + h.text_offset, h.text_len,
                                  type(self) is not TcpResponseParser)
        if self._text is None:
            self._fail(_error_text(FRAME_BAD_UTF8, h.kind))
        return 0

    cdef int _skip_padding(self, const unsigned char *data, size_t n) except -1:
        if self._padding_left > n:
            self._padding_left -= n
            return 0
        cdef size_t skip = <size_t>self._padding_left
        self._padding_left = 0
        self._state = ST_DONE
        if skip < n:
            self._leftover = PyBytes_FromStringAndSize(<char *>data + skip, n - skip)
        return 0

    cdef _fail(self, str reason):
        self._state = ST_ERROR
        self._error = reason
        self._release_buffer()

    cdef void _release_buffer(self) noexcept:
        self._hold = None
        self._buf = NULL
        self._buf_len = 0

    @property
    def done(self):
        """True once the whole frame, padding included, has been read."""
        return self._state == ST_DONE

    @property
    def error(self):
        """Why the frame is malformed (the stream should be closed), or None."""
        return self._error

    @property
    def leftover(self):
        """Bytes after the frame: payload the peer sent without waiting.  b"" until done."""
        return b"" if self._leftover is None else self._leftover


@cython.no_gc
cdef class TcpRequestParser(_TcpFrameParser):
    """Incremental parser of the client's TCP request (server side)."""

    @property
    def address(self):
        """The target "host:port" once done, else None."""
        return self._text if self._state == ST_DONE else None


@cython.no_gc
cdef class TcpResponseParser(_TcpFrameParser):
    """Incremental parser of the server's TCP response (client side).  Any nonzero status is a
    failure, as the reference client reads it."""

    @property
    def ok(self):
        """True if the server connected to the target, False if not, None until done."""
        return (self._kind == 0) if self._state == ST_DONE else None

    @property
    def message(self):
        """The server's message ("Connected" or the dial error) once done, else None."""
        return self._text if self._state == ST_DONE else None


# ----------------------------------------------------------------------------------------------
# UDP messages

# The last address decoded, reused while it repeats: a session's datagrams nearly always come
# from and go to the same "host:port", and this saves a str per datagram.
cdef enum:
    ADDRESS_CACHE_MAX = 256
cdef unsigned char _addr_cache[ADDRESS_CACHE_MAX]
cdef size_t _addr_cache_len = 0
cdef str _addr_cache_str = None


cdef inline str _decode_address(const unsigned char *p, size_t n):
    """The address as str, None if it is not valid UTF-8."""
    global _addr_cache_len, _addr_cache_str
    if n == _addr_cache_len and memcmp(p, _addr_cache, n) == 0:
        return _addr_cache_str
    text = _decode_text(p, n, True)
    if text is None:
        return None
    if n <= ADDRESS_CACHE_MAX:
        memcpy(_addr_cache, p, n)
        _addr_cache_len = n
        _addr_cache_str = text
    return text


@cython.no_gc  # str and bytes fields only: no cycles (see _TcpFrameParser)
@cython.freelist(64)
cdef class UdpMessage:
    """One UDP message (possibly one fragment of a packet), as carried in a QUIC datagram."""

    def __init__(self, long long session_id, long long packet_id, long long frag_id,
                 long long frag_count, str address not None,
                 bytes payload not None):
        _check_uint(session_id, 0xffffffff, "session_id")
        _check_uint(packet_id, 0xffff, "packet_id")
        _check_uint(frag_id, 0xff, "frag_id")
        _check_uint(frag_count, 0xff, "frag_count")
        self.session_id = session_id
        self.packet_id = packet_id
        self.frag_id = frag_id
        self.frag_count = frag_count
        self.address = address
        self.payload = payload

    def encode(self):
        """This message on the wire."""
        return encode_udp_message(self.session_id, self.packet_id, self.frag_id,
                                  self.frag_count, self.address, self.payload)

    def _fields(self):
        return (self.session_id, self.packet_id, self.frag_id, self.frag_count, self.address,
                self.payload)

    def __eq__(self, other):
        if not isinstance(other, UdpMessage):
            return NotImplemented
        return self._fields() == (<UdpMessage>other)._fields()

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        return (f"UdpMessage(session_id={self.session_id}, packet_id={self.packet_id}, "
                f"frag_id={self.frag_id}, frag_count={self.frag_count}, "
                f"address={self.address!r}, payload=<{len(self.payload)} bytes>)")


cdef UdpMessage udp_message_from_buffer(const unsigned char *buf, size_t n):
    """Parse one datagram; None if it is not a well-formed UDP message."""
    cdef uint64_t alen = 0
    cdef int used
    cdef size_t pos
    if n < UDP_FIXED_HEADER_LEN + 3:  # + 1-byte varint, 1-byte address, 1-byte payload
        return None
    used = varint_decode(buf + UDP_FIXED_HEADER_LEN, n - UDP_FIXED_HEADER_LEN, &alen)
    if used == 0 or alen == 0 or alen > MAX_ADDRESS_LEN:
        return None
    pos = UDP_FIXED_HEADER_LEN + <size_t>used
    if n - pos <= alen:  # the payload has at least one byte
        return None
    address = _decode_address(buf + pos, <size_t>alen)
    if address is None:
        return None
    pos += <size_t>alen
    cdef UdpMessage msg = UdpMessage.__new__(UdpMessage)
    msg.session_id = _load_be32(buf)
    msg.packet_id = (<uint16_t>buf[4] << 8) | buf[5]
    msg.frag_id = buf[6]
    msg.frag_count = buf[7]
    msg.address = address
    msg.payload = PyBytes_FromStringAndSize(<char *>buf + pos, n - pos)
    return msg


@cython.always_allow_keywords(False)   # METH_O: one positional argument
def parse_udp_message(data):
    """Parse one datagram: a ``UdpMessage``, or None when it does not parse (such datagrams are
    dropped silently, as the reference does)."""
    cdef Borrowed b
    _borrow(data, &b)
    try:
        return udp_message_from_buffer(b.ptr, <size_t>b.len)
    finally:
        _release(&b)


cdef size_t udp_header_size(size_t alen) noexcept nogil:
    """Bytes of a UDP message before its payload, for an address of ``alen`` bytes."""
    return UDP_FIXED_HEADER_LEN + <size_t>varint_size(alen) + alen


cdef size_t udp_header_put(unsigned char *out, uint32_t session_id, uint16_t packet_id,
                           uint8_t frag_id, uint8_t frag_count, const char *addr,
                           size_t alen) noexcept nogil:
    """Write a UDP message header (address included, ``alen`` <= 2048 unchecked) to ``out``,
    which has ``udp_header_size(alen)`` bytes; return that size.  For a sender that builds
    datagrams in its own buffer."""
    _store_be32(out, session_id)
    out[4] = <unsigned char>(packet_id >> 8)
    out[5] = <unsigned char>packet_id
    out[6] = frag_id
    out[7] = frag_count
    cdef size_t pos = UDP_FIXED_HEADER_LEN + <size_t>varint_encode(alen, out + UDP_FIXED_HEADER_LEN)
    memcpy(out + pos, addr, alen)
    return pos + alen


def encode_udp_message(long long session_id, long long packet_id, long long frag_id,
                       long long frag_count, str address not None, payload):
    """One UDP message on the wire.  ValueError for out-of-range ids, an address that is not
    1..2048 bytes of UTF-8, or an empty payload."""
    _check_uint(session_id, 0xffffffff, "session_id")
    _check_uint(packet_id, 0xffff, "packet_id")
    _check_uint(frag_id, 0xff, "frag_id")
    _check_uint(frag_count, 0xff, "frag_count")
    cdef Py_ssize_t alen
    cdef const char *addr = _utf8(address, &alen, 1, MAX_ADDRESS_LEN, "address")
    cdef Borrowed b
    cdef unsigned char *out
    cdef size_t pos
    _borrow(payload, &b)
    try:
        if b.len == 0:
            raise ValueError("a UDP message needs a payload of at least one byte")
        msg = PyBytes_FromStringAndSize(
            NULL, UDP_FIXED_HEADER_LEN + varint_size(<uint64_t>alen) + alen + b.len)
        out = <unsigned char *>PyBytes_AS_STRING(msg)
        pos = udp_header_put(out, <uint32_t>session_id, <uint16_t>packet_id, <uint8_t>frag_id,
                              <uint8_t>frag_count, addr, <size_t>alen)
        memcpy(out + pos, b.ptr, b.len)
        return msg
    finally:
        _release(&b)


def fragment_udp_message(long long session_id, str address not None, payload,
                         Py_ssize_t max_datagram=1200):
    """Encode a UDP payload as one message, or as fragments when it does not fit.

    ``max_datagram`` is the largest encoded message allowed (the caller has already taken the
    QUIC DATAGRAM frame overhead off).  A message that fits goes out whole with packet id 0,
    fragment 0 of 1; otherwise a random packet id in 1..65535 and as many fragments as needed,
    each repeating the full header with the address.  ValueError if that takes more than 255
    fragments or the header alone does not fit.
    """
    _check_uint(session_id, 0xffffffff, "session_id")
    cdef Py_ssize_t alen
    cdef const char *addr = _utf8(address, &alen, 1, MAX_ADDRESS_LEN, "address")
    cdef Py_buffer view
    cdef const unsigned char *src
    cdef unsigned char *out
    cdef Py_ssize_t header_len = <Py_ssize_t>udp_header_size(<size_t>alen)
    cdef Py_ssize_t chunk, nfrags, i, start, size
    cdef uint16_t packet_id
    cdef size_t pos
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        if view.len == 0:
            raise ValueError("a UDP message needs a payload of at least one byte")
        src = <const unsigned char *>view.buf
        if header_len + view.len <= max_datagram:
            msg = PyBytes_FromStringAndSize(NULL, header_len + view.len)
            out = <unsigned char *>PyBytes_AS_STRING(msg)
            pos = udp_header_put(out, <uint32_t>session_id, 0, 0, 1, addr, <size_t>alen)
            memcpy(out + pos, src, view.len)
            return [msg]
        chunk = max_datagram - header_len
        if chunk < 1:
            raise ValueError(f"max_datagram {max_datagram} leaves no room for payload after "
                             f"a {header_len}-byte header")
        nfrags = (view.len + chunk - 1) // chunk
        if nfrags > 255:
            raise ValueError(f"payload of {view.len} bytes needs {nfrags} fragments (max 255)")
        packet_id = <uint16_t>_rand_between(1, 0xffff)
        frags = []
        start = 0
        for i in range(nfrags):
            size = chunk if view.len - start > chunk else view.len - start
            msg = PyBytes_FromStringAndSize(NULL, header_len + size)
            out = <unsigned char *>PyBytes_AS_STRING(msg)
            pos = udp_header_put(out, <uint32_t>session_id, packet_id, <uint8_t>i,
                                  <uint8_t>nfrags, addr, <size_t>alen)
            memcpy(out + pos, src + start, size)
            frags.append(msg)
            start += size
        return frags
    finally:
        PyBuffer_Release(&view)


cdef class Defragmenter:
    """Reassembles fragmented UDP packets of one session.

    As the reference receiver: one packet in progress; a fragment with another packet id or
    fragment count starts over; duplicates are ignored; a fragment id >= count is dropped; an
    unfragmented message (count 1) is delivered at once without disturbing the packet in
    progress.  Once a packet is delivered its late duplicates are ignored too.  Memory is at
    most 255 fragment references and ``max_packet_size`` payload bytes: a packet that would
    grow larger is abandoned.
    """

    def __cinit__(self, size_t max_packet_size=MAX_UDP_PACKET):
        self._packet_id = 0
        self._frag_count = 0
        self._received = 0
        self._finished = False
        self._size = 0
        self.max_packet_size = max_packet_size
        self._frags = None

    cpdef object feed(self, UdpMessage msg):
        """The complete payload when ``msg`` completes a packet (or is one), else None."""
        if msg is None:
            raise TypeError("Defragmenter.feed() needs a UdpMessage, not None")
        cdef uint8_t count = msg.frag_count
        cdef uint8_t fid = msg.frag_id
        cdef bytes payload = msg.payload
        cdef size_t size = PyBytes_GET_SIZE(payload)
        if fid >= count:
            return None
        if count == 1:
            return payload
        if msg.packet_id != self._packet_id or count != self._frag_count:
            self._packet_id = msg.packet_id
            self._frag_count = count
            self._received = 0
            self._size = 0
            self._finished = False
            self._frags = [None] * count
        elif self._finished:
            return None
        if self._frags[fid] is not None:
            return None
        if self._size + size > self.max_packet_size:
            self._frags = None
            self._finished = True
            return None
        self._frags[fid] = payload
        self._size += size
        self._received += 1
        if self._received < count:
            return None
        whole = b"".join(self._frags)
        self._frags = None
        self._finished = True
        return whole

    @property
    def pending_bytes(self):
        """Payload bytes held for the packet in progress."""
        return 0 if self._finished else self._size
