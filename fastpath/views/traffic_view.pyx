# cython: language_level=3
"""Compiled read side of the traffic faces: response bodies written straight into a byte buffer
from one C scan of every shard.

With 10k users and 50k live streams, building dicts per slot, merging them with the store's
carried totals and baselines, and handing them to ``json.dumps`` cost tens of milliseconds to
seconds per request.  ``TrafficView`` renders instead from a compact per-id registry and its
scan, ``TrafficRegistry`` (``traffic_scan.pyx``, declared in ``traffic_scan.pxd``), which it
extends: the renderers' loops read the registry's C arrays directly.

The bodies are byte-identical to the Python renderings they replace (``json.dumps`` with
``ensure_ascii=False``; keys and text decoded as UTF-8 with ``errors="replace"``), written
with the compiled views' one output writer (``fastpath/views/out_buffer.pxd``).

Not thread-safe: one view per process, its methods called under the owner's lock.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, qsort
from libc.string cimport memcpy, memset

from fastpath.shm.counter_table cimport (
    FP_KEY_MAX, KIND_TCP_STREAM, CounterTable, fp_load_u64, fp_read_fence, fp_seq_stable, fp_shard_slots,
    fp_slot, shard_high_water)
from fastpath.views.out_buffer cimport (
    Buf, put, put_c, put_duration, put_iso_us, put_json_text, put_pad, put_rfc3339_nano, put_text,
    put_u64, release, reserve, take)
from fastpath.views.traffic_scan cimport (
    F_CARRIED, F_LISTED, F_LIVE, TrafficRegistry, grow_array)

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


cdef class TrafficView(TrafficRegistry):
    """The bodies of the traffic faces, rendered from the registry's figures (see
    ``TrafficRegistry`` in ``traffic_scan.pyx`` for the registry and the scan)."""

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
                        memcpy(&copy, s, 128 + 1 + FP_KEY_MAX)
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
                        recs = <Rec *>grow_array(recs, sizeof(Rec) * cap)
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
