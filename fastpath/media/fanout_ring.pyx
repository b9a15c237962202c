# cython: language_level=3, cdivision=True
"""The fan-out ring: one upstream read of a live stream shared by every viewer of it.

Chunks (whole TS packets, from ``ts_packets.TsChunker``) go into a bounded ring of ``bytes``
objects.  Every viewer has a cursor (the sequence number of its next chunk).  A viewer that is
caught up is sent each new chunk the moment it arrives, with one non-blocking ``send()`` on its
socket straight from the shared ``bytes`` buffer: no copy per viewer, no Python call per viewer
per chunk, and the bytes served are counted into the worker's shared-memory shard in the same
C loop.  A viewer whose socket is full is marked blocked and left alone (the event loop tells
the owner when it is writable again, and ``resume`` serves it from its cursor), so a slow
viewer never delays the others.  A viewer that falls behind the ring's tail is skipped ahead to
a clean point (a TS packet boundary, preferably a keyframe) after finishing the packet it was
in, or dropped, by policy.

Why raw sockets rather than asyncio transports: a transport copies whatever the kernel did not
take into its own buffer, per viewer, and costs a Python method call per viewer per chunk; the
ring's cursor already is the backlog, so a full socket only needs a flag.

Late joiners start a few seconds behind live (``backlog``) at a clean point, so players fill
their buffer at once.

HTTP/1.1 viewers get the body with ``Transfer-Encoding: chunked`` (as m3u-proxy's streaming
responses are): each ring chunk goes out as one HTTP chunk, its size line kept with the chunk
and sent in the same ``sendmsg`` as the data (no copy, still one call per viewer per chunk).  A
chunked viewer about to be skipped ahead finishes the whole chunk it is in (a chunk is whole
TS packets, so the skip still lands on a packet boundary and the framing stays intact).
"""
from cpython.bytes cimport PyBytes_AS_STRING
from cpython.ref cimport PyObject
from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.stdio cimport snprintf
from libc.string cimport memcpy, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from fastpath.media.ts_packets cimport CHUNK_KEY, CHUNK_PAT, TS_PACKET
from fastpath.shm.counter_table cimport ShardWriter, fp_now_ns

cdef extern from "<sys/types.h>":
    ctypedef long ssize_t

cdef extern from "<errno.h>" nogil:
    int EWOULDBLOCK

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "<sys/socket.h>" nogil:
    struct msghdr:
        void *msg_name
        unsigned int msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t sendmsg(int fd, const msghdr *msg, int flags)
    int MSG_NOSIGNAL
    int MSG_DONTWAIT

cdef extern from "Python.h":
    void Py_INCREF(PyObject *o)
    void Py_DECREF(PyObject *o)

cdef uint32_t NO_SLOT = 0xFFFFFFFF

LIVE = FO_LIVE
BLOCKED = FO_BLOCKED
DEAD = FO_DEAD
FREE = FO_FREE
STATE_NAMES = {FO_FREE: "free", FO_LIVE: "live", FO_BLOCKED: "blocked", FO_DEAD: "dead"}


cdef inline uint64_t _mono_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000ULL + <uint64_t>ts.tv_nsec


cdef inline ssize_t _send(int fd, const char *p, Py_ssize_t n) noexcept nogil:
    cdef ssize_t r
    while True:
        r = send(fd, p, <size_t>n, MSG_NOSIGNAL | MSG_DONTWAIT)
        if r < 0 and errno == EINTR:
            continue
        return r


cdef const char *CRLF = b"\r\n"


cdef inline ssize_t _send_framed(int fd, const char *hdr, Py_ssize_t hl, const char *p,
                                 Py_ssize_t n, Py_ssize_t off) noexcept nogil:
    """Send the HTTP chunk ``hdr + p[:n] + CRLF`` from framed offset ``off`` in one
    ``sendmsg``; returns the framed bytes taken (or -1, errno set)."""
    cdef iovec iov[3]
    cdef msghdr m
    cdef size_t k = 0
    cdef ssize_t r
    if off < hl:
        iov[k].iov_base = <void *>(hdr + off)
        iov[k].iov_len = <size_t>(hl - off)
        k += 1
        off = hl
    if off < hl + n:
        iov[k].iov_base = <void *>(p + (off - hl))
        iov[k].iov_len = <size_t>(hl + n - off)
        k += 1
        off = hl + n
    iov[k].iov_base = <void *>(CRLF + (off - hl - n))
    iov[k].iov_len = <size_t>(2 - (off - hl - n))
    k += 1
    memset(&m, 0, sizeof(m))
    m.msg_iov = iov
    m.msg_iovlen = k
    while True:
        r = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT)
        if r < 0 and errno == EINTR:
            continue
        return r


cdef inline Py_ssize_t _payload(Py_ssize_t hl, Py_ssize_t n, Py_ssize_t off, Py_ssize_t r) noexcept nogil:
    """Payload bytes among the framed bytes ``[off, off + r)`` of a chunk (what is counted as
    served: the framing is not the viewer's media)."""
    cdef Py_ssize_t a = off if off > hl else hl
    cdef Py_ssize_t b = off + r if off + r < hl + n else hl + n
    return b - a if b > a else 0


cdef class FanoutRing:
    """Chunks of one live stream and the cursors of its viewers (see the module docstring).

    ``capacity`` chunks (rounded up to a power of two) and at most ``max_bytes`` are held.
    ``writer`` (a ``ShardWriter``) receives bytes served per viewer slot; ``policy`` is "skip"
    or "drop" for viewers that fall behind the ring; ``backlog`` is how far behind live (in
    seconds) a new viewer starts.
    """

    def __cinit__(self, int capacity=1024, Py_ssize_t max_bytes=16 * 1024 * 1024,
                  ShardWriter writer=None, str policy="skip", double backlog=2.0):
        cdef uint64_t cap = 16
        while cap < <uint64_t>capacity:
            cap <<= 1
        self.cap = cap
        self.mask = cap - 1
        self._objs = [None] * cap
        self.chunks = <fo_chunk *>malloc(sizeof(fo_chunk) * cap)
        self.nclients_cap = 64
        self.clients = <fo_client *>malloc(sizeof(fo_client) * self.nclients_cap)
        self.live = <int *>malloc(sizeof(int) * self.nclients_cap)
        self.free_ids = <int *>malloc(sizeof(int) * self.nclients_cap)
        self.ev_ids = <int *>malloc(sizeof(int) * self.nclients_cap)
        if (self.chunks == NULL or self.clients == NULL or self.live == NULL
                or self.free_ids == NULL or self.ev_ids == NULL):
            raise MemoryError()
        memset(self.chunks, 0, sizeof(fo_chunk) * cap)
        memset(self.clients, 0, sizeof(fo_client) * self.nclients_cap)
        cdef int i
        self.nfree = 0
        for i in range(self.nclients_cap - 1, -1, -1):
            self.free_ids[self.nfree] = i
            self.nfree += 1
        self.max_bytes = max(max_bytes, 1)
        self.writer = writer
        self.has_writer = writer is not None
        if policy not in ("skip", "drop"):
            raise ValueError(f"policy must be 'skip' or 'drop', not {policy!r}")
        self.drop_slow = policy == "drop"
        self.backlog_ns = <uint64_t>(max(backlog, 0.0) * 1e9)
        self.aligned = False

    def __dealloc__(self):
        cdef int i
        if self.clients != NULL:
            for i in range(self.nclients_cap):
                if self.clients[i].pin != NULL:
                    Py_DECREF(self.clients[i].pin)
                    self.clients[i].pin = NULL
        free(self.chunks)
        free(self.clients)
        free(self.live)
        free(self.free_ids)
        free(self.ev_ids)

    # -- configuration ---------------------------------------------------------------------
    def set_aligned(self, bint aligned):
        """True when chunks are whole TS packets: slow viewers may then be skipped ahead (a
        skip in an opaque byte stream would corrupt it, so those are dropped instead)."""
        self.aligned = aligned

    @property
    def capacity(self):
        return self.cap

    @property
    def clients_count(self):
        return self.nlive

    # -- chunks in ----------------------------------------------------------------------------
    def push(self, bytes chunk, int flags=0):
        """Add a chunk and send it to every caught-up viewer.  Returns None, or the viewers
        whose state changed as ``[(client id, BLOCKED | DEAD), ...]``: the owner watches the
        blocked ones for writability and closes the dead ones."""
        cdef Py_ssize_t n = len(chunk)
        cdef uint64_t idx, seq
        cdef fo_chunk *ch
        if n == 0:
            return None
        while self.head > self.tail and (self.head - self.tail >= self.cap
                                         or self.held_bytes + n > self.max_bytes):
            idx = self.tail & self.mask
            self.held_bytes -= self.chunks[idx].len
            self.chunks[idx].ptr = NULL
            self.chunks[idx].len = 0
            self._objs[idx] = None
            self.tail += 1
        seq = self.head
        idx = seq & self.mask
        self._objs[idx] = chunk
        ch = &self.chunks[idx]
        ch.ptr = PyBytes_AS_STRING(chunk)
        ch.len = n
        ch.t_ns = _mono_ns()
        ch.flags = <uint32_t>flags
        ch.hdr_len = <uint8_t>snprintf(ch.hdr, sizeof(ch.hdr), "%zx\r\n", <size_t>n)
        if flags & CHUNK_KEY:
            self.seen_key = True
        if flags & CHUNK_PAT:
            self.seen_pat = True
        self.held_bytes += n
        self.head = seq + 1
        self.bytes_in += n
        self.chunks_in += 1
        self.ev_n = 0
        self._fanout(seq)
        if self.ev_n == 0:
            return None
        self._take_pins()
        return [(self.ev_ids[i], self.clients[self.ev_ids[i]].state) for i in range(self.ev_n)]

    cdef void _fanout(self, uint64_t seq) noexcept nogil:
        cdef fo_chunk *ch = &self.chunks[seq & self.mask]
        cdef uint64_t now = fp_now_ns()
        cdef uint64_t mono = 0
        cdef fo_client *cl
        cdef ssize_t r
        cdef Py_ssize_t total
        cdef int k, cid
        for k in range(self.nlive):
            cid = self.live[k]
            cl = &self.clients[cid]
            if cl.state == FO_LIVE:
                if cl.seq != seq:
                    continue
                if cl.chunked:
                    total = ch.hdr_len + ch.len + 2
                    r = _send_framed(cl.fd, ch.hdr, ch.hdr_len, ch.ptr, ch.len, 0)
                else:
                    total = ch.len
                    r = _send(cl.fd, ch.ptr, ch.len)
                if r == total:
                    cl.seq = seq + 1
                    self._count(cl, ch.len, now)
                    continue
                if mono == 0:
                    mono = _mono_ns()
                if r >= 0:
                    self._pin_partial(cl, ch, seq, r, now)
                    cl.seq = seq + 1
                    cl.state = FO_BLOCKED
                    cl.since_ns = mono
                elif errno == EAGAIN or errno == EWOULDBLOCK:
                    cl.state = FO_BLOCKED
                    cl.since_ns = mono
                else:
                    cl.state = FO_DEAD
                self._event(cid)
            elif cl.state == FO_BLOCKED and cl.seq < self.tail and (self.drop_slow or not self.aligned):
                cl.state = FO_DEAD
                self.drops += 1
                self._event(cid)

    cdef void _pin_partial(self, fo_client *cl, fo_chunk *ch, uint64_t seq, Py_ssize_t r,
                           uint64_t now) noexcept nogil:
        """``r`` bytes of chunk ``seq`` went out: count its payload part and keep the rest to
        send when the socket is writable (``pin_len`` is framed for a chunked viewer)."""
        cdef Py_ssize_t paid
        cl.pin_ptr = ch.ptr
        cl.pin_off = r
        cl.pin_seq = seq
        cl.need_pin = 1
        if cl.chunked:
            memcpy(cl.pin_hdr, ch.hdr, ch.hdr_len)
            cl.pin_hdr_len = ch.hdr_len
            cl.pin_data_len = ch.len
            cl.pin_len = ch.hdr_len + ch.len + 2
            paid = _payload(ch.hdr_len, ch.len, 0, r)
        else:
            cl.pin_len = ch.len
            paid = r
        if paid > 0:
            self._count(cl, paid, now)

    cdef void _count(self, fo_client *cl, Py_ssize_t n, uint64_t now) noexcept nogil:
        cl.sent += n
        self.bytes_out += n
        self.sends += 1
        if self.has_writer and cl.slot != NO_SLOT:
            self.writer.add_tx(cl.slot, n, now)

    cdef void _event(self, int cid) noexcept nogil:
        self.ev_ids[self.ev_n] = cid
        self.ev_n += 1

    cdef _take_pins(self):
        """Hold a reference to each chunk a viewer got only part of, so the rest can be sent
        after the ring has moved on; release the ones fully sent."""
        cdef int i
        cdef fo_client *cl
        for i in range(self.ev_n):
            cl = &self.clients[self.ev_ids[i]]
            self._unpin(cl)

    cdef _unpin(self, fo_client *cl):
        cdef PyObject *obj
        if cl.pin != NULL and (cl.pin_ptr == NULL or cl.need_pin):
            Py_DECREF(cl.pin)
            cl.pin = NULL
        if cl.need_pin:
            cl.need_pin = 0
            obj = <PyObject *>self._objs[cl.pin_seq & self.mask]
            Py_INCREF(obj)
            cl.pin = obj

    # -- viewers ------------------------------------------------------------------------------
    cdef int _alloc_client(self) except -1:
        cdef int old = self.nclients_cap, new, i
        cdef void *p
        if self.nfree == 0:
            new = old * 2
            p = realloc(self.clients, sizeof(fo_client) * new)
            if p == NULL:
                raise MemoryError()
            self.clients = <fo_client *>p
            memset(&self.clients[old], 0, sizeof(fo_client) * (new - old))
            p = realloc(self.live, sizeof(int) * new)
            if p == NULL:
                raise MemoryError()
            self.live = <int *>p
            p = realloc(self.free_ids, sizeof(int) * new)
            if p == NULL:
                raise MemoryError()
            self.free_ids = <int *>p
            p = realloc(self.ev_ids, sizeof(int) * new)
            if p == NULL:
                raise MemoryError()
            self.ev_ids = <int *>p
            for i in range(new - 1, old - 1, -1):
                self.free_ids[self.nfree] = i
                self.nfree += 1
            self.nclients_cap = new
        self.nfree -= 1
        return self.free_ids[self.nfree]

    def add_client(self, int fd, long slot=-1, join=True, bint chunked=False):
        """Register a viewer on socket ``fd`` (non-blocking, owned by the caller) and send it
        the backlog it starts with.  ``join`` True starts ``backlog`` seconds behind live at a
        clean point; False starts at the next chunk.  ``chunked``: frame every chunk as an
        HTTP/1.1 chunk.  Returns (client id, state)."""
        cdef int cid = self._alloc_client()
        cdef fo_client *cl = &self.clients[cid]
        memset(cl, 0, sizeof(fo_client))
        cl.fd = fd
        cl.chunked = chunked
        cl.slot = NO_SLOT if slot < 0 else <uint32_t>slot
        cl.seq = self._join_seq(self.backlog_ns) if join else self.head
        cl.state = FO_BLOCKED
        cl.live_pos = self.nlive
        self.live[self.nlive] = cid
        self.nlive += 1
        return cid, self.resume(cid)

    def resume(self, int cid):
        """Serve a viewer from its cursor (its socket became writable); returns its state:
        LIVE when caught up, BLOCKED when its socket is full again, DEAD when it failed."""
        self._check(cid)
        cdef fo_client *cl = &self.clients[cid]
        cdef int state
        if cl.state != FO_BLOCKED:
            return cl.state
        state = self._pump(cid)
        self._unpin(cl)
        return state

    cdef int _pump(self, int cid) noexcept nogil:
        cdef fo_client *cl = &self.clients[cid]
        cdef fo_chunk *ch
        cdef uint64_t now = fp_now_ns()
        cdef ssize_t r
        cdef Py_ssize_t boundary, total, paid
        while True:
            if cl.pin_ptr != NULL:
                if cl.seq < self.tail and self.aligned and not self.drop_slow and not cl.chunked:
                    # About to be skipped: finish only the packet it is in (a chunked viewer
                    # finishes its HTTP chunk instead, which ends on a packet boundary too).
                    boundary = ((cl.pin_off + TS_PACKET - 1) // TS_PACKET) * TS_PACKET
                    if boundary < cl.pin_len:
                        cl.pin_len = boundary
                while cl.pin_off < cl.pin_len:
                    if cl.chunked:
                        r = _send_framed(cl.fd, cl.pin_hdr, cl.pin_hdr_len, cl.pin_ptr,
                                         cl.pin_data_len, cl.pin_off)
                        paid = _payload(cl.pin_hdr_len, cl.pin_data_len, cl.pin_off, r) if r > 0 else 0
                    else:
                        r = _send(cl.fd, cl.pin_ptr + cl.pin_off, cl.pin_len - cl.pin_off)
                        paid = r
                    if r > 0:
                        cl.pin_off += r
                        if paid > 0:
                            self._count(cl, paid, now)
                    elif r < 0 and (errno == EAGAIN or errno == EWOULDBLOCK):
                        cl.state = FO_BLOCKED
                        return FO_BLOCKED
                    else:
                        cl.state = FO_DEAD
                        return FO_DEAD
                cl.pin_ptr = NULL
            if cl.seq < self.tail:
                if self.drop_slow or not self.aligned:
                    cl.state = FO_DEAD
                    self.drops += 1
                    return FO_DEAD
                cl.seq = self._join_seq(0)
                cl.skips += 1
                self.skips += 1
            if cl.seq >= self.head:
                cl.state = FO_LIVE
                return FO_LIVE
            ch = &self.chunks[cl.seq & self.mask]
            if cl.chunked:
                total = ch.hdr_len + ch.len + 2
                r = _send_framed(cl.fd, ch.hdr, ch.hdr_len, ch.ptr, ch.len, 0)
            else:
                total = ch.len
                r = _send(cl.fd, ch.ptr, ch.len)
            if r == total:
                cl.seq += 1
                self._count(cl, ch.len, now)
                continue
            if r >= 0:
                self._pin_partial(cl, ch, cl.seq, r, now)
                cl.seq += 1
                cl.state = FO_BLOCKED
                cl.since_ns = _mono_ns()
                return FO_BLOCKED
            if errno == EAGAIN or errno == EWOULDBLOCK:
                cl.state = FO_BLOCKED
                cl.since_ns = _mono_ns()
                return FO_BLOCKED
            cl.state = FO_DEAD
            return FO_DEAD

    cdef uint64_t _join_seq(self, uint64_t backlog_ns) noexcept nogil:
        """Where a viewer starts: the newest clean chunk at least ``backlog_ns`` old, else the
        oldest clean chunk, else the next chunk to come."""
        cdef uint64_t now, target, s, oldest
        cdef uint32_t want
        cdef bint found = False
        if self.head == self.tail:
            return self.head
        now = _mono_ns()
        target = now - backlog_ns if now > backlog_ns else 0
        want = CHUNK_KEY if self.seen_key else (CHUNK_PAT if self.seen_pat else 0)
        if not self.aligned:
            want = 0
        s = self.head
        oldest = self.head
        while s > self.tail:
            s -= 1
            if want == 0 or (self.chunks[s & self.mask].flags & want):
                if self.chunks[s & self.mask].t_ns <= target:
                    return s
                oldest = s
                found = True
        return oldest if found else self.head

    def remove_client(self, int cid):
        """Forget a viewer (the caller closes its socket); returns the bytes it was sent."""
        self._check(cid)
        cdef fo_client *cl = &self.clients[cid]
        cdef uint64_t sent = cl.sent
        cdef int last
        cl.pin_ptr = NULL
        cl.need_pin = 0
        self._unpin(cl)
        last = self.live[self.nlive - 1]
        self.live[cl.live_pos] = last
        self.clients[last].live_pos = cl.live_pos
        self.nlive -= 1
        cl.state = FO_FREE
        cl.fd = -1
        self.free_ids[self.nfree] = cid
        self.nfree += 1
        return sent

    def between_chunks(self, int cid):
        """True when nothing of a chunk is pending for this viewer: a chunked viewer can then
        be sent the last-chunk marker and end cleanly."""
        self._check(cid)
        return self.clients[cid].pin_ptr == NULL or \
            self.clients[cid].pin_off >= self.clients[cid].pin_len

    def blocked_longer_than(self, double seconds):
        """Viewers whose socket has been full for more than ``seconds`` (to be dropped)."""
        cdef uint64_t now = _mono_ns()
        cdef uint64_t limit = <uint64_t>(seconds * 1e9)
        cdef int k
        cdef fo_client *cl
        out = []
        for k in range(self.nlive):
            cl = &self.clients[self.live[k]]
            if cl.state == FO_BLOCKED and now - cl.since_ns > limit:
                out.append(self.live[k])
        return out

    def client_info(self, int cid):
        self._check(cid)
        cdef fo_client *cl = &self.clients[cid]
        return {"state": STATE_NAMES.get(cl.state, "?"), "seq": cl.seq, "behind": self.head - cl.seq,
                "sent": cl.sent, "skips": cl.skips, "fd": cl.fd}

    def clients_sent(self):
        """Bytes sent so far per live viewer: ``{client id: bytes}``."""
        return {self.live[k]: self.clients[self.live[k]].sent for k in range(self.nlive)}

    def chunk_flags(self):
        """Flags of the chunks held, oldest first (for tests)."""
        return [self.chunks[s & self.mask].flags for s in range(self.tail, self.head)]

    def clear(self):
        """Drop every chunk (the stream stopped); viewers keep their cursors."""
        cdef uint64_t idx
        while self.tail < self.head:
            idx = self.tail & self.mask
            self.chunks[idx].ptr = NULL
            self.chunks[idx].len = 0
            self._objs[idx] = None
            self.tail += 1
        self.held_bytes = 0

    cdef _check(self, int cid):
        if cid < 0 or cid >= self.nclients_cap or self.clients[cid].state == FO_FREE:
            raise KeyError(f"no viewer {cid}")
