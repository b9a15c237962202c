# C-level interface of the shared-memory counter table, for other Cython modules (relay pumps,
# fan-out) that count bytes without a Python call per chunk.
from libc.stdint cimport uint8_t, uint32_t, uint64_t

cdef extern from "counter_layout.h":
    ctypedef struct fp_segment_header:
        uint64_t magic
        uint32_t version
        uint32_t nshards
        uint32_t slots_per_shard
        uint32_t slot_size
        uint64_t segment_id
        uint64_t created_ns
        uint64_t supervisor_pid

    ctypedef struct fp_shard_header:
        uint64_t writer_pid
        uint64_t heartbeat_ns
        uint64_t restarts
        uint64_t high_water
        uint64_t live_slots

    ctypedef struct fp_slot:
        uint64_t seq
        uint32_t kind
        uint32_t state
        uint64_t tx
        uint64_t rx
        uint64_t tx_packets
        uint64_t rx_packets
        uint64_t created_ns
        uint64_t last_active_ns
        uint64_t conn_id
        uint64_t stream_id
        uint32_t user_slot
        uint32_t conn_slot
        uint64_t flags
        uint64_t extra[4]
        uint8_t key_len
        char key[63]
        uint8_t text_a_len
        char text_a[63]
        uint8_t text_b_len
        char text_b[127]

    int FP_KEY_MAX
    int FP_TEXT_A_MAX
    int FP_TEXT_B_MAX
    void fp_add_u64(uint64_t *p, uint64_t n) noexcept nogil
    void fp_store_u64(uint64_t *p, uint64_t v) noexcept nogil
    void fp_locked_add_u64(uint64_t *p, uint64_t n) noexcept nogil
    uint64_t fp_load_u64(const uint64_t *p) noexcept nogil
    uint64_t fp_load_acquire(const uint64_t *p) noexcept nogil
    void fp_seq_begin(fp_slot *s) noexcept nogil
    void fp_seq_end(fp_slot *s) noexcept nogil
    void fp_read_fence() noexcept nogil
    uint64_t fp_seq_stable(const fp_slot *s) noexcept nogil
    void fp_slot_copy(const fp_slot *s, fp_slot *out) noexcept nogil
    uint64_t fp_now_ns() noexcept nogil
    fp_shard_header *fp_shard_hdr(char *base, uint32_t shard, uint32_t slots_per_shard) noexcept nogil
    fp_slot *fp_shard_slots(char *base, uint32_t shard, uint32_t slots_per_shard) noexcept nogil
    size_t fp_segment_size(uint32_t nshards, uint32_t slots_per_shard) noexcept nogil


# Stream states (the Traffic Stats API's vocabulary), declared here only: the views cimport
# them, Python code reads fastpath.shm.STATE_* (re-exported from this enum).
cpdef enum SlotState:
    STATE_INIT = 0
    STATE_HOOK = 1
    STATE_CONNECT = 2
    STATE_ESTAB = 3
    STATE_CLOSED = 4


cpdef enum SlotKind:
    KIND_FREE = 0
    KIND_USER = 1
    KIND_CONNECTION = 2
    KIND_TCP_STREAM = 3
    KIND_UDP_SESSION = 4
    KIND_MEDIA_STREAM = 5
    KIND_MEDIA_CLIENT = 6


cdef class CounterTable:
    cdef object _mmap
    cdef char *base
    cdef fp_segment_header *header
    cdef readonly uint32_t nshards
    cdef readonly uint32_t slots_per_shard
    cdef readonly str path
    cdef readonly bint readonly
    cdef _bind(self, mm, str path)
    cdef _check_shard(self, uint32_t shard)


cdef inline uint32_t shard_high_water(CounterTable table, uint32_t shard) noexcept nogil:
    """How many of a shard's slots readers scan: its high-water mark, clamped to the shard
    (the header is the writer's; a reader never trusts it past the mapping)."""
    cdef uint64_t hw = fp_load_u64(&fp_shard_hdr(table.base, shard, table.slots_per_shard).high_water)
    return <uint32_t>(hw if hw < table.slots_per_shard else table.slots_per_shard)


cdef class ShardWriter:
    cdef readonly CounterTable table
    cdef readonly uint32_t shard
    cdef fp_shard_header *hdr
    cdef fp_slot *slots
    cdef uint32_t nslots
    cdef uint32_t *free_stack
    cdef uint32_t free_top
    cdef dict _user_slots
    cdef dict _budgets

    # The bytes a slot's user may still move through this shard before it must be cut:
    # the user slot's ``extra[0]`` holds (cap + 1) on its tx + rx, 0 = no cap (see
    # ``set_budgets``).  Read by the pumps where they count, so a limit is enforced to the
    # byte in this shard, not once per supervisor tick.
    cdef inline uint64_t budget_left(self, uint32_t slot) noexcept nogil:
        cdef uint32_t owner = self.slots[slot].user_slot
        cdef fp_slot *u
        cdef uint64_t cap, used
        if owner == 0:
            return 0xFFFFFFFFFFFFFFFFULL
        u = &self.slots[owner - 1]
        cap = fp_load_u64(&u.extra[0])
        if cap == 0:
            return 0xFFFFFFFFFFFFFFFFULL
        cap -= 1
        used = fp_load_u64(&u.tx) + fp_load_u64(&u.rx)
        return cap - used if used < cap else 0

    # Count payload bytes on a slot and, in the same call, on its connection and user slots,
    # so user totals are exact at every instant and freeing a slot needs no fold.
    cdef inline void add(self, uint32_t slot, uint64_t tx, uint64_t rx, uint64_t now_ns) noexcept nogil:
        cdef fp_slot *s = &self.slots[slot]
        cdef uint32_t owner
        if tx:
            fp_add_u64(&s.tx, tx)
            fp_add_u64(&s.tx_packets, 1)
        if rx:
            fp_add_u64(&s.rx, rx)
            fp_add_u64(&s.rx_packets, 1)
        fp_store_u64(&s.last_active_ns, now_ns)
        owner = s.conn_slot
        if owner:
            s = &self.slots[owner - 1]
            if tx:
                fp_add_u64(&s.tx, tx)
            if rx:
                fp_add_u64(&s.rx, rx)
            fp_store_u64(&s.last_active_ns, now_ns)
        owner = self.slots[slot].user_slot
        if owner:
            s = &self.slots[owner - 1]
            if tx:
                fp_add_u64(&s.tx, tx)
            if rx:
                fp_add_u64(&s.rx, rx)
            fp_store_u64(&s.last_active_ns, now_ns)

    # Bytes sent without a packet count, on the slot and its connection and user slots: a
    # continuous media stream's writes are not segments (a TS viewer's ``segments_served``
    # stays 0, as on m3u-proxy), so the fan-out ring counts through this, not ``add``.
    cdef inline void add_tx(self, uint32_t slot, uint64_t tx, uint64_t now_ns) noexcept nogil:
        self.add_tx_run(slot, tx, 0, now_ns)

    # ``packets`` datagrams of ``tx`` bytes in all, sent in one call (a UDP_SEGMENT run).
    cdef inline void add_tx_run(self, uint32_t slot, uint64_t tx, uint64_t packets,
                                uint64_t now_ns) noexcept nogil:
        cdef fp_slot *s = &self.slots[slot]
        cdef uint32_t owner
        fp_add_u64(&s.tx, tx)
        if packets:
            fp_add_u64(&s.tx_packets, packets)
        fp_store_u64(&s.last_active_ns, now_ns)
        owner = s.conn_slot
        if owner:
            s = &self.slots[owner - 1]
            fp_add_u64(&s.tx, tx)
            fp_store_u64(&s.last_active_ns, now_ns)
        owner = self.slots[slot].user_slot
        if owner:
            s = &self.slots[owner - 1]
            fp_add_u64(&s.tx, tx)
            fp_store_u64(&s.last_active_ns, now_ns)

    cdef int _alloc(self) except -1
    cdef _recover(self)
    cdef void _clear(self, fp_slot *s) noexcept
    cdef _check(self, uint32_t slot)
