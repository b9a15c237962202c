# cython: language_level=3
"""The dashboard's once-a-second figures of the whole node, from one compiled pass.

The overview page of every open dashboard is fed by one tick in the control API
(``control/dashboard.py``); this is its scan.  One pass over every shard, with the GIL
released, reads each slot under its seqlock and sums per kind: live slots, tx and rx.  Keys are
decoded only where a count must be of distinct ids (a user online in two workers has a user
slot in each; a stream relayed by two workers has a stream slot in each): the keys of user
slots that own a connection, of media stream slots and of media viewer slots.  At 10k users
with every one offline that is no Python object at all; the existing readers (``scan_users``:
a dict per user, ``scan_slots``: a dict per slot) would build 10k per tick.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fastpath.shm.counter_table cimport (
    KIND_CONNECTION, KIND_MEDIA_CLIENT, KIND_MEDIA_STREAM, KIND_USER, CounterTable,
    fp_load_u64, fp_read_fence, fp_seq_stable, fp_shard_slots, fp_slot, shard_high_water)

cdef enum:
    NKINDS = 8


def node_tick(CounterTable table):
    """``(counts, tx, rx, users_online, streams_live, viewers)``.

    ``counts``, ``tx`` and ``rx`` are lists indexed by slot kind (live slots, bytes summed over
    them: the monotonic user totals for ``KIND_USER``); the last three are the numbers of
    distinct user ids with at least one connection, of distinct media stream ids and of
    distinct viewer ids."""
    if table.base == NULL:
        raise ValueError("counter table is closed")
    cdef uint64_t counts[NKINDS]
    cdef uint64_t txs[NKINDS]
    cdef uint64_t rxs[NKINDS]
    cdef uint32_t n = table.slots_per_shard
    cdef uint32_t shard, i, hw, kind, owner
    cdef uint64_t seq1, seq2, tx, rx
    cdef fp_slot *slots
    cdef fp_slot *s
    # Per slot of the shard being read: 1 when it is a user slot owning a connection, 2 for a
    # media stream or viewer slot (their keys are read after the pass, with the GIL).
    cdef unsigned char *mark = <unsigned char *>malloc(n if n else 1)
    if mark == NULL:
        raise MemoryError()
    memset(counts, 0, sizeof(counts))
    memset(txs, 0, sizeof(txs))
    memset(rxs, 0, sizeof(rxs))
    cdef set online = set()
    cdef set streams = set()
    cdef set viewers = set()
    cdef bint any_marked
    try:
        for shard in range(table.nshards):
            slots = fp_shard_slots(table.base, shard, n)
            hw = shard_high_water(table, shard)
            any_marked = False
            with nogil:
                memset(mark, 0, hw)
                for i in range(hw):
                    s = &slots[i]
                    while True:
                        seq1 = fp_seq_stable(s)
                        kind = s.kind
                        owner = s.user_slot
                        tx = fp_load_u64(&s.tx)
                        rx = fp_load_u64(&s.rx)
                        fp_read_fence()
                        seq2 = fp_load_u64(&s.seq)
                        if seq1 == seq2:
                            break
                    if kind == 0 or kind >= NKINDS:
                        continue
                    counts[kind] += 1
                    txs[kind] += tx
                    rxs[kind] += rx
                    if kind == KIND_CONNECTION and 0 < owner <= hw:
                        mark[owner - 1] = 1
                        any_marked = True
                    elif kind == KIND_MEDIA_STREAM or kind == KIND_MEDIA_CLIENT:
                        mark[i] = 2
                        any_marked = True
            if not any_marked:
                continue
            for i in range(hw):
                if mark[i] == 0:
                    continue
                s = &slots[i]
                while True:
                    seq1 = fp_seq_stable(s)
                    kind = s.kind
                    key = PyBytes_FromStringAndSize(s.key, s.key_len if s.key_len <= 63 else 63)
                    fp_read_fence()
                    seq2 = fp_load_u64(&s.seq)
                    if seq1 == seq2:
                        break
                if mark[i] == 1 and kind == KIND_USER:
                    online.add(key)
                elif kind == KIND_MEDIA_STREAM:
                    streams.add(key)
                elif kind == KIND_MEDIA_CLIENT:
                    viewers.add(key)
    finally:
        free(mark)
    return ([counts[k] for k in range(NKINDS)], [txs[k] for k in range(NKINDS)],
            [rxs[k] for k in range(NKINDS)], len(online), len(streams), len(viewers))
