# cython: language_level=3
"""MPEG-TS packet scanning and the chunker that feeds the fan-out ring.

Upstream reads arrive in arbitrary sizes and may start or resume mid-packet (a reconnect, a
failover to another origin, a proxy that cut the stream).  ``TsChunker`` turns them into ring
chunks that always hold whole 188-byte packets and start on a packet boundary, so any chunk is
a clean place for a viewer to start or to skip to.  It cuts a new chunk where a demuxer can
start (a PAT, or a packet flagged random-access: a keyframe) and says so in the chunk's flags.

A stream that is not TS (no sync byte every 188 bytes) is passed through in plain chunks; an
HLS playlist served where a continuous stream was expected is recognised and reported.
Hostile input never reads past a buffer: every packet is inspected only once 188 bytes of it
are in hand.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove

cdef enum:
    M_PROBE = 0
    M_TS = 1
    M_RAW = 2
    M_PLAYLIST = 3

MODE_PROBE = M_PROBE
MODE_TS = M_TS
MODE_RAW = M_RAW
MODE_PLAYLIST = M_PLAYLIST
MODE_NAMES = ("probe", "ts", "raw", "playlist")

FLAG_PAT = CHUNK_PAT
FLAG_KEY = CHUNK_KEY
FLAG_SWITCH = CHUNK_SWITCH
PACKET_SIZE = TS_PACKET

# Bytes looked at before deciding a stream is not TS.
DEFAULT_PROBE_LIMIT = 16 * 1024
# A chunk shorter than this is not cut at a PAT/keyframe (hostile streams with a PAT in every
# packet would otherwise make one-packet chunks and one syscall per packet per viewer).
cdef enum:
    MIN_CUT_BYTES = 16 * 188
# Keyframe cuts closer than this (packets) are not made: a hostile stream flagging every packet
# random-access must not turn the ring into one-packet chunks.
cdef enum:
    MIN_KEY_GAP_PACKETS = 64
# How long (bytes) strict mode waits for a PAT after a switch before starting anyway.
DEFAULT_PAT_WAIT_LIMIT = 4 * 1024 * 1024


cdef Py_ssize_t c_find_sync(const unsigned char *p, Py_ssize_t n, Py_ssize_t start,
                            int confirm) noexcept nogil:
    """First offset >= start holding a sync byte that ``confirm - 1`` further packets confirm;
    positions past the end of the data count as confirmed (more data will tell)."""
    cdef Py_ssize_t i, k, at
    cdef bint ok
    i = start
    while i < n:
        if p[i] == TS_SYNC:
            ok = True
            for k in range(1, confirm):
                at = i + k * TS_PACKET
                if at >= n:
                    break
                if p[at] != TS_SYNC:
                    ok = False
                    break
            if ok:
                return i
        i += 1
    return -1


cdef int c_packet_flags(const unsigned char *pkt) noexcept nogil:
    """CHUNK_PAT for the first packet of a PAT section; CHUNK_KEY for the first packet of a
    video PES (stream id 0xE0-0xEF) whose adaptation field sets random_access_indicator: a
    keyframe.  (Audio frames are random-access points too, but starting a viewer there would
    leave it without a picture until the next keyframe.)"""
    cdef int flags = 0
    cdef unsigned int pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
    cdef unsigned int afc = (pkt[3] >> 4) & 3
    cdef unsigned int start
    cdef bint pusi = (pkt[1] & 0x40) != 0
    if pid == 0 and pusi:
        flags |= CHUNK_PAT
    if pusi and afc == 3 and 0 < pkt[4] <= 179 and (pkt[5] & 0x40):
        start = 5 + pkt[4]
        if (pkt[start] == 0 and pkt[start + 1] == 0 and pkt[start + 2] == 1
                and (pkt[start + 3] & 0xF0) == 0xE0):
            flags |= CHUNK_KEY
    return flags


def find_sync(data, Py_ssize_t start=0, int confirm=3):
    """Offset of the first packet boundary confirmed by ``confirm`` sync bytes, all inside
    ``data``; -1 when there is none."""
    cdef const unsigned char[::1] view = memoryview(data).cast("B")
    cdef Py_ssize_t n = view.shape[0]
    cdef Py_ssize_t need = (confirm - 1) * TS_PACKET
    cdef Py_ssize_t j
    if confirm < 1 or n == 0 or start < 0:
        return -1
    j = start
    while True:
        if n - need <= j:
            return -1
        j = c_find_sync(&view[0], n - need, j, 1)
        if j < 0:
            return -1
        if c_find_sync(&view[0], n, j, confirm) == j:
            return j
        j += 1


def looks_like_ts(data) -> bool:
    """True when three sync bytes 188 apart appear in the first packet's worth of ``data``."""
    j = find_sync(data, 0, 3)
    return 0 <= j < TS_PACKET


def scan_packets(data):
    """Walk ``data`` as aligned packets from its first confirmed sync byte:
    ``(first_sync, packets, pat_packets, key_packets, lost_sync_at)`` (-1 when never lost)."""
    cdef const unsigned char[::1] view = memoryview(data).cast("B")
    cdef Py_ssize_t n = view.shape[0]
    cdef Py_ssize_t first = find_sync(data, 0, 2) if n else -1
    cdef Py_ssize_t i, lost = -1
    cdef long packets = 0, pats = 0, keys = 0
    cdef int f
    if first < 0:
        return (-1, 0, 0, 0, -1)
    i = first
    with nogil:
        while i + TS_PACKET <= n:
            if view[i] != TS_SYNC:
                lost = i
                break
            f = c_packet_flags(&view[i])
            packets += 1
            if f & CHUNK_PAT:
                pats += 1
            if f & CHUNK_KEY:
                keys += 1
            i += TS_PACKET
    return (first, packets, pats, keys, lost)


cdef class TsChunker:
    """Upstream bytes in, ring chunks out: ``feed(data) -> [(chunk bytes, flags), ...]``."""
    cdef unsigned char *buf
    cdef Py_ssize_t buf_len
    cdef Py_ssize_t chunk_bytes
    cdef unsigned char part[TS_PACKET]
    cdef int part_len
    cdef int _mode
    cdef bytearray _probe
    cdef Py_ssize_t probe_limit
    cdef int cur_flags
    cdef int cur_packets
    cdef int next_flags
    cdef Py_ssize_t last_pat_off
    cdef long key_gap
    cdef bint seen_key
    cdef bint hunting
    cdef bint wait_pat
    cdef Py_ssize_t pat_waited
    cdef Py_ssize_t pat_wait_limit
    cdef list _out
    cdef readonly unsigned long long dropped
    cdef readonly unsigned long long resyncs
    cdef readonly unsigned long long packets
    cdef readonly unsigned long long chunks

    def __cinit__(self, Py_ssize_t chunk_bytes=32768, Py_ssize_t probe_limit=DEFAULT_PROBE_LIMIT,
                  Py_ssize_t pat_wait_limit=DEFAULT_PAT_WAIT_LIMIT):
        if chunk_bytes < TS_PACKET:
            chunk_bytes = TS_PACKET
        self.chunk_bytes = chunk_bytes
        self.buf = <unsigned char *>malloc(chunk_bytes + TS_PACKET)
        if self.buf == NULL:
            raise MemoryError()
        self.buf_len = 0
        self.part_len = 0
        self._mode = M_PROBE
        self._probe = bytearray()
        self.probe_limit = max(probe_limit, 4 * TS_PACKET)
        self.pat_wait_limit = pat_wait_limit
        self.hunting = True
        self.next_flags = 0
        self.last_pat_off = -1
        self.key_gap = MIN_KEY_GAP_PACKETS

    def __dealloc__(self):
        if self.buf != NULL:
            free(self.buf)

    @property
    def mode(self):
        return MODE_NAMES[self._mode]

    @property
    def pending(self):
        """Bytes held for the chunk being filled (whole packets only)."""
        return self.buf_len

    @property
    def probe_data(self):
        """What was read while the stream type was still unknown (for a playlist found where a
        continuous stream was expected)."""
        return bytes(self._probe)

    def force_raw(self):
        """Treat the stream as opaque bytes from now on."""
        if self._mode == M_PROBE:
            self._mode = M_RAW
            data = bytes(self._probe)
            self._probe = bytearray()
            return self.feed(data)
        self._mode = M_RAW
        return []

    def reset(self, bint strict=False):
        """The upstream changed: forget a half-received packet, find the packet boundary again,
        mark the next chunk as a switch, and with ``strict`` wait for a PAT before resuming."""
        self.part_len = 0
        self.hunting = True
        self.next_flags |= CHUNK_SWITCH
        if self._mode == M_TS:
            self.wait_pat = strict
            self.pat_waited = 0
        elif self._mode == M_PROBE:
            self._probe = bytearray()

    def feed(self, data):
        """Take upstream bytes; return the chunks completed by them."""
        cdef const unsigned char[::1] view
        self._out = []
        if self._mode == M_PROBE:
            self._probe += data
            self._try_detect()
        else:
            view = memoryview(data).cast("B")
            if view.shape[0]:
                if self._mode == M_TS:
                    self._feed_ts(&view[0], view.shape[0])
                elif self._mode == M_RAW:
                    self._feed_raw(&view[0], view.shape[0])
        out = self._out
        self._out = None
        return out

    def flush(self):
        """The chunk being filled, now (a time limit passed): a list of zero or more chunks."""
        self._out = []
        if self._mode == M_PROBE and len(self._probe) >= 4 * TS_PACKET:
            self._try_detect(final=True)
        if self.buf_len:
            self._finish()
        out = self._out
        self._out = None
        return out

    def finish(self):
        """End of stream: everything held, as chunks (an undetected remainder as raw bytes)."""
        self._out = []
        if self._mode == M_PROBE and self._probe:
            self._try_detect(final=True)
        if self.buf_len:
            self._finish()
        out = self._out
        self._out = None
        return out

    cdef _try_detect(self, bint final=False):
        cdef bytes head
        cdef Py_ssize_t j
        cdef const unsigned char[::1] view
        head = bytes(self._probe[:64]).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head.startswith(b"#EXTM3U"):
            self._mode = M_PLAYLIST
            return
        if len(self._probe) >= 3 * TS_PACKET:
            j = find_sync(self._probe, 0, 3)
            if j >= 0:
                self._mode = M_TS
                data = bytes(self._probe)
                self._probe = bytearray()
                self.dropped += j
                view = data
                self._feed_ts(&view[j], len(data) - j)
                return
        if len(self._probe) >= self.probe_limit or final:
            self._mode = M_RAW
            data = bytes(self._probe)
            self._probe = bytearray()
            if data:
                view = data
                self._feed_raw(&view[0], len(data))

    cdef int _feed_ts(self, const unsigned char *p, Py_ssize_t n) except -1:
        cdef Py_ssize_t i = 0, j, take
        if self.part_len > 0:
            take = TS_PACKET - self.part_len
            if take > n:
                take = n
            memcpy(&self.part[self.part_len], p, take)
            self.part_len += take
            i = take
            if self.part_len < TS_PACKET:
                return 0
            self.part_len = 0
            self._packet(self.part)
        while i < n:
            if self.hunting or p[i] != TS_SYNC:
                j = c_find_sync(p, n, i, 2)
                if j < 0:
                    self.dropped += n - i
                    self.hunting = True
                    return 0
                if j != i or not self.hunting:
                    self.resyncs += 1
                self.dropped += j - i
                i = j
                self.hunting = False
            if n - i >= TS_PACKET:
                self._packet(p + i)
                i += TS_PACKET
            else:
                memcpy(self.part, p + i, n - i)
                self.part_len = <int>(n - i)
                return 0
        return 0

    cdef int _packet(self, const unsigned char *pkt) except -1:
        cdef int f = c_packet_flags(pkt)
        cdef Py_ssize_t tail, split
        if self.wait_pat:
            if not (f & CHUNK_PAT) and self.pat_waited < self.pat_wait_limit:
                self.pat_waited += TS_PACKET
                self.dropped += TS_PACKET
                return 0
            self.wait_pat = False
        if (f & CHUNK_KEY) and self.key_gap >= MIN_KEY_GAP_PACKETS:
            # A keyframe: start a chunk here, or at the PAT/PMT just before it when close.
            self.seen_key = True
            self.key_gap = 0
            if self.last_pat_off >= 0 and self.buf_len - self.last_pat_off <= 8 * TS_PACKET:
                if self.last_pat_off > 0:
                    split = self.last_pat_off
                    tail = self.buf_len - split
                    self._out.append((PyBytes_FromStringAndSize(<char *>self.buf, split),
                                      self.cur_flags))
                    self.chunks += 1
                    memmove(self.buf, self.buf + split, tail)
                    self.buf_len = tail
                    self.cur_packets = <int>(tail // TS_PACKET)
                    self.cur_flags = CHUNK_PAT
                    self.last_pat_off = 0
                self.cur_flags |= CHUNK_KEY
            elif self.buf_len > 0:
                self._finish()
        elif (f & CHUNK_PAT) and not self.seen_key and self.buf_len >= MIN_CUT_BYTES:
            self._finish()
        if self.cur_packets == 0:
            self.cur_flags |= f | self.next_flags
            self.next_flags = 0
        if f & CHUNK_PAT:
            self.last_pat_off = self.buf_len
        memcpy(self.buf + self.buf_len, pkt, TS_PACKET)
        self.buf_len += TS_PACKET
        self.cur_packets += 1
        self.packets += 1
        self.key_gap += 1
        if self.buf_len >= self.chunk_bytes:
            self._finish()
        return 0

    cdef int _feed_raw(self, const unsigned char *p, Py_ssize_t n) except -1:
        cdef Py_ssize_t i = 0, take
        while i < n:
            take = self.chunk_bytes - self.buf_len
            if take > n - i:
                take = n - i
            if self.buf_len == 0:
                self.cur_flags = self.next_flags
                self.next_flags = 0
            memcpy(self.buf + self.buf_len, p + i, take)
            self.buf_len += take
            i += take
            if self.buf_len >= self.chunk_bytes:
                self._finish()
        return 0

    cdef int _finish(self) except -1:
        self._out.append((PyBytes_FromStringAndSize(<char *>self.buf, self.buf_len), self.cur_flags))
        self.buf_len = 0
        self.cur_packets = 0
        self.cur_flags = 0
        self.last_pat_off = -1
        self.chunks += 1
        return 0
