"""The send half of a QUIC stream in C: its buffer, its ranges, and its STREAM frames.

Why: in a Hysteria 2 download every packet carries one STREAM frame, and aioquic's stream
sender makes Python objects for each (a ``bytes`` copy of the data, a frame object, ``range``
objects in two ``RangeSet`` lists, a bound method) and its connection writes the frame field by
field through Python calls.  This class keeps the same state in C (one growable byte buffer,
two sorted arrays of offset ranges) and writes a whole STREAM frame straight into the compiled
packet builder's memory (``write_frame``), so the per-packet cost is a memcpy and a few
integers.

Written from RFC 9000 (sections 2.2, 3.1, 4.5, 13.3, 19.8): the sender keeps every byte from
the lowest unacknowledged offset; bytes are sent from the lowest pending range; a lost range is
pending again; an acknowledged prefix is dropped; a FIN rides on the frame that reaches the
final size, or alone when all data was sent; the send half is finished when every byte and the
FIN are acknowledged, or when a RESET_STREAM is.

It also offers the interface aioquic's connection calls on ``stream.sender`` (``write``,
``get_frame``, ``on_data_delivery``, ``reset``, ``get_reset_frame``, ``on_reset_delivery``,
``next_offset``, ``buffer_is_empty``, ``highest_offset``, ``is_finished``,
``reset_pending``), so aioquic's own write loop (which fastpath falls back to when something
unusual is pending) and its recovery (which calls the delivery handlers) work with it unchanged.
``tests/hy2/test_send_path.py`` runs it against aioquic's sender on the same random operations.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy, memmove

from aioquic.quic.packet import QuicResetStreamFrame, QuicStreamFrame
from aioquic.quic.packet_builder import QuicDeliveryState

from fastpath.hy2.quic.packet_protection cimport put_varint as _put_varint
from fastpath.hy2.wire.varint cimport varint_size as _varint_size

cdef object _ACKED = QuicDeliveryState.ACKED

cdef enum:
    STREAM_BASE = 0x08
    STREAM_OFF = 0x04
    STREAM_LEN = 0x02
    STREAM_FIN = 0x01
    MAX_2BYTE = 0x3FFF


# -- sorted range arrays ------------------------------------------------------------------------
cdef int _reserve(fp_ranges *r, Py_ssize_t n) except -1:
    cdef Py_ssize_t cap
    cdef int64_t *v
    if n <= r.cap:
        return 0
    cap = r.cap * 2 if r.cap else 4
    while cap < n:
        cap *= 2
    v = <int64_t *>PyMem_Realloc(r.v, cap * 2 * sizeof(int64_t))
    if v == NULL:
        raise MemoryError()
    r.v = v
    r.cap = cap
    return 0


cdef int _ranges_add(fp_ranges *r, int64_t start, int64_t stop) except -1:
    """Adds [start, stop), merging with the ranges it overlaps or touches."""
    cdef Py_ssize_t i = 0, j, k
    cdef int64_t *v = r.v
    if stop <= start:
        return 0
    while i < r.n and v[2 * i + 1] < start:
        i += 1
    j = i
    while j < r.n and v[2 * j] <= stop:
        j += 1
    if i == j:                                          # a new range at i
        _reserve(r, r.n + 1)
        v = r.v
        memmove(v + 2 * (i + 1), v + 2 * i, (r.n - i) * 2 * sizeof(int64_t))
        v[2 * i] = start
        v[2 * i + 1] = stop
        r.n += 1
        return 0
    if v[2 * i] < start:
        start = v[2 * i]
    if v[2 * (j - 1) + 1] > stop:
        stop = v[2 * (j - 1) + 1]
    v[2 * i] = start
    v[2 * i + 1] = stop
    k = j - i - 1                                       # ranges swallowed by range i
    if k:
        memmove(v + 2 * (i + 1), v + 2 * j, (r.n - j) * 2 * sizeof(int64_t))
        r.n -= k
    return 0


cdef int _ranges_sub(fp_ranges *r, int64_t start, int64_t stop) except -1:
    """Removes [start, stop) from the ranges."""
    cdef Py_ssize_t i = 0, j, pieces
    cdef int64_t left_start, right_stop
    cdef bint left, right
    cdef int64_t *v = r.v
    if stop <= start:
        return 0
    while i < r.n and v[2 * i + 1] <= start:
        i += 1
    j = i
    while j < r.n and v[2 * j] < stop:
        j += 1
    if i == j:
        return 0
    left_start = v[2 * i]
    right_stop = v[2 * (j - 1) + 1]
    left = left_start < start
    right = right_stop > stop
    pieces = left + right
    if pieces > j - i:                                  # one range split in two
        _reserve(r, r.n + 1)
        v = r.v
        memmove(v + 2 * (j + 1), v + 2 * j, (r.n - j) * 2 * sizeof(int64_t))
        r.n += 1
    elif pieces < j - i:
        memmove(v + 2 * (i + pieces), v + 2 * j, (r.n - j) * 2 * sizeof(int64_t))
        r.n -= (j - i) - pieces
    if left:
        v[2 * i] = left_start
        v[2 * i + 1] = start
        i += 1
    if right:
        v[2 * i] = stop
        v[2 * i + 1] = right_stop
    return 0


cdef class StreamSendBuffer:
    """The send half of one stream; see the module docstring."""

    def __cinit__(self):
        self._fin = -1

    def __init__(self, stream_id=None, writable=True):
        self.stream_id = stream_id
        self._sid = -1 if stream_id is None else stream_id
        self.buffer_is_empty = True
        self.is_finished = not writable

    def __dealloc__(self):
        PyMem_Free(self._buf)
        PyMem_Free(self._pending.v)
        PyMem_Free(self._acked.v)

    # -- what aioquic's connection and fastpath read ------------------------------------------
    @property
    def next_offset(self):
        """Offset of the next frame to send (sizes the frame's offset field)."""
        return self._pending.v[0] if self._pending.n else self._stop

    @property
    def _buffer_start(self):
        return self._start

    @property
    def _buffer_stop(self):
        return self._stop

    @property
    def _buffer_fin(self):
        return None if self._fin < 0 else self._fin

    def pending_ranges(self):
        """The ranges still to send, as (start, stop) pairs (for tests)."""
        return [(self._pending.v[2 * i], self._pending.v[2 * i + 1])
                for i in range(self._pending.n)]

    # -- writing ------------------------------------------------------------------------------
    def write(self, data, end_stream=False):
        """Appends ``data`` (bytes-like) to the stream, and ends it if ``end_stream``."""
        cdef const uint8_t[::1] view
        if isinstance(data, bytes):
            self._write(<const uint8_t *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                        end_stream)
        else:
            view = memoryview(data).cast("B")
            self._write(&view[0] if view.shape[0] else NULL, view.shape[0], end_stream)

    cdef int _write(self, const uint8_t *data, Py_ssize_t size, bint end) except -1:
        cdef Py_ssize_t used, need, cap
        cdef uint8_t *buf
        if self._fin >= 0:
            raise RuntimeError("Cannot send data after FIN")
        if self._reset_error_code is not None:
            raise RuntimeError("Cannot send data after the stream was reset")
        if size:
            used = self._stop - self._start
            if self._head + used + size > self._cap:
                if self._head:                          # drop the acknowledged prefix first
                    memmove(self._buf, self._buf + self._head, used)
                    self._head = 0
                need = used + size
                if need > self._cap:
                    cap = self._cap * 2 if self._cap else 16384
                    while cap < need:
                        cap *= 2
                    buf = <uint8_t *>PyMem_Realloc(self._buf, cap)
                    if buf == NULL:
                        raise MemoryError()
                    self._buf = buf
                    self._cap = cap
            memcpy(self._buf + self._head + used, data, size)
            _ranges_add(&self._pending, self._stop, self._stop + size)
            self._stop += size
            self.buffer_is_empty = False
        if end:
            self._fin = self._stop
            self._pending_eof = True
            self.buffer_is_empty = False
        return 0

    # -- the next frame ------------------------------------------------------------------------
    cdef bint _peek(self, int64_t max_size, int64_t max_offset, int64_t *start,
                    int64_t *stop, bint *fin) noexcept:
        """The frame get_frame would make, without making it: False when there is none."""
        if max_size < 0:
            return False
        if not self._pending.n:
            if self._pending_eof:
                start[0] = stop[0] = self._fin
                fin[0] = True
                return True
            self.buffer_is_empty = True
            return False
        start[0] = self._pending.v[0]
        stop[0] = self._pending.v[1]
        if stop[0] > start[0] + max_size:
            stop[0] = start[0] + max_size
        if max_offset >= 0 and stop[0] > max_offset:
            stop[0] = max_offset
        if stop[0] <= start[0]:
            return False
        fin[0] = self._fin == stop[0]
        return True

    cdef int _take(self, int64_t start, int64_t stop, bint fin) except -1:
        if stop > start:
            _ranges_sub(&self._pending, start, stop)
            if stop > self.highest_offset:
                self.highest_offset = stop
        if fin:
            self._pending_eof = False
        return 0

    def get_frame(self, max_size, max_offset=None):
        """The next frame of at most ``max_size`` data bytes not beyond ``max_offset``, as
        aioquic's QuicStreamFrame (None: nothing to send, or no room)."""
        cdef int64_t start = 0, stop = 0
        cdef bint fin = False
        if self._reset_error_code is not None:
            raise AssertionError("cannot call get_frame() after reset()")
        if not self._peek(max_size, -1 if max_offset is None else max_offset, &start, &stop,
                          &fin):
            return None
        data = PyBytes_FromStringAndSize(<char *>self._buf + self._head + (start - self._start),
                                         stop - start) if stop > start else b""
        self._take(start, stop, fin)
        return QuicStreamFrame(data=data, fin=fin, offset=start)

    cdef int64_t write_frame(self, QuicPacketBuilder builder, int64_t max_offset) except -1:
        """Writes the next STREAM frame (type with LEN, OFF when the offset is not 0, FIN when
        it reaches the final size; stream ID, offset, 2-byte length, data) into the builder's
        packet, bounded by the packet's room for in-flight bytes and by ``max_offset`` (flow
        control); returns how far it raised ``highest_offset`` (the new bytes that count
        against the connection's credit)."""
        cdef int64_t start = 0, stop = 0, previous = self.highest_offset, room
        cdef int64_t next_offset = self._pending.v[0] if self._pending.n else self._stop
        cdef bint fin = False
        cdef Py_ssize_t overhead = 3 + _varint_size(self._sid)
        cdef uint8_t *p
        cdef uint64_t ftype
        if next_offset:
            overhead += _varint_size(next_offset)
        room = builder.flight_room() - overhead
        if room > MAX_2BYTE:
            room = MAX_2BYTE
        if not self._peek(room, max_offset, &start, &stop, &fin):
            return 0
        ftype = STREAM_BASE | STREAM_LEN
        if start:
            ftype |= STREAM_OFF
        if fin:
            ftype |= STREAM_FIN
        # The buffer is the frame's delivery handler (``__call__``): the compiled recovery
        # sees its type and calls ``delivered`` typed, with no bound method or argument
        # tuple per acknowledged frame; anything else calls it as aioquic's handler.
        p = builder.open_frame(ftype, overhead, self, (start, stop, fin))
        p = _put_varint(p, <uint64_t>self._sid)
        if start:
            p = _put_varint(p, <uint64_t>start)
        p[0] = <uint8_t>(((stop - start) >> 8) | 0x40)
        p[1] = <uint8_t>(stop - start)
        p += 2
        if stop > start:
            memcpy(p, self._buf + self._head + (start - self._start), stop - start)
            p += stop - start
        builder.close_frame(p)
        self._take(start, stop, fin)
        return self.highest_offset - previous

    # -- acknowledgements and losses (called by recovery through the packet's handlers) ------
    def on_data_delivery(self, delivery, start, stop, fin):
        """A frame [start, stop) (with ``fin``) was acknowledged, or lost."""
        self._delivered(delivery is _ACKED, start, stop, fin)

    def __call__(self, delivery, start, stop, fin):
        """As the delivery handler a packet records for each STREAM frame."""
        self._delivered(delivery is _ACKED, start, stop, fin)

    cdef int delivered(self, bint acked, tuple frame) except -1:
        """The handler's call from the compiled recovery: ``frame`` is the recorded
        ``(start, stop, fin)``."""
        return self._delivered(acked, <int64_t>frame[0], <int64_t>frame[1], <bint>frame[2])

    cdef int _delivered(self, bint acked, int64_t a, int64_t b, bint fin) except -1:
        cdef int64_t size
        if fin and b != self._fin:
            raise AssertionError("on_data_delivered() was called with inconsistent fin / stop")
        if self._reset_error_code is not None:
            return 0                # only the reset's delivery matters now
        if acked:
            if a < self._start:         # already dropped (acknowledged twice): the rest only
                a = self._start
            if b > a:
                _ranges_add(&self._acked, a, b)
                if self._acked.v[0] == self._start:
                    size = self._acked.v[1] - self._acked.v[0]
                    _ranges_sub(&self._acked, self._acked.v[0], self._acked.v[1])
                    self._start += size
                    self._head += size
                    if self._start == self._stop:
                        self._head = 0
            if fin:
                self._acked_fin = True
            if self._start == self._fin and self._acked_fin:
                self.is_finished = True
        else:
            if b > a:
                self.buffer_is_empty = False
                _ranges_add(&self._pending, a, b)
            if fin:
                self.buffer_is_empty = False
                self._pending_eof = True
        return 0

    # -- reset ---------------------------------------------------------------------------------
    def reset(self, error_code):
        """Ends the send half abruptly (RESET_STREAM); no effect once reset or finished."""
        if self._reset_error_code is None and not self.is_finished:
            self._reset_error_code = error_code
            self.reset_pending = True
            self.buffer_is_empty = True

    def get_reset_frame(self):
        self.reset_pending = False
        return QuicResetStreamFrame(error_code=self._reset_error_code,
                                    final_size=self.highest_offset, stream_id=self.stream_id)

    def on_reset_delivery(self, delivery):
        if delivery is _ACKED:
            self.is_finished = True
        else:
            self.reset_pending = True
