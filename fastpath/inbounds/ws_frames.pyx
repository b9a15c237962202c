"""WebSocket data frames of the proxy inbounds' WebSocket transport, in C.

The handshake is the ``websockets`` package's (``ws_transport.py``); this is what runs per
relayed chunk once it is done: ``WsReader.feed(raw) -> payload`` unmasks what the client sends
(RFC 6455 section 5: client frames are masked), ``WsWriter.seal(payload) -> frame`` frames what
goes back (one unmasked binary frame per chunk).  Written by hand because the library's frame
layer builds Python objects per frame and unmasks in a separate pass; a relay at line rate
needs the unmasking in the loop that copies (8 bytes at a time), and a frame's payload is
passed on as it arrives, so memory stays bounded whatever length a frame announces.

Control frames: a ping's payload goes to ``on_ping`` (the transport answers it with
``WsWriter.pong``), a pong is dropped (the server never pings), close ends the stream
(``WsClosed``).  Text frames are taken as data, as the reference servers do.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy

OP_CONTINUATION = 0
OP_TEXT = 1
OP_BINARY = 2
OP_CLOSE = 8
OP_PING = 9
OP_PONG = 10
MAX_CONTROL = 125

cdef enum:          # the same, as C constants for the per-frame code
    C_CONTINUATION = 0
    C_TEXT = 1
    C_BINARY = 2
    C_CLOSE = 8
    C_PING = 9
    C_PONG = 10
    C_MAX_CONTROL = 125


class WsError(ValueError):
    """A frame breaks RFC 6455: the connection ends."""


class WsClosed(WsError):
    """The client sent a close frame."""


cdef class WsReader:
    cdef unsigned char head[14]
    cdef int head_len          # bytes of the current frame's header read so far
    cdef unsigned long long left   # payload bytes of the current frame still to come
    cdef unsigned char mask[4]
    cdef unsigned int mask_pos
    cdef bint data_frame       # the current frame's payload is data (else it is dropped)
    cdef unsigned char *out
    cdef size_t cap
    cdef unsigned char ctrl[125]   # the payload of the control frame being read
    cdef int ctrl_len
    cdef int op
    cdef public object on_ping     # called with a ping's payload once it is whole

    def __dealloc__(self):
        free(self.out)

    cdef int _end_frame(self) except -1:
        self.head_len = 0
        if self.op == C_PING and self.on_ping is not None:
            self.on_ping(PyBytes_FromStringAndSize(<char *>self.ctrl, self.ctrl_len))
        return 0

    cdef int _head_size(self) noexcept:
        """Header bytes the current frame needs (as far as known)."""
        cdef int size = 2
        if self.head_len < 2:
            return 2
        if (self.head[1] & 0x7F) == 126:
            size += 2
        elif (self.head[1] & 0x7F) == 127:
            size += 8
        if self.head[1] & 0x80:
            size += 4
        return size

    cdef int _start_frame(self) except -1:
        cdef int op = self.head[0] & 0x0F
        cdef int n7 = self.head[1] & 0x7F
        cdef int at = 2
        cdef unsigned long long length
        cdef int i
        if self.head[0] & 0x70:
            raise WsError("reserved bits set (no extension was agreed)")
        if not self.head[1] & 0x80:
            raise WsError("a client frame is not masked")
        if n7 == 126:
            length = (self.head[2] << 8) | self.head[3]
            at = 4
        elif n7 == 127:
            length = 0
            for i in range(8):
                length = (length << 8) | self.head[2 + i]
            at = 10
            if length >> 63:
                raise WsError("frame length out of range")
        else:
            length = n7
        if op >= 8:
            if length > C_MAX_CONTROL or not self.head[0] & 0x80:
                raise WsError("a control frame is fragmented or too long")
            if op == C_CLOSE:
                raise WsClosed("the client closed the WebSocket")
            if op != C_PING and op != C_PONG:
                raise WsError(f"opcode {op}")
            self.data_frame = False
        elif op == C_CONTINUATION or op == C_TEXT or op == C_BINARY:
            self.data_frame = True
        else:
            raise WsError(f"opcode {op}")
        memcpy(self.mask, self.head + at, 4)
        self.mask_pos = 0
        self.left = length
        self.op = op
        self.ctrl_len = 0
        return 0

    def feed(self, bytes data):
        cdef const unsigned char *src = <unsigned char *>PyBytes_AS_STRING(data)
        cdef size_t n = PyBytes_GET_SIZE(data), pos = 0, out_len = 0, take, i
        cdef int need
        cdef unsigned char *grown
        cdef uint64_t key64, word
        cdef unsigned char k[8]
        if n > self.cap:
            grown = <unsigned char *>realloc(self.out, n)
            if grown == NULL:
                raise MemoryError()
            self.out, self.cap = grown, n
        while pos < n:
            if self.left == 0 and self.head_len >= 0:
                # reading a header
                need = self._head_size()
                while self.head_len < need and pos < n:
                    self.head[self.head_len] = src[pos]
                    self.head_len += 1
                    pos += 1
                    need = self._head_size()
                if self.head_len < need:
                    break
                self._start_frame()
                self.head_len = -1          # in a payload
                if self.left == 0:
                    self._end_frame()
                continue
            take = n - pos
            if take > self.left:
                take = <size_t>self.left
            if self.data_frame:
                for i in range(8):
                    k[i] = self.mask[(self.mask_pos + i) & 3]
                memcpy(&key64, k, 8)
                i = 0
                while i + 8 <= take:
                    memcpy(&word, src + pos + i, 8)
                    word ^= key64
                    memcpy(self.out + out_len + i, &word, 8)
                    i += 8
                while i < take:
                    self.out[out_len + i] = src[pos + i] ^ self.mask[(self.mask_pos + i) & 3]
                    i += 1
                out_len += take
            else:                           # a control frame: at most 125 bytes, kept
                for i in range(take):
                    self.ctrl[self.ctrl_len + i] = src[pos + i] ^ self.mask[(self.mask_pos + i) & 3]
                self.ctrl_len += <int>take
            self.mask_pos = (self.mask_pos + take) & 3
            self.left -= take
            pos += take
            if self.left == 0:
                self._end_frame()
        return PyBytes_FromStringAndSize(<char *>self.out, out_len)


cdef class WsWriter:
    """Frames each chunk as one unmasked binary frame (a server's frames are not masked)."""
    cdef public bytes prefix

    def __init__(self, bytes prefix=b""):
        self.prefix = prefix

    def seal(self, bytes data):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef Py_ssize_t pre = PyBytes_GET_SIZE(self.prefix)
        cdef int h, i
        cdef bytes frame
        cdef unsigned char *p
        h = 2 if n < 126 else (4 if n < 65536 else 10)
        frame = PyBytes_FromStringAndSize(NULL, pre + h + n)
        p = <unsigned char *>PyBytes_AS_STRING(frame)
        if pre:
            memcpy(p, PyBytes_AS_STRING(self.prefix), pre)
            self.prefix = b""
            p += pre
        p[0] = 0x80 | C_BINARY
        if h == 2:
            p[1] = <unsigned char>n
        elif h == 4:
            p[1] = 126
            p[2] = (n >> 8) & 0xFF
            p[3] = n & 0xFF
        else:
            p[1] = 127
            for i in range(8):
                p[2 + i] = (n >> (8 * (7 - i))) & 0xFF
        memcpy(p + h, PyBytes_AS_STRING(data), n)
        return frame


def pong(bytes payload):
    """The server's answer to a ping: its payload back, unmasked (RFC 6455 section 5.5.3)."""
    if len(payload) > MAX_CONTROL:
        raise WsError("a ping payload has at most 125 bytes")
    return bytes([0x80 | OP_PONG, len(payload)]) + payload


cdef class CodecChain:
    """Two codecs in a row: ``feed`` through ``first`` then ``second`` (the WebSocket frames,
    then the protocol's chunks), ``seal`` the other way round."""
    cdef object first
    cdef object second

    def __init__(self, first, second):
        self.first = first
        self.second = second

    def feed(self, bytes data):
        data = self.first.feed(data)
        if not data:
            return b""
        return self.second.feed(data)

    def seal(self, bytes data):
        return self.first.seal(self.second.seal(data))
