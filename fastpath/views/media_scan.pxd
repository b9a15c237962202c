# The scan of the media slots, C level: the folded records, the work area of one scan,
# and the C functions a renderer calls (fastpath.views.media_scan; its renderer is
# fastpath.views.media_view).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from fastpath.shm.counter_table cimport CounterTable


cdef enum:
    ID_MAX = 189    # 63 bytes, each possibly one U+FFFD (3 bytes)


cdef struct MRec:
    uint32_t kind
    uint32_t state
    uint32_t order      # position in scan order (shard by shard, slot by slot)
    uint16_t key_n
    uint16_t own_n
    uint64_t hk         # hashes of key and own: most comparisons end on them
    uint64_t ho
    uint64_t pair_last  # per (stream, viewer) pair, on its first record: latest activity
    bint pair_conn      # ... and whether any of its slots is connected
    uint64_t tx
    uint64_t rx
    uint64_t txp
    uint64_t rxp
    uint64_t created
    uint64_t last
    uint64_t extra[4]
    char key[ID_MAX]    # normalised UTF-8 (see module doc)
    char own[ID_MAX]    # text_a normalised: a viewer's stream id, a stream's kind
    uint8_t a_n         # raw text_a and text_b, decoded only when an object is built
    char a[63]
    uint8_t b_n
    char b[127]


cdef size_t copy_slots(CounterTable table, MRec *out, size_t cap) noexcept nogil


cdef struct Viewer:
    uint64_t created, last, out, seg
    bint connected
    size_t t1, t2       # the two tabs of text_b (== b_n when absent)


cdef void fold_viewer(MRec **g, size_t n, Viewer *v) noexcept nogil


cdef enum:
    BY_KEY = 0
    BY_OWNER = 1
    BY_OWNER_KEY = 2


cdef size_t group_by(MRec **recs, size_t n, int mode, MRec **out, size_t *starts,
                     uint32_t *scratch) noexcept nogil


cdef struct Work:
    MRec *recs
    MRec **a
    MRec **b
    MRec **c
    size_t *starts
    size_t *starts2
    uint32_t *scratch
    size_t cap


cdef int work_alloc(Work *w, CounterTable table) except -1
cdef void work_free(Work *w) noexcept
