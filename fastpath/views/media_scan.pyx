# cython: language_level=3
"""Compiled read side of the stream proxy face: one C scan of the media slots of every shard.

At 1k streams and 10k viewers, one dict per slot (``scan_slots``) and folding them in Python
cost ~30 ms per request.  Here the slots are copied under their seqlock and folded in C with
the GIL released: stream slots are grouped by stream id (the per-worker relays of one stream),
viewer slots by viewer id (an HLS viewer served by several workers is one viewer) and by
owning stream (distinct connected viewers, latest activity), each with one hash probe a slot
(``group_by``).  Python objects are built only for what a request needs: one tuple per
stream, viewer tuples only when asked for, or the viewers' JSON written straight into bytes
(``render_clients``) for the listings of every viewer.

The folding rules are those of ``tests/oracles/live.py: gather`` (tests compare both on
random slot sets).  Ids are grouped as Python sees them: bytes are first normalised the way
``bytes.decode("utf-8", "replace")`` reads them (a maximal invalid subpart becomes U+FFFD), so
two ids that decode to the same text are one id.  Sums are uint64, as the counters themselves.

Its JSON renderer (``render_clients``) is ``media_view``, over ``media_scan.pxd``.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

from fastpath.shm.counter_table cimport (
    KIND_MEDIA_CLIENT, KIND_MEDIA_STREAM, STATE_CLOSED, STATE_CONNECT, STATE_ESTAB, CounterTable,
    fp_shard_slots, fp_slot, fp_slot_copy, shard_high_water)
from fastpath.views.utf8_replace cimport utf8_step


cdef uint16_t normalise(const char *src, size_t n, char *out, uint64_t *hash) noexcept nogil:
    """``src`` rewritten as the valid UTF-8 of its replace-decoding: equal outputs <=> equal
    decoded strings.  ``hash``: FNV-1a of the output."""
    cdef const uint8_t *s = <const uint8_t *>src
    cdef size_t i = 0, o = 0, used
    cdef uint64_t h = 1469598103934665603ULL
    while i < n:
        if s[i] < 0x80:
            out[o] = <char>s[i]
            o += 1
            i += 1
            continue
        if utf8_step(s + i, n - i, &used):
            memcpy(out + o, s + i, used)
            o += used
        else:
            out[o] = <char>0xEF
            out[o + 1] = <char>0xBF
            out[o + 2] = <char>0xBD
            o += 3
        i += used
    for i in range(o):
        h = (h ^ <uint8_t>out[i]) * 1099511628211ULL
    hash[0] = h
    return <uint16_t>o


cdef inline int cmp_bytes(const char *a, size_t an, const char *b, size_t bn) noexcept nogil:
    cdef int c = memcmp(a, b, an if an < bn else bn)
    if c:
        return c
    return (an > bn) - (an < bn)


cdef inline bint same_key(const MRec *a, const MRec *b) noexcept nogil:
    return a.hk == b.hk and cmp_bytes(a.key, a.key_n, b.key, b.key_n) == 0


cdef inline bint same_owner(const MRec *a, const MRec *b) noexcept nogil:
    return a.ho == b.ho and cmp_bytes(a.own, a.own_n, b.own, b.own_n) == 0


cdef size_t copy_slots(CounterTable table, MRec *out, size_t cap) noexcept nogil:
    """Torn-free copies of the live media slots (at most ``cap``), in scan order."""
    cdef uint32_t shard, i, hw, kind
    cdef uint32_t n = table.slots_per_shard
    cdef fp_slot *slots
    cdef fp_slot *s
    cdef fp_slot c
    cdef size_t count = 0
    cdef uint32_t order = 0
    cdef MRec *r
    for shard in range(table.nshards):
        slots = fp_shard_slots(table.base, shard, n)
        hw = shard_high_water(table, shard)
        for i in range(hw):
            s = &slots[i]
            kind = s.kind
            if kind != KIND_MEDIA_STREAM and kind != KIND_MEDIA_CLIENT:
                continue
            fp_slot_copy(s, &c)
            if (c.kind != KIND_MEDIA_STREAM and c.kind != KIND_MEDIA_CLIENT) or count >= cap:
                continue
            r = &out[count]
            count += 1
            r.kind = c.kind
            r.state = c.state
            r.order = order
            order += 1
            r.tx = c.tx
            r.rx = c.rx
            r.txp = c.tx_packets
            r.rxp = c.rx_packets
            r.created = c.created_ns
            r.last = c.last_active_ns
            memcpy(r.extra, c.extra, sizeof(c.extra))
            r.key_n = normalise(c.key, c.key_len if c.key_len <= 63 else 63, r.key, &r.hk)
            r.a_n = c.text_a_len if c.text_a_len <= 63 else 63
            memcpy(r.a, c.text_a, r.a_n)
            r.own_n = normalise(c.text_a, r.a_n, r.own, &r.ho)
            r.b_n = c.text_b_len if c.text_b_len <= 127 else 127
            memcpy(r.b, c.text_b, r.b_n)
    return count


cdef inline int rank(uint32_t state) noexcept nogil:
    if state == STATE_ESTAB:
        return 3
    if state == STATE_CONNECT:
        return 2
    if state == STATE_CLOSED:
        return 1
    return 0


cdef inline str text(const char *p, size_t n):
    return PyBytes_FromStringAndSize(p, n).decode("utf-8", "replace")


cdef inline str word(uint32_t state):
    if state == STATE_ESTAB:
        return "reading"
    if state == STATE_CONNECT:
        return "connecting"
    return "idle"


cdef tuple fold_stream(MRec **g, size_t n):
    """One stream's worker slots (scan order) -> the fields of ``LiveStream``."""
    cdef MRec *first = g[0]
    cdef MRec *r
    cdef MRec *cur = NULL
    cdef uint32_t state = STATE_CLOSED
    cdef uint64_t bin = 0, bout = 0, seg = 0, err = 0, fo = 0, hits = 0, lastfo = 0
    cdef uint64_t created = first.created, last = 0
    cdef size_t i
    cdef dict states = {}
    for i in range(n):
        r = g[i]
        w = word(r.state)
        states[w] = states.get(w, 0) + 1
        bin += r.rx
        bout += r.tx
        seg += r.txp
        err += r.rxp
        fo += r.extra[1]
        hits += r.extra[3]
        if r.extra[2] > lastfo:
            lastfo = r.extra[2]
        if rank(r.state) >= rank(state):
            state = r.state
            cur = r
        if r.created and (not created or r.created < created):
            created = r.created
        if r.last > last:
            last = r.last
    return (text(first.key, first.key_n), text(first.a, first.a_n),
            text(cur.b, cur.b_n) if cur != NULL else "",
            cur.extra[0] if cur != NULL else None,
            state, n, states, bin, bout, seg, err, fo, lastfo, hits, created, last)


cdef void fold_viewer(MRec **g, size_t n, Viewer *v) noexcept nogil:
    """One viewer's slots (scan order) folded: earliest start, latest activity, sums, connected
    if any slot is; and where its first slot's text_b splits.  Shared by the tuple and the
    JSON paths so both read a viewer the same way."""
    cdef MRec *first = g[0]
    cdef MRec *r
    cdef size_t i
    v.created = first.created
    v.last = v.out = v.seg = 0
    v.connected = False
    for i in range(n):
        r = g[i]
        if i and r.created and r.created < v.created:
            v.created = r.created
        v.out += r.tx
        v.seg += r.txp
        if r.state == STATE_ESTAB:
            v.connected = True
        if r.last > v.last:
            v.last = r.last
    # "<ip>\t<username>\t<user agent>"; a tab byte is never inside a UTF-8 sequence, so
    # splitting the bytes first decodes the same as splitting the text.
    v.t1 = 0
    while v.t1 < first.b_n and first.b[v.t1] != b'\t':
        v.t1 += 1
    v.t2 = v.t1 + 1 if v.t1 < first.b_n else v.t1
    while v.t2 < first.b_n and first.b[v.t2] != b'\t':
        v.t2 += 1


cdef tuple fold_client(MRec **g, size_t n):
    """One viewer's slots (scan order) -> the fields of ``LiveClient``."""
    cdef MRec *first = g[0]
    cdef Viewer v
    fold_viewer(g, n, &v)
    cdef size_t t1 = v.t1, t2 = v.t2
    user = text(first.b + t1 + 1, t2 - t1 - 1) if t1 < first.b_n else ""
    agent = text(first.b + t2 + 1, first.b_n - t2 - 1) if t2 < first.b_n else ""
    return (text(first.key, first.key_n), text(first.a, first.a_n), text(first.b, t1),
            user or None, agent, v.out, v.seg, v.created, v.last, v.connected, n)


cdef inline bint same_group(const MRec *a, const MRec *b, int mode) noexcept nogil:
    if mode == BY_KEY:
        return same_key(a, b)
    if mode == BY_OWNER:
        return same_owner(a, b)
    return same_owner(a, b) and same_key(a, b)


cdef size_t group_by(MRec **recs, size_t n, int mode, MRec **out, size_t *starts,
                     uint32_t *scratch) noexcept nogil:
    """Group ``recs`` (in scan order) by id: ``out`` holds them group by group, groups in
    order of first appearance and members in scan order; group ``g`` is
    ``out[starts[g]:starts[g + 1]]``.  One hash probe a record, no sort.  ``scratch`` holds
    ``3 * n + 2 * cap`` words, ``cap`` the power of two at least ``2 * n``.  Returns the
    number of groups."""
    cdef size_t cap = 16, i, slot, g, ng = 0
    cdef uint64_t h
    while cap < 2 * n:
        cap <<= 1
    cdef uint32_t *table = scratch              # group + 1, 0 = empty
    cdef uint32_t *gid = scratch + cap           # group of each record
    cdef uint32_t *rep = gid + n                 # first record of each group
    cdef uint32_t *fill = rep + n                # next free place of each group in ``out``
    memset(table, 0, cap * sizeof(uint32_t))
    for i in range(n):
        if mode == BY_KEY:
            h = recs[i].hk
        elif mode == BY_OWNER:
            h = recs[i].ho
        else:
            h = recs[i].ho * 0x9E3779B97F4A7C15ULL ^ recs[i].hk
        slot = (h ^ (h >> 29)) & (cap - 1)
        while True:
            g = table[slot]
            if g == 0:
                table[slot] = <uint32_t>(ng + 1)
                rep[ng] = <uint32_t>i
                starts[ng] = 0
                g = ng
                ng += 1
                break
            g -= 1
            if same_group(recs[rep[g]], recs[i], mode):
                break
            slot = (slot + 1) & (cap - 1)
        gid[i] = <uint32_t>g
        starts[g] += 1
    # Counting sort: sizes -> offsets, then place records (stable: scan order kept).
    cdef size_t total = 0, size
    for g in range(ng):
        size = starts[g]
        starts[g] = total
        fill[g] = <uint32_t>total
        total += size
    starts[ng] = total
    for i in range(n):
        g = gid[i]
        out[fill[g]] = recs[i]
        fill[g] += 1
    return ng


cdef int work_alloc(Work *w, CounterTable table) except -1:
    cdef size_t cap = 64, shard, hcap = 16
    for shard in range(table.nshards):
        cap += shard_high_water(table, shard)
    # slots opened while counting (the 64 spare) are read; any beyond, by the next read
    while hcap < 2 * cap:
        hcap <<= 1
    w.cap = cap
    w.recs = <MRec *>malloc(cap * sizeof(MRec))
    w.a = <MRec **>malloc(cap * sizeof(MRec *))
    w.b = <MRec **>malloc(cap * sizeof(MRec *))
    w.c = <MRec **>malloc(cap * sizeof(MRec *))
    w.starts = <size_t *>malloc((cap + 1) * sizeof(size_t))
    w.starts2 = <size_t *>malloc((cap + 1) * sizeof(size_t))
    w.scratch = <uint32_t *>malloc((3 * cap + hcap) * sizeof(uint32_t))
    if w.recs == NULL or w.a == NULL or w.b == NULL or w.c == NULL or w.starts == NULL \
            or w.starts2 == NULL or w.scratch == NULL:
        work_free(w)
        raise MemoryError()
    return 0


cdef void work_free(Work *w) noexcept:
    free(w.recs)
    free(w.a)
    free(w.b)
    free(w.c)
    free(w.starts)
    free(w.starts2)
    free(w.scratch)
    w.recs = NULL
    w.a = w.b = w.c = NULL
    w.starts = w.starts2 = NULL
    w.scratch = NULL


def scan_media(CounterTable table, clients_of=True):
    """Fold every media slot of ``table``.

    Returns ``(streams, connected, client_last, clients)``: a tuple of ``LiveStream`` fields
    per stream id; per owning stream id the number of distinct connected viewers (only when
    not 0) and the latest activity of any of its viewers (only when not 0); a tuple of
    ``LiveClient`` fields per viewer id in order of first appearance, for every viewer
    (``clients_of=True``), none (``False``) or the viewers of one stream id (a ``str``)."""
    if table.base == NULL:
        raise ValueError("counter table is closed")
    cdef bytes want = b""
    cdef bint filtered = clients_of is not True
    cdef bint none = clients_of is False or clients_of is None
    if filtered and not none:
        try:
            want = (<str>clients_of).encode("utf-8")
        except UnicodeEncodeError:
            none = True   # a lone surrogate is never a decoded id
    cdef const char *wp = want
    cdef size_t wn = len(want)
    cdef Work w
    cdef size_t count, ns = 0, nc = 0, nf = 0, ng, npairs, nown, i, g, k, lo, hi
    cdef MRec *r
    cdef MRec *m
    cdef list streams = []
    cdef dict connected = {}
    cdef dict client_last = {}
    cdef list clients = []
    cdef uint64_t best, nconn
    cdef bint conn_id
    work_alloc(&w, table)
    try:
        with nogil:
            count = copy_slots(table, w.recs, w.cap)
            for i in range(count):
                r = &w.recs[i]
                if r.kind == KIND_MEDIA_STREAM:
                    w.a[ns] = r
                    ns += 1
        # Streams: one group per id.
        with nogil:
            ng = group_by(w.a, ns, BY_KEY, w.b, w.starts, w.scratch)
        for g in range(ng):
            streams.append(fold_stream(w.b + w.starts[g], w.starts[g + 1] - w.starts[g]))
        # Viewers per owning stream: distinct (stream, viewer) pairs, then pairs per stream.
        with nogil:
            for i in range(count):
                r = &w.recs[i]
                if r.kind == KIND_MEDIA_CLIENT:
                    w.a[nc] = r
                    nc += 1
            npairs = group_by(w.a, nc, BY_OWNER_KEY, w.b, w.starts, w.scratch)
            # A pair's figures go on its first record: connected in ``state``, latest in ``last``.
            for g in range(npairs):
                m = w.b[w.starts[g]]
                conn_id = False
                best = 0
                for k in range(w.starts[g], w.starts[g + 1]):
                    if w.b[k].state == STATE_ESTAB:
                        conn_id = True
                    if w.b[k].last > best:
                        best = w.b[k].last
                w.c[g] = m
                m.pair_conn = conn_id
                m.pair_last = best
            nown = group_by(w.c, npairs, BY_OWNER, w.a, w.starts2, w.scratch)
        for g in range(nown):
            nconn = 0
            best = 0
            for k in range(w.starts2[g], w.starts2[g + 1]):
                nconn += w.a[k].pair_conn
                if w.a[k].pair_last > best:
                    best = w.a[k].pair_last
            if nconn or best:
                m = w.a[w.starts2[g]]
                owner = text(m.a, m.a_n)
                if nconn:
                    connected[owner] = nconn
                if best:
                    client_last[owner] = best
        if none or nc == 0:
            return streams, connected, client_last, clients
        # Viewer objects, from the same copy.
        with nogil:
            for i in range(count):
                r = &w.recs[i]
                if r.kind == KIND_MEDIA_CLIENT and (not filtered or cmp_bytes(r.own, r.own_n, wp, wn) == 0):
                    w.a[nf] = r
                    nf += 1
            ng = group_by(w.a, nf, BY_KEY, w.b, w.starts, w.scratch)
        for g in range(ng):
            clients.append(fold_client(w.b + w.starts[g], w.starts[g + 1] - w.starts[g]))
    finally:
        work_free(&w)
    return streams, connected, client_last, clients
