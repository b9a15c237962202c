# cython: language_level=3
"""Compiled renderer of the stream proxy face: the viewers' JSON, written straight into
bytes from the records ``media_scan`` copies and folds (declared in ``media_scan.pxd``).
"""
from libc.stdint cimport uint64_t
from libc.string cimport memset

from fastpath.shm.counter_table cimport KIND_MEDIA_CLIENT, CounterTable
from fastpath.views.out_buffer cimport (
    Buf, put, put_c, put_date_time, put_digits, put_json_text, put_u64, release, reserve, take)
from fastpath.views.media_scan cimport (
    BY_KEY, MRec, Viewer, Work, copy_slots, fold_viewer, group_by, work_alloc, work_free)


# -- viewer objects as JSON, for /stats and /clients --------------------------------------------
# ``client_view`` dicts through ``json.dumps`` cost ~40 ms for 10k viewers; the same bytes are
# written here straight from the folded slots.  Output is what ``json.dumps(...,
# ensure_ascii=False)`` gives for ``views.client_view`` (tests compare them), written with the
# views' one output writer (``out_buffer.pxd``).

cdef void put_iso(Buf *b, uint64_t ns) noexcept nogil:
    """``views.ns_iso``: ``"YYYY-MM-DDTHH:MM:SS.uuuuuu+00:00"`` (microseconds cut, not rounded),
    ``null`` for 0."""
    if ns == 0:
        put(b, b"null", 4)
        return
    put_c(b, 34)
    put_date_time(b, ns // 1000000000)
    put_c(b, 46)
    put_digits(b, (ns % 1000000000) // 1000, 6)
    put(b, b'+00:00"', 7)


cdef bint render_client(Buf *b, MRec **g, size_t n) noexcept nogil:
    """One ``client_view`` object (``b`` has room, see ``render_clients``); its is_connected."""
    cdef MRec *first = g[0]
    cdef Viewer v
    fold_viewer(g, n, &v)
    cdef size_t t1 = v.t1, t2 = v.t2
    put(b, b'{"client_id": ', 14)
    put_json_text(b, first.key, first.key_n)
    put(b, b', "stream_id": ', 15)
    put_json_text(b, first.a, first.a_n)
    put(b, b', "user_agent": ', 16)
    if t2 < first.b_n:
        put_json_text(b, first.b + t2 + 1, first.b_n - t2 - 1)
    else:
        put(b, b'""', 2)
    put(b, b', "ip_address": ', 16)
    put_json_text(b, first.b, t1)
    put(b, b', "username": ', 14)
    if t1 < first.b_n and t2 > t1 + 1:
        put_json_text(b, first.b + t1 + 1, t2 - t1 - 1)
    else:
        put(b, b"null", 4)
    put(b, b', "bytes_served": ', 18)
    put_u64(b, v.out)
    put(b, b', "segments_served": ', 21)
    put_u64(b, v.seg)
    put(b, b', "created_at": ', 16)
    put_iso(b, v.created)
    put(b, b', "last_access": ', 17)
    put_iso(b, v.last if v.last else v.created)
    if v.connected:
        put(b, b', "is_connected": true}', 23)
    else:
        put(b, b', "is_connected": false}', 24)
    return v.connected


def render_clients(CounterTable table):
    """Every viewer as the JSON array ``[client_view, ...]`` (the order of ``scan_media``):
    ``(bytes, viewers, connected viewers)``."""
    if table.base == NULL:
        raise ValueError("counter table is closed")
    cdef Work w
    cdef Buf b
    memset(&b, 0, sizeof(Buf))
    cdef size_t count, nf = 0, ng = 0, i, active = 0
    cdef size_t most = 2 + 2 * 220 + 6 * (63 + 63 + 127) + 2 * 20 + 2 * 40  # one object, worst case
    work_alloc(&w, table)
    try:
        with nogil:
            count = copy_slots(table, w.recs, w.cap)
            for i in range(count):
                if w.recs[i].kind == KIND_MEDIA_CLIENT:
                    w.a[nf] = &w.recs[i]
                    nf += 1
            ng = group_by(w.a, nf, BY_KEY, w.b, w.starts, w.scratch)
        reserve(&b, 2 + ng * most)
        with nogil:
            put_c(&b, 91)
            for i in range(ng):
                if i:
                    put(&b, b", ", 2)
                active += render_client(&b, w.b + w.starts[i], w.starts[i + 1] - w.starts[i])
            put_c(&b, 93)
        return take(&b), ng, active
    finally:
        work_free(&w)
        release(&b)
