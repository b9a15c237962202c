# C-level interface of the fan-out ring: one upstream read shared by every viewer of a stream.
from cpython.ref cimport PyObject
from libc.stdint cimport uint8_t, uint32_t, uint64_t

from fastpath.shm.counter_table cimport ShardWriter

cdef enum:
    FO_FREE = 0
    FO_LIVE = 1         # caught up: the next chunk is sent to it as soon as it arrives
    FO_BLOCKED = 2      # its socket is full: it is served from its cursor when writable again
    FO_DEAD = 3         # its socket failed, or it was dropped by policy

cdef struct fo_chunk:
    const char *ptr     # bytes of the chunk (owned by the ring's list of bytes objects)
    Py_ssize_t len
    uint64_t t_ns       # arrival, monotonic clock
    uint32_t flags      # ts_packets CHUNK_* flags
    char hdr[24]        # its HTTP/1.1 chunk-size line ("<hex>\r\n"), for chunked viewers
    uint8_t hdr_len

cdef struct fo_client:
    int fd
    uint8_t state
    uint8_t need_pin
    uint32_t slot       # counter slot index in the worker's shard; NO_SLOT = none
    uint64_t seq        # next chunk to send (absolute sequence number)
    PyObject *pin       # chunk being sent partway (a strong reference), or NULL
    const char *pin_ptr
    Py_ssize_t pin_len
    Py_ssize_t pin_off
    uint64_t pin_seq
    uint64_t sent
    uint64_t since_ns   # blocked since (monotonic)
    uint64_t skips
    uint8_t chunked     # HTTP/1.1 viewer: every chunk goes out framed as one HTTP chunk
    char pin_hdr[24]    # the pinned chunk's size line (chunked viewers)
    uint8_t pin_hdr_len
    Py_ssize_t pin_data_len  # the pinned chunk's payload length (pin_len is framed, then)
    int live_pos        # index in the ring's dense list of clients


cdef class FanoutRing:
    cdef list _objs
    cdef fo_chunk *chunks
    cdef uint64_t cap
    cdef uint64_t mask
    cdef readonly uint64_t head     # sequence number of the next chunk
    cdef readonly uint64_t tail     # oldest chunk still held
    cdef readonly Py_ssize_t held_bytes
    cdef Py_ssize_t max_bytes
    cdef fo_client *clients
    cdef int nclients_cap
    cdef int *live
    cdef readonly int nlive
    cdef int *free_ids
    cdef int nfree
    cdef int *ev_ids
    cdef int ev_n
    cdef ShardWriter writer
    cdef bint has_writer
    cdef readonly bint aligned
    cdef readonly bint drop_slow
    cdef bint seen_key
    cdef bint seen_pat
    cdef uint64_t backlog_ns
    cdef readonly uint64_t bytes_in
    cdef readonly uint64_t chunks_in
    cdef readonly uint64_t bytes_out
    cdef readonly uint64_t sends
    cdef readonly uint64_t skips
    cdef readonly uint64_t drops

    cdef void _fanout(self, uint64_t seq) noexcept nogil
    cdef int _pump(self, int cid) noexcept nogil
    cdef uint64_t _join_seq(self, uint64_t backlog_ns) noexcept nogil
    cdef void _event(self, int cid) noexcept nogil
    cdef void _pin_partial(self, fo_client *cl, fo_chunk *ch, uint64_t seq, Py_ssize_t r,
                           uint64_t now) noexcept nogil
    cdef void _count(self, fo_client *cl, Py_ssize_t n, uint64_t now) noexcept nogil
    cdef _take_pins(self)
    cdef _unpin(self, fo_client *cl)
    cdef int _alloc_client(self) except -1
    cdef _check(self, int cid)
