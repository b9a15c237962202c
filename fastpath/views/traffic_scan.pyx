# cython: language_level=3
"""The registry and scan of the traffic faces' compiled view: which ids exist, their carried
totals and baseline, and one C pass over every shard summing their live figures.

Why apart: ``TrafficView`` (``traffic_view.pyx``) renders four bodies from the same figures;
keeping what the figures are (the registry, the slot map, the seqlocked reads of the
shared-memory table) in one module and how they are written (JSON, Prometheus text, the
stream table) in another lets each be read alone, as ``media_scan``/``media_view`` are.  The
renderer subclasses ``TrafficRegistry`` through ``traffic_scan.pxd``: its loops read the
registry's C arrays directly, with no call per id.

The registry keeps, per id: carried totals, one baseline scope, the id's pre-rendered JSON key
and UTF-8 text, its sort rank; and a map from (shard, slot) to id, so a request is a pass over
the shared memory and a pass over the ids in order, both in C, with Python touched only for
ids it has never seen.  Not thread-safe: one view per process, its methods called under the
owner's lock.
"""
import json

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memset

from fastpath.shm.counter_table cimport (
    KIND_CONNECTION, KIND_TCP_STREAM, KIND_UDP_SESSION, KIND_USER, CounterTable, fp_load_u64,
    fp_now_ns, fp_read_fence, fp_seq_stable, fp_shard_slots, fp_slot, fp_slot_copy,
    shard_high_water)
from fastpath.views.out_buffer cimport put, release, reserve

# /traffic reads only the user slots a full scan found, and runs a full scan (which finds a
# user's first slot in a shard) at least this often: a new user's first bytes show up within
# 100 ms, and since a clear moves an id's baseline only to the total it read, bytes of a slot
# not yet found are reported by a later read, never lost or counted twice.
cdef uint64_t DISCOVERY_NS = 100000000


cdef void *grow_array(void *p, size_t size) except NULL:
    cdef void *q = realloc(p, size if size else 1)
    if q == NULL:
        raise MemoryError()
    return q


cdef class TrafficRegistry:
    """Per-id registry, carried totals, one baseline scope and the live figures of the last
    scan.  Ids are registered on first sight and never forgotten while the view lives."""

    def __cinit__(self):
        self.ids = {}
        self.names = []
        self.order_dirty = False

    def __dealloc__(self):
        free(self.carried_tx); free(self.carried_rx); free(self.base_tx); free(self.base_rx)
        free(self.live_tx); free(self.live_rx); free(self.last); free(self.conns)
        free(self.streams); free(self.flags); free(self.rank); free(self.order)
        free(self.json_off); free(self.json_len); free(self.text_off); free(self.text_len)
        free(self.text_points); release(&self.json_keys); release(&self.text_keys)
        self._drop_map()

    # -- registry -------------------------------------------------------------------------
    def __len__(self):
        return self.n

    cdef int _grow(self) except -1:
        cdef uint32_t cap = self.cap * 2 if self.cap else 1024
        self.carried_tx = <uint64_t *>grow_array(self.carried_tx, cap * 8)
        self.carried_rx = <uint64_t *>grow_array(self.carried_rx, cap * 8)
        self.base_tx = <uint64_t *>grow_array(self.base_tx, cap * 8)
        self.base_rx = <uint64_t *>grow_array(self.base_rx, cap * 8)
        self.live_tx = <uint64_t *>grow_array(self.live_tx, cap * 8)
        self.live_rx = <uint64_t *>grow_array(self.live_rx, cap * 8)
        self.last = <uint64_t *>grow_array(self.last, cap * 8)
        self.conns = <uint32_t *>grow_array(self.conns, cap * 4)
        self.streams = <uint32_t *>grow_array(self.streams, cap * 4)
        self.flags = <uint8_t *>grow_array(self.flags, cap)
        self.rank = <uint32_t *>grow_array(self.rank, cap * 4)
        self.order = <uint32_t *>grow_array(self.order, cap * 4)
        self.json_off = <uint32_t *>grow_array(self.json_off, cap * 4)
        self.json_len = <uint32_t *>grow_array(self.json_len, cap * 4)
        self.text_off = <uint32_t *>grow_array(self.text_off, cap * 4)
        self.text_len = <uint32_t *>grow_array(self.text_len, cap * 4)
        self.text_points = <uint32_t *>grow_array(self.text_points, cap * 4)
        self.cap = cap
        return 0

    cdef int _index(self, str uid) except -1:
        """Index of ``uid``, registered with zeroed figures on first sight."""
        idx = self.ids.get(uid)
        if idx is not None:
            return idx
        cdef uint32_t i = self.n
        if i == self.cap:
            self._grow()
        cdef bytes j = json.dumps(uid, ensure_ascii=False).encode("utf-8")
        cdef bytes t = uid.encode("utf-8")
        reserve(&self.json_keys, len(j))
        reserve(&self.text_keys, len(t))
        self.json_off[i] = <uint32_t>self.json_keys.n
        self.json_len[i] = <uint32_t>len(j)
        put(&self.json_keys, j, len(j))
        self.text_off[i] = <uint32_t>self.text_keys.n
        self.text_len[i] = <uint32_t>len(t)
        self.text_points[i] = <uint32_t>len(uid)
        put(&self.text_keys, t, len(t))
        self.carried_tx[i] = self.carried_rx[i] = 0
        self.base_tx[i] = self.base_rx[i] = 0
        self.live_tx[i] = self.live_rx[i] = self.last[i] = 0
        self.conns[i] = self.streams[i] = 0
        self.flags[i] = 0
        self.ids[uid] = i
        self.names.append(uid)
        self.n = i + 1
        self.order_dirty = True
        return i

    cdef _sort(self):
        """Id order = Python's ``sorted()`` of the ids (code points, i.e. UTF-8 byte order)."""
        cdef uint32_t pos = 0
        if not self.order_dirty:
            return
        names = self.names
        for i in sorted(range(self.n), key=names.__getitem__):
            self.order[pos] = i
            self.rank[i] = pos
            pos += 1
        self.order_dirty = False

    def load(self, carried, baselines, listed=()):
        """Replace the store-derived figures: ``carried`` and ``baselines`` as ``(id, tx, rx)``
        rows, ``listed`` the ids ``listAllUsers`` reports with zeros."""
        cdef uint32_t i
        for i in range(self.n):
            self.carried_tx[i] = self.carried_rx[i] = 0
            self.base_tx[i] = self.base_rx[i] = 0
            self.flags[i] &= ~(F_CARRIED | F_LISTED)
        for uid, tx, rx in carried:
            i = self._index(uid)
            self.carried_tx[i] = tx
            self.carried_rx[i] = rx
            self.flags[i] |= F_CARRIED
        for uid, tx, rx in baselines:
            i = self._index(uid)
            self.base_tx[i] = tx
            self.base_rx[i] = rx
        for uid in listed:
            i = self._index(uid)
            self.flags[i] |= F_LISTED

    def set_baselines(self, rows):
        """Move the baselines of ``(id, tx, rx)`` rows (after their transaction committed)."""
        cdef uint32_t i
        for uid, tx, rx in rows:
            i = self._index(uid)
            self.base_tx[i] = tx
            self.base_rx[i] = rx

    # -- scan -----------------------------------------------------------------------------
    cdef _drop_map(self):
        cdef uint32_t s
        if self.slot_map != NULL:
            for s in range(self.map_shards):
                free(self.slot_map[s])
                free(self.known_at[s])
                free(self.known_idx[s])
            free(self.slot_map)
            free(self.known_at)
            free(self.known_idx)
            free(self.known_n)
        self.slot_map = NULL
        self.known_at = self.known_idx = NULL
        self.known_n = NULL
        self.full_ns = 0
        free(self.cnt_conn); free(self.cnt_stream); free(self.user_at); free(self.user_idx)
        free(self.missed)
        self.cnt_conn = self.cnt_stream = self.user_at = self.user_idx = self.missed = NULL
        self.map_shards = self.map_slots = 0
        self.table = None

    cdef int _bind(self, CounterTable table) except -1:
        """Slot map and scratch for ``table``; a new segment starts a new map."""
        cdef uint32_t s, n
        if table.base == NULL:
            raise ValueError("counter table is closed")
        if self.table is table:
            return 0
        self._drop_map()
        n = table.slots_per_shard
        self.slot_map = <int32_t **>grow_array(NULL, sizeof(int32_t *) * table.nshards)
        memset(self.slot_map, 0, sizeof(int32_t *) * table.nshards)
        self.known_at = <uint32_t **>grow_array(NULL, sizeof(uint32_t *) * table.nshards)
        self.known_idx = <uint32_t **>grow_array(NULL, sizeof(uint32_t *) * table.nshards)
        memset(self.known_at, 0, sizeof(uint32_t *) * table.nshards)
        memset(self.known_idx, 0, sizeof(uint32_t *) * table.nshards)
        self.known_n = <uint32_t *>grow_array(NULL, sizeof(uint32_t) * table.nshards)
        memset(self.known_n, 0, sizeof(uint32_t) * table.nshards)
        self.map_shards = table.nshards
        self.map_slots = n
        for s in range(table.nshards):
            self.slot_map[s] = <int32_t *>grow_array(NULL, sizeof(int32_t) * n)
            memset(self.slot_map[s], 0xFF, sizeof(int32_t) * n)
            self.known_at[s] = <uint32_t *>grow_array(NULL, sizeof(uint32_t) * n)
            self.known_idx[s] = <uint32_t *>grow_array(NULL, sizeof(uint32_t) * n)
        self.cnt_conn = <uint32_t *>grow_array(NULL, 4 * n)
        self.cnt_stream = <uint32_t *>grow_array(NULL, 4 * n)
        self.user_at = <uint32_t *>grow_array(NULL, 4 * n)
        self.user_idx = <uint32_t *>grow_array(NULL, 4 * n)
        self.missed = <uint32_t *>grow_array(NULL, 4 * n)
        self.table = table
        return 0

    cdef int _resolve(self, fp_slot *s, uint32_t *kind, uint64_t *tx, uint64_t *rx,
                      uint64_t *last) except -2:
        """Slow path for a slot whose key is not in the map: a torn-free copy, decoded as
        ``scan_users`` does; returns its index (mapped when its bytes are the id's UTF-8)."""
        cdef fp_slot copy
        fp_slot_copy(s, &copy)
        kind[0] = copy.kind
        tx[0] = copy.tx
        rx[0] = copy.rx
        last[0] = copy.last_active_ns
        return self._index(PyBytes_FromStringAndSize(copy.key, copy.key_len).decode("utf-8", "replace"))

    cdef uint32_t _scan_shard(self, fp_slot *slots, int32_t *smap, uint32_t hw,
                              bint counts) noexcept nogil:
        """One shard's pass in C: user slots whose key the map knows are summed, the others
        are left in ``missed`` for ``_scan``; returns how many were missed.  Only the first
        cache line of a slot is read unless it is a user slot (or ``counts`` needs its owner)."""
        cdef uint32_t i, kind, owner = 0, nusers = 0, nmissed = 0
        cdef int32_t idx
        cdef fp_slot *s
        cdef uint64_t seq1, tx = 0, rx = 0, last = 0
        cdef bint ok = False
        if counts:
            memset(self.cnt_conn, 0, 4 * hw)
            memset(self.cnt_stream, 0, 4 * hw)
        for i in range(hw):
            s = &slots[i]
            if not counts and (<volatile uint32_t *>&s.kind)[0] != KIND_USER:
                # Only user slots matter here, and a slot becoming one mid-scan is the same
                # as a scan a moment earlier: no seqlock round for the others.
                continue
            while True:
                seq1 = fp_seq_stable(s)
                kind = s.kind
                if kind == KIND_USER:
                    idx = smap[i]
                    ok = self._same_key(s, idx)
                    tx = fp_load_u64(&s.tx)
                    rx = fp_load_u64(&s.rx)
                    last = fp_load_u64(&s.last_active_ns)
                elif counts:
                    owner = s.user_slot
                fp_read_fence()
                if fp_load_u64(&s.seq) == seq1:
                    break
            if kind == KIND_USER:
                if not ok:
                    self.missed[nmissed] = i
                    nmissed += 1
                    continue
                self._add_live(idx, tx, rx, last)
                self._found(i, idx)
            elif counts and owner != 0 and owner <= hw:
                if kind == KIND_CONNECTION:
                    self.cnt_conn[owner - 1] += 1
                elif kind == KIND_TCP_STREAM or kind == KIND_UDP_SESSION:
                    self.cnt_stream[owner - 1] += 1
        return nmissed

    cdef int _scan(self, CounterTable table, bint counts) except -1:
        """Live tx, rx, last activity (and with ``counts`` connections and streams) per id:
        the pass runs without the GIL; ids seen for the first time are registered after it."""
        self._bind(table)
        cdef uint32_t shard, i, j, hw, kind, nmissed
        cdef int32_t idx
        cdef int32_t *smap
        cdef fp_slot *slots
        cdef uint64_t tx, rx, last
        cdef uint64_t now = fp_now_ns()
        self._reset_live()
        if not counts and self.full_ns and now >= self.full_ns and now - self.full_ns < DISCOVERY_NS:
            with nogil:
                if self._scan_known(table):
                    return 0
            self._reset_live()
        self.full_ns = now
        for shard in range(table.nshards):
            slots = fp_shard_slots(table.base, shard, table.slots_per_shard)
            smap = self.slot_map[shard]
            hw = shard_high_water(table, shard)
            self.nusers = 0
            with nogil:
                nmissed = self._scan_shard(slots, smap, hw, counts)
            for j in range(nmissed):
                i = self.missed[j]
                idx = self._resolve(&slots[i], &kind, &tx, &rx, &last)
                if kind != KIND_USER:
                    continue
                smap[i] = idx if self._same_key(&slots[i], idx) else -1
                self._add_live(idx, tx, rx, last)
                self._found(i, idx)
            if counts:
                for i in range(self.nusers):
                    self.conns[self.user_idx[i]] += self.cnt_conn[self.user_at[i]]
                    self.streams[self.user_idx[i]] += self.cnt_stream[self.user_at[i]]
            memcpy(self.known_at[shard], self.user_at, 4 * self.nusers)
            memcpy(self.known_idx[shard], self.user_idx, 4 * self.nusers)
            self.known_n[shard] = self.nusers
        return 0

    cdef void _reset_live(self) noexcept:
        cdef uint32_t i
        memset(self.live_tx, 0, 8 * self.n)
        memset(self.live_rx, 0, 8 * self.n)
        memset(self.last, 0, 8 * self.n)
        memset(self.conns, 0, 4 * self.n)
        memset(self.streams, 0, 4 * self.n)
        for i in range(self.n):
            self.flags[i] &= ~F_LIVE

    cdef bint _scan_known(self, CounterTable table) noexcept nogil:
        """Sum only the user slots the last full scan found (user slots are never freed while
        a segment lives); False, with the sums partial, if one is no longer its id's."""
        cdef uint32_t shard, j, slot, kind
        cdef uint32_t idx
        cdef fp_slot *slots
        cdef fp_slot *s
        cdef uint64_t seq1, tx, rx, last
        cdef bint ok
        for shard in range(table.nshards):
            slots = fp_shard_slots(table.base, shard, table.slots_per_shard)
            for j in range(self.known_n[shard]):
                slot = self.known_at[shard][j]
                idx = self.known_idx[shard][j]
                s = &slots[slot]
                while True:
                    seq1 = fp_seq_stable(s)
                    kind = s.kind
                    ok = kind == KIND_USER and self._same_key(s, idx)
                    tx = fp_load_u64(&s.tx)
                    rx = fp_load_u64(&s.rx)
                    last = fp_load_u64(&s.last_active_ns)
                    fp_read_fence()
                    if fp_load_u64(&s.seq) == seq1:
                        break
                if not ok:
                    return False
                self._add_live(idx, tx, rx, last)
        return True
