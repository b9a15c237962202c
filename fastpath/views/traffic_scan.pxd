# The registry and scan of the traffic view, C level (fastpath.views.traffic_scan; its
# renderer is fastpath.views.traffic_view, a subclass of TrafficRegistry).
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp

from fastpath.shm.counter_table cimport CounterTable, fp_slot
from fastpath.views.out_buffer cimport Buf


cdef enum:
    F_CARRIED = 1   # the id has carried traffic in the store
    F_LISTED = 2    # the id is a user of the store (``listAllUsers``)
    F_LIVE = 4      # the id has a user slot in the live segment


cdef void *grow_array(void *p, size_t size) except NULL


cdef class TrafficRegistry:
    cdef dict ids               # id (str) -> index
    cdef list names             # index -> id
    cdef uint32_t n, cap
    cdef uint64_t *carried_tx
    cdef uint64_t *carried_rx
    cdef uint64_t *base_tx
    cdef uint64_t *base_rx
    cdef uint64_t *live_tx
    cdef uint64_t *live_rx
    cdef uint64_t *last
    cdef uint32_t *conns
    cdef uint32_t *streams
    cdef uint8_t *flags
    cdef uint32_t *rank         # index -> position in id order
    cdef uint32_t *order        # position -> index
    cdef bint order_dirty
    cdef uint32_t *json_off     # the id as a JSON string, in ``json_keys``
    cdef uint32_t *json_len
    cdef uint32_t *text_off     # the id's UTF-8 bytes, in ``text_keys``
    cdef uint32_t *text_len
    cdef uint32_t *text_points  # its length in code points (table padding)
    cdef Buf json_keys
    cdef Buf text_keys
    cdef object table           # the segment the slot map belongs to
    cdef int32_t **slot_map     # [shard][slot] -> index, -1 = unknown
    cdef uint32_t map_shards, map_slots
    cdef uint32_t *cnt_conn     # per-slot scratch of one shard
    cdef uint32_t *cnt_stream
    cdef uint32_t *user_at      # user slots of one shard and their index
    cdef uint32_t *user_idx
    cdef uint32_t *missed       # user slots of one shard the map did not know
    cdef uint32_t nusers
    cdef uint32_t **known_at    # [shard]: user slots found by the last full scan, and their ids
    cdef uint32_t **known_idx
    cdef uint32_t *known_n
    cdef uint64_t full_ns       # when the last full scan ran (0 = none yet)

    cdef int _grow(self) except -1
    cdef int _index(self, str uid) except -1
    cdef _sort(self)
    cdef _drop_map(self)
    cdef int _bind(self, CounterTable table) except -1
    cdef inline bint _same_key(self, fp_slot *s, int32_t idx) noexcept nogil:
        """The slot's key is the UTF-8 of id ``idx`` (-1: none)."""
        return (idx >= 0 and s.key_len == self.text_len[idx]
                and memcmp(s.key, self.text_keys.p + self.text_off[idx], s.key_len) == 0)
    cdef int _resolve(self, fp_slot *s, uint32_t *kind, uint64_t *tx, uint64_t *rx,
                      uint64_t *last) except -2
    cdef uint32_t _scan_shard(self, fp_slot *slots, int32_t *smap, uint32_t hw,
                              bint counts) noexcept nogil
    cdef inline void _add_live(self, uint32_t idx, uint64_t tx, uint64_t rx,
                               uint64_t last) noexcept nogil:
        """One user slot's figures into its id's live sums."""
        self.live_tx[idx] += tx
        self.live_rx[idx] += rx
        if last > self.last[idx]:
            self.last[idx] = last
        self.flags[idx] |= F_LIVE
    cdef inline void _found(self, uint32_t slot, uint32_t idx) noexcept nogil:
        """Remember a user slot of the shard being scanned, and its id."""
        self.user_at[self.nusers] = slot
        self.user_idx[self.nusers] = idx
        self.nusers += 1
    cdef int _scan(self, CounterTable table, bint counts) except -1
    cdef void _reset_live(self) noexcept
    cdef bint _scan_known(self, CounterTable table) noexcept nogil
