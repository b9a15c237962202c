# cython: language_level=3
"""Compiled read side of the traffic faces: one C scan of every shard, response bodies written
straight into a byte buffer.

With 10k users and 50k live streams, building dicts per slot, merging them with the store's
carried totals and baselines, and handing them to ``json.dumps`` cost tens of milliseconds to
seconds per request.  ``TrafficView`` keeps a compact per-id registry instead (carried totals,
one baseline scope, the id's pre-rendered JSON key and UTF-8 text, its sort rank) plus a map
from (shard, slot) to id, so a request is a pass over the shared memory and a pass over the ids
in order, both in C, with Python touched only for ids it has never seen.

The bodies are byte-identical to the Python renderings they replace (``json.dumps`` with
``ensure_ascii=False``; keys and text decoded as UTF-8 with ``errors="replace"``), written
with the compiled views' one output writer (``fastpath/views/out_buffer.pxd``).

Not thread-safe: one view per process, its methods called under the owner's lock.
"""
import json

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, qsort, realloc
from libc.string cimport memcmp, memcpy, memset

from fastpath.shm.counter_table cimport (
    KIND_CONNECTION, KIND_TCP_STREAM, KIND_UDP_SESSION, KIND_USER, CounterTable, fp_load_u64,
    fp_now_ns, fp_read_fence, fp_seq_stable, fp_shard_slots, fp_slot, fp_slot_copy,
    shard_high_water)
from fastpath.views.out_buffer cimport (
    Buf, put, put_c, put_duration, put_iso_us, put_json_text, put_pad, put_rfc3339_nano, put_text,
    put_u64, release, reserve, take)

cdef enum:
    F_CARRIED = 1   # the id has carried traffic in the store
    F_LISTED = 2    # the id is a user of the store (``listAllUsers``)
    F_LIVE = 4      # the id has a user slot in the live segment
    FP_KEY_LEN = 63

# /traffic reads only the user slots a full scan found, and runs a full scan (which finds a
# user's first slot in a shard) at least this often: a new user's first bytes show up within
# 100 ms, and since a clear moves an id's baseline only to the total it read, bytes of a slot
# not yet found are reported by a later read, never lost or counted twice.
cdef uint64_t DISCOVERY_NS = 100000000


cdef void *_realloc(void *p, size_t size) except NULL:
    cdef void *q = realloc(p, size if size else 1)
    if q == NULL:
        raise MemoryError()
    return q


cdef const char *STATE_WORDS = b"init\0\0\0\0hook\0\0\0\0connect\0estab\0\0\0closed\0\0"
cdef const char *STATE_UPPER = b"INIT\0\0\0\0HOOK\0\0\0\0CONNECT\0ESTAB\0\0\0CLOSED\0\0"
cdef size_t STATE_LEN[5]
STATE_LEN[0] = 4
STATE_LEN[1] = 4
STATE_LEN[2] = 7
STATE_LEN[3] = 5
STATE_LEN[4] = 6


cdef inline const char *state_name(uint32_t st, bint upper, size_t *n) noexcept nogil:
    """The Traffic Stats API's state word, 8-byte spaced in the tables above (anything
    unknown is ``closed``)."""
    if st > 4:
        st = 4
    n[0] = STATE_LEN[st]
    return (STATE_UPPER if upper else STATE_WORDS) + 8 * st


# -- stream table cells -------------------------------------------------------------------------

cdef uint64_t TEN_MIN_NS = <uint64_t>600 * 1000000000
cdef const char *HEX_UPPER = b"0123456789ABCDEF"


cdef uint64_t rounded(uint64_t ns) noexcept nogil:
    """The stream table's rounding: to the millisecond under 10 minutes, to the second above."""
    cdef uint64_t step = 1000000 if ns < TEN_MIN_NS else 1000000000
    return (ns + step // 2) // step * step


cdef void put_right(Buf *b, Buf *tmp, int width) noexcept nogil:
    """``tmp`` (ASCII or µ) right-aligned in ``width`` code points, then a space."""
    cdef size_t i, points = 0
    for i in range(tmp.n):
        if (<uint8_t>tmp.p[i] & 0xC0) != 0x80:
            points += 1
    put_pad(b, width - <int>points)
    put(b, tmp.p, tmp.n)
    put_c(b, 32)
    tmp.n = 0


cdef inline void put_label_value(Buf *b, const char *s, size_t n) noexcept nogil:
    """A Prometheus label value: UTF-8 as it is, with backslash, double quote and newline
    escaped (room for twice ``n`` is the caller's)."""
    cdef size_t i
    cdef char c
    for i in range(n):
        c = s[i]
        if c == 92 or c == 34:
            b.p[b.n] = 92
            b.p[b.n + 1] = c
            b.n += 2
        elif c == 10:
            b.p[b.n] = 92
            b.p[b.n + 1] = 110
            b.n += 2
        else:
            b.p[b.n] = c
            b.n += 1


# -- dump records -------------------------------------------------------------------------------

cdef struct Rec:
    uint64_t major      # sort rank of the auth id << 32 | connection (low 32 bits of conn_id)
    uint64_t stream
    uint64_t order      # shard << 32 | slot: the scan order, for a stable sort
    uint64_t tx
    uint64_t rx
    uint64_t created
    uint64_t last
    uint32_t idx
    uint32_t state
    uint32_t addr_off
    uint32_t addr_len


cdef int rec_cmp(const void *a, const void *b) noexcept nogil:
    cdef const Rec *x = <const Rec *>a
    cdef const Rec *y = <const Rec *>b
    if x.major != y.major:
        return -1 if x.major < y.major else 1
    if x.stream != y.stream:
        return -1 if x.stream < y.stream else 1
    if x.order != y.order:
        return -1 if x.order < y.order else 1
    return 0


cdef class TrafficView:
    """Per-id registry, carried totals, one baseline scope and the live figures of the last
    scan.  Ids are registered on first sight and never forgotten while the view lives."""

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
        self.carried_tx = <uint64_t *>_realloc(self.carried_tx, cap * 8)
        self.carried_rx = <uint64_t *>_realloc(self.carried_rx, cap * 8)
        self.base_tx = <uint64_t *>_realloc(self.base_tx, cap * 8)
        self.base_rx = <uint64_t *>_realloc(self.base_rx, cap * 8)
        self.live_tx = <uint64_t *>_realloc(self.live_tx, cap * 8)
        self.live_rx = <uint64_t *>_realloc(self.live_rx, cap * 8)
        self.last = <uint64_t *>_realloc(self.last, cap * 8)
        self.conns = <uint32_t *>_realloc(self.conns, cap * 4)
        self.streams = <uint32_t *>_realloc(self.streams, cap * 4)
        self.flags = <uint8_t *>_realloc(self.flags, cap)
        self.rank = <uint32_t *>_realloc(self.rank, cap * 4)
        self.order = <uint32_t *>_realloc(self.order, cap * 4)
        self.json_off = <uint32_t *>_realloc(self.json_off, cap * 4)
        self.json_len = <uint32_t *>_realloc(self.json_len, cap * 4)
        self.text_off = <uint32_t *>_realloc(self.text_off, cap * 4)
        self.text_len = <uint32_t *>_realloc(self.text_len, cap * 4)
        self.text_points = <uint32_t *>_realloc(self.text_points, cap * 4)
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
        self.slot_map = <int32_t **>_realloc(NULL, sizeof(int32_t *) * table.nshards)
        memset(self.slot_map, 0, sizeof(int32_t *) * table.nshards)
        self.known_at = <uint32_t **>_realloc(NULL, sizeof(uint32_t *) * table.nshards)
        self.known_idx = <uint32_t **>_realloc(NULL, sizeof(uint32_t *) * table.nshards)
        memset(self.known_at, 0, sizeof(uint32_t *) * table.nshards)
        memset(self.known_idx, 0, sizeof(uint32_t *) * table.nshards)
        self.known_n = <uint32_t *>_realloc(NULL, sizeof(uint32_t) * table.nshards)
        memset(self.known_n, 0, sizeof(uint32_t) * table.nshards)
        self.map_shards = table.nshards
        self.map_slots = n
        for s in range(table.nshards):
            self.slot_map[s] = <int32_t *>_realloc(NULL, sizeof(int32_t) * n)
            memset(self.slot_map[s], 0xFF, sizeof(int32_t) * n)
            self.known_at[s] = <uint32_t *>_realloc(NULL, sizeof(uint32_t) * n)
            self.known_idx[s] = <uint32_t *>_realloc(NULL, sizeof(uint32_t) * n)
        self.cnt_conn = <uint32_t *>_realloc(NULL, 4 * n)
        self.cnt_stream = <uint32_t *>_realloc(NULL, 4 * n)
        self.user_at = <uint32_t *>_realloc(NULL, 4 * n)
        self.user_idx = <uint32_t *>_realloc(NULL, 4 * n)
        self.missed = <uint32_t *>_realloc(NULL, 4 * n)
        self.table = table
        return 0

    cdef inline bint _same_key(self, fp_slot *s, int32_t idx) noexcept nogil:
        return (idx >= 0 and s.key_len == self.text_len[idx]
                and memcmp(s.key, self.text_keys.p + self.text_off[idx], s.key_len) == 0)

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

    # -- bodies ---------------------------------------------------------------------------
    cdef inline void _put_key(self, Buf *b, uint32_t i) noexcept nogil:
        put(b, self.json_keys.p + self.json_off[i], self.json_len[i])

    cdef bytes _traffic_body(self, bint list_all, list cleared):
        """``/traffic``: ``{"id":{"tx":n,"rx":n},...}`` of the traffic since the baseline,
        ids sorted, zeros left out unless listed.  With ``cleared`` a list, the ids whose
        figures are not zero get ``(id, tx, rx)`` of their new baseline appended."""
        cdef Buf b
        cdef uint32_t k, i
        cdef uint64_t tx, rx
        memset(&b, 0, sizeof(Buf))
        self._sort()
        try:
            reserve(&b, self.json_keys.n + 64 * <size_t>self.n + 2)
            with nogil:
                self._render_traffic(&b, list_all)
            if cleared is not None:
                for k in range(self.n):
                    i = self.order[k]
                    tx = self.carried_tx[i] + self.live_tx[i]
                    rx = self.carried_rx[i] + self.live_rx[i]
                    if tx > self.base_tx[i] or rx > self.base_rx[i]:
                        cleared.append((self.names[i], tx, rx))
            return take(&b)
        finally:
            release(&b)

    cdef void _render_traffic(self, Buf *b, bint list_all) noexcept nogil:
        cdef uint32_t k, i
        cdef uint64_t tx, rx, dtx, drx
        cdef bint first = True
        put_c(b, 123)
        for k in range(self.n):
            i = self.order[k]
            tx = self.carried_tx[i] + self.live_tx[i]
            rx = self.carried_rx[i] + self.live_rx[i]
            dtx = tx - self.base_tx[i] if tx > self.base_tx[i] else 0
            drx = rx - self.base_rx[i] if rx > self.base_rx[i] else 0
            if not (dtx or drx or (list_all and self.flags[i] & F_LISTED)):
                continue
            if not first:
                put_c(b, 44)
            first = False
            self._put_key(b, i)
            put(b, b':{"tx":', 7)
            put_u64(b, dtx)
            put(b, b',"rx":', 6)
            put_u64(b, drx)
            put_c(b, 125)
        put_c(b, 125)

    def traffic(self, CounterTable table, bint list_all=False):
        """The ``/traffic`` body (bytes)."""
        self._scan(table, False)
        return self._traffic_body(list_all, None)

    def traffic_clear(self, CounterTable table, bint list_all=False):
        """``(body, rows)`` of ``/traffic?clear=1``: ``rows`` are the new baselines to write in
        the same transaction; call ``set_baselines(rows)`` once it committed."""
        cdef list rows = []
        self._scan(table, False)
        return self._traffic_body(list_all, rows), rows

    def online(self, CounterTable table):
        """The ``/online`` body: ``{"id":connections,...}`` of ids with a connection, sorted."""
        cdef Buf b
        cdef uint32_t k, i
        cdef bint first = True
        self._scan(table, True)
        self._sort()
        memset(&b, 0, sizeof(Buf))
        try:
            reserve(&b, 2)
            put_c(&b, 123)
            for k in range(self.n):
                i = self.order[k]
                if self.conns[i] == 0:
                    continue
                reserve(&b, self.json_len[i] + 16)
                if not first:
                    put_c(&b, 44)
                first = False
                self._put_key(&b, i)
                put_c(&b, 58)
                put_u64(&b, self.conns[i])
            put_c(&b, 125)
            return take(&b)
        finally:
            release(&b)

    def totals(self, CounterTable table):
        """The native ``/api/v1/traffic`` body, as ``json.dumps(..., ensure_ascii=False)`` of
        ``{"users": {id: {"tx", "rx", "online", "streams", "last_active"}}, "total": n}``
        over every id with carried or live traffic, sorted."""
        cdef Buf b
        cdef uint32_t k, i, total = 0
        cdef bint first = True
        self._scan(table, True)
        self._sort()
        memset(&b, 0, sizeof(Buf))
        try:
            reserve(&b, 64)
            put(&b, b'{"users": {', 11)
            for k in range(self.n):
                i = self.order[k]
                if not self.flags[i] & (F_CARRIED | F_LIVE):
                    continue
                total += 1
                reserve(&b, self.json_len[i] + 160)
                if not first:
                    put(&b, b", ", 2)
                first = False
                self._put_key(&b, i)
                put(&b, b': {"tx": ', 9)
                put_u64(&b, self.carried_tx[i] + self.live_tx[i])
                put(&b, b', "rx": ', 8)
                put_u64(&b, self.carried_rx[i] + self.live_rx[i])
                put(&b, b', "online": ', 12)
                put_u64(&b, self.conns[i])
                put(&b, b', "streams": ', 13)
                put_u64(&b, self.streams[i])
                put(&b, b', "last_active": ', 17)
                if self.flags[i] & F_LIVE and self.last[i]:
                    put_c(&b, 34)
                    put_iso_us(&b, self.last[i])
                    put_c(&b, 34)
                else:
                    put(&b, b"null", 4)
                put_c(&b, 125)
            put(&b, b'}, "total": ', 12)
            put_u64(&b, total)
            put_c(&b, 125)
            return take(&b)
        finally:
            release(&b)

    def user_metrics(self, CounterTable table, list families):
        """The per-user families of ``/metrics`` in the Prometheus text format, for every id
        with carried or live traffic, sorted: total tx and rx (monotonic: baselines do not
        apply) and live connections.  ``families`` is three ``(header, name)`` pairs of bytes
        in that order: the family's ``# HELP`` / ``# TYPE`` lines and its sample name.  Values
        are written as integers (exact past 2**53, where a float would round)."""
        cdef Buf b
        cdef bytes head, name
        cdef const char *name_p
        cdef size_t name_n
        cdef int f
        cdef size_t need = 0
        if len(families) != 3:
            raise ValueError("user_metrics needs the tx, rx and online families")
        self._scan(table, True)
        self._sort()
        memset(&b, 0, sizeof(Buf))
        try:
            for head, name in families:
                # per id: name, '{user="', the id escaped (at most twice its bytes), '"} ', a
                # number and a newline
                need += len(head) + self.n * (<size_t>len(name) + 36) + 2 * self.text_keys.n
            reserve(&b, need)
            for f in range(3):
                head, name = families[f]
                put(&b, head, len(head))
                name_p = name
                name_n = len(name)
                with nogil:
                    self._render_metric(&b, f, name_p, name_n)
            return take(&b)
        finally:
            release(&b)

    cdef void _render_metric(self, Buf *b, int family, const char *name, size_t name_len) noexcept nogil:
        cdef uint32_t k, i
        cdef uint64_t v
        for k in range(self.n):
            i = self.order[k]
            if not self.flags[i] & (F_CARRIED | F_LIVE):
                continue
            if family == 0:
                v = self.carried_tx[i] + self.live_tx[i]
            elif family == 1:
                v = self.carried_rx[i] + self.live_rx[i]
            else:
                v = self.conns[i]
            put(b, name, name_len)
            put(b, b'{user="', 7)
            put_label_value(b, self.text_keys.p + self.text_off[i], self.text_len[i])
            put(b, b'"} ', 3)
            put_u64(b, v)
            put_c(b, 10)

    def dump_streams(self, CounterTable table, uint64_t now_ns, bint text=False, bytes header=b""):
        """The ``/dump/streams`` body: TCP streams sorted by auth, connection, stream; JSON,
        or with ``text`` the table (``header`` first) with durations up to ``now_ns``."""
        self._bind(table)
        cdef uint32_t shard, i, hw, kind, owner, state, count = 0, cap = 0
        cdef int32_t idx
        cdef int32_t *smap
        cdef fp_slot *slots
        cdef fp_slot *s
        cdef fp_slot copy
        cdef uint64_t seq1
        cdef Rec *recs = NULL
        cdef Rec *r
        cdef Buf addrs, b, tmp
        memset(&addrs, 0, sizeof(Buf))
        memset(&b, 0, sizeof(Buf))
        memset(&tmp, 0, sizeof(Buf))
        try:
            for shard in range(table.nshards):
                slots = fp_shard_slots(table.base, shard, table.slots_per_shard)
                smap = self.slot_map[shard]
                hw = shard_high_water(table, shard)
                for i in range(hw):
                    s = &slots[i]
                    if s.kind != KIND_TCP_STREAM:
                        continue
                    while True:
                        seq1 = fp_seq_stable(s)
                        memcpy(&copy, s, 128 + 1 + FP_KEY_LEN)
                        memcpy(&copy.text_b_len, &s.text_b_len, 1 + 127)
                        fp_read_fence()
                        if fp_load_u64(&s.seq) == seq1:
                            break
                    if copy.kind != KIND_TCP_STREAM:
                        continue
                    idx = smap[i]
                    if not self._same_key(&copy, idx):
                        owner = copy.user_slot
                        idx = smap[owner - 1] if 0 < owner <= hw else -1
                        if not self._same_key(&copy, idx):
                            idx = self._index(PyBytes_FromStringAndSize(copy.key, copy.key_len)
                                              .decode("utf-8", "replace"))
                        if self._same_key(&copy, idx):
                            smap[i] = idx
                    if count == cap:
                        cap = cap * 2 if cap else 4096
                        recs = <Rec *>_realloc(recs, sizeof(Rec) * cap)
                    r = &recs[count]
                    count += 1
                    r.idx = idx
                    r.major = <uint32_t>copy.conn_id
                    r.stream = copy.stream_id
                    r.order = (<uint64_t>shard << 32) | i
                    r.tx = copy.tx
                    r.rx = copy.rx
                    r.created = copy.created_ns
                    r.last = copy.last_active_ns
                    r.state = copy.state
                    reserve(&addrs, copy.text_b_len)
                    r.addr_off = <uint32_t>addrs.n
                    r.addr_len = copy.text_b_len
                    put(&addrs, copy.text_b, copy.text_b_len)
            self._sort()
            for i in range(count):
                recs[i].major |= <uint64_t>self.rank[recs[i].idx] << 32
            with nogil:
                qsort(recs, count, sizeof(Rec), rec_cmp)
            if text:
                reserve(&tmp, 64)
                reserve(&b, len(header))
                put(&b, header, len(header))
                for i in range(count):
                    self._table_line(&b, &tmp, &recs[i], &addrs, now_ns)
            else:
                reserve(&b, 16)
                put(&b, b'{"streams":[', 12)
                for i in range(count):
                    self._json_stream(&b, &recs[i], &addrs, i == 0)
                reserve(&b, 4)
                put(&b, b"]}\n", 3)
            return take(&b)
        finally:
            free(recs)
            release(&addrs)
            release(&tmp)
            release(&b)

    cdef int _json_stream(self, Buf *b, Rec *r, Buf *addrs, bint first) except -1:
        cdef size_t slen
        cdef const char *state = state_name(r.state, False, &slen)
        reserve(b, self.json_len[r.idx] + 6 * r.addr_len + 320)
        if not first:
            put_c(b, 44)
        put(b, b'{"state":"', 10)
        put(b, state, slen)
        put(b, b'","auth":', 9)
        self._put_key(b, r.idx)
        put(b, b',"connection":', 14)
        put_u64(b, <uint32_t>r.major)
        put(b, b',"stream":', 10)
        put_u64(b, r.stream)
        put(b, b',"req_addr":', 12)
        put_json_text(b, addrs.p + r.addr_off, r.addr_len)
        put(b, b',"hooked_req_addr":"","tx":', 27)
        put_u64(b, r.tx)
        put(b, b',"rx":', 6)
        put_u64(b, r.rx)
        put(b, b',"initial_at":"', 15)
        put_rfc3339_nano(b, r.created)
        put(b, b'","last_active_at":"', 20)
        put_rfc3339_nano(b, r.last)
        put(b, b'"}', 2)
        return 0

    cdef int _table_line(self, Buf *b, Buf *tmp, Rec *r, Buf *addrs, uint64_t now) except -1:
        """``%-8s %-12s %12s %8s %12s %12s %12s %12s %-16s %s`` of one stream."""
        cdef size_t slen
        cdef const char *state = state_name(r.state, True, &slen)
        cdef uint32_t conn = <uint32_t>r.major
        cdef size_t points
        cdef int k
        reserve(b, self.text_len[r.idx] + 3 * r.addr_len + 256)
        put(b, state, slen)
        put_pad(b, 8 - <int>slen)
        put_c(b, 32)
        put(b, self.text_keys.p + self.text_off[r.idx], self.text_len[r.idx])
        put_pad(b, 12 - <int>self.text_points[r.idx])
        put_c(b, 32)
        for k in range(7, -1, -1):
            tmp.p[k] = HEX_UPPER[(conn >> (4 * (7 - k))) & 15]
        tmp.n = 8
        put_right(b, tmp, 12)
        put_u64(tmp, r.stream)
        put_right(b, tmp, 8)
        put_u64(tmp, r.tx)
        put_right(b, tmp, 12)
        put_u64(tmp, r.rx)
        put_right(b, tmp, 12)
        put_duration(tmp, rounded(now - r.created if now > r.created else 0))
        put_right(b, tmp, 12)
        put_duration(tmp, rounded(now - r.last if now > r.last else 0))
        put_right(b, tmp, 12)
        if r.addr_len:
            points = put_text(b, addrs.p + r.addr_off, r.addr_len)
        else:
            put_c(b, 45)
            points = 1
        put_pad(b, 16 - <int>points)
        put(b, b" -\n", 3)
        return 0


def json_text(bytes raw):
    """``raw`` decoded with errors="replace" and rendered by the view's JSON string encoder
    (exposed for tests)."""
    cdef Buf b
    memset(&b, 0, sizeof(Buf))
    reserve(&b, 6 * len(raw) + 2)
    put_json_text(&b, raw, len(raw))
    return take(&b)


def text(bytes raw):
    """``(bytes, code points)`` of ``raw`` decoded with errors="replace" (exposed for tests)."""
    cdef Buf b
    memset(&b, 0, sizeof(Buf))
    reserve(&b, 3 * len(raw) + 1)
    cdef size_t points = put_text(&b, raw, len(raw))
    return take(&b), points


cdef str time_text(uint64_t ns, int form):
    """``ns`` as a Go duration (0), RFC 3339 (1) or ISO 8601 (2) time, by the body writer."""
    cdef Buf b
    memset(&b, 0, sizeof(Buf))
    reserve(&b, 64)
    if form == 0:
        put_duration(&b, ns)
    elif form == 1:
        put_rfc3339_nano(&b, ns)
    else:
        put_iso_us(&b, ns)
    return take(&b).decode()


def go_duration(uint64_t ns):
    """``time.Duration.String()`` (exposed for tests, as the two below)."""
    return time_text(ns, 0)


def rfc3339_nano(uint64_t ns):
    return time_text(ns, 1)


def iso_us(uint64_t ns):
    return time_text(ns, 2)
