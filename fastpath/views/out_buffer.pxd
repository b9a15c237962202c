"""The compiled views' output writer: response bodies written straight into a bytes object.

The buffer owns a bytes object grown in place (``_PyBytes_Resize``: an ``mremap`` for large
blocks) and handed out as it is, so a body of megabytes is never copied to be returned.  Callers
``reserve`` a record's worst-case size once (with the GIL), then write without bounds checks and
without the GIL.  Renderings match Python's byte for byte: ``json.dumps(..., ensure_ascii=False)``
strings, ``bytes.decode("utf-8", "replace")`` text, ISO 8601 / RFC 3339 times and Go durations;
they are hand-written because no library renders from C structs in shared memory.

A ``Buf`` starts zeroed (``memset``) and ends with ``take`` (the bytes) or ``release``.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, _PyBytes_Resize
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.math cimport fabs, modf, round
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

from fastpath.views.utf8_replace cimport utf8_step


cdef struct Buf:
    PyObject *obj       # the bytes object written into (NULL while empty, or for a C array)
    char *p
    size_t n
    size_t cap
    uint64_t date_key   # second + 1 of ``date`` (0 = none): neighbouring records share it
    char date[19]


cdef inline int _grow(Buf *b, size_t need) except -1:
    cdef size_t cap = b.cap * 2 if b.cap else 65536
    while cap < need:
        cap *= 2
    if b.obj == NULL:
        fresh = PyBytes_FromStringAndSize(NULL, cap)
        Py_INCREF(fresh)
        b.obj = <PyObject *>fresh
    else:
        _PyBytes_Resize(&b.obj, cap)   # on failure: raises, the object is freed, obj = NULL
    b.p = PyBytes_AS_STRING(<object>b.obj)
    b.cap = cap
    return 0


cdef inline int reserve(Buf *b, size_t extra) except -1:
    """Room for ``extra`` more bytes."""
    if b.n + extra <= b.cap:
        return 0
    return _grow(b, b.n + extra)


cdef inline bytes take(Buf *b):
    """The written bytes, as the buffer's own object (trimmed); the buffer is left empty."""
    if b.obj == NULL:
        return b""
    _PyBytes_Resize(&b.obj, b.n)
    cdef bytes out = <bytes>b.obj
    Py_DECREF(out)
    b.obj = NULL
    b.p = NULL
    b.n = b.cap = 0
    return out


cdef inline void release(Buf *b) noexcept:
    if b.obj != NULL:
        Py_DECREF(<object>b.obj)
    b.obj = NULL
    b.p = NULL
    b.n = b.cap = 0


# -- bytes and numbers --------------------------------------------------------------------------

cdef inline void put(Buf *b, const char *s, size_t n) noexcept nogil:
    memcpy(b.p + b.n, s, n)
    b.n += n


cdef inline void put_c(Buf *b, char c) noexcept nogil:
    b.p[b.n] = c
    b.n += 1


cdef inline void put_pad(Buf *b, int n) noexcept nogil:
    while n > 0:
        put_c(b, 32)
        n -= 1


cdef inline void put_u64(Buf *b, uint64_t v) noexcept nogil:
    cdef char tmp[24]
    cdef int i = 24
    while True:
        i -= 1
        tmp[i] = <char>(48 + v % 10)
        v //= 10
        if v == 0:
            break
    put(b, &tmp[i], 24 - i)


cdef inline void put_digits(Buf *b, uint64_t v, int width) noexcept nogil:
    """``v`` zero-padded to exactly ``width`` digits."""
    cdef int i
    for i in range(width - 1, -1, -1):
        b.p[b.n + i] = <char>(48 + v % 10)
        v //= 10
    b.n += width


cdef inline void put_frac(Buf *b, uint64_t frac, int digits, bint trim) noexcept nogil:
    """``.`` and ``frac`` zero-padded to ``digits``, trailing zeros trimmed if ``trim`` (nothing
    at all if that leaves none)."""
    cdef char tmp[20]
    cdef int i, end = digits
    for i in range(digits - 1, -1, -1):
        tmp[i] = <char>(48 + frac % 10)
        frac //= 10
    if trim:
        while end > 0 and tmp[end - 1] == 48:
            end -= 1
    if end:
        put_c(b, 46)
        put(b, tmp, end)


# -- text ---------------------------------------------------------------------------------------

cdef inline void put_json_text(Buf *b, const char *src, size_t n) noexcept nogil:
    """A JSON string of the replace-decoding of ``src``, as ``json.dumps(text,
    ensure_ascii=False)``; reserve 6 * n + 2."""
    cdef const uint8_t *s = <const uint8_t *>src
    cdef size_t i = 0, k
    cdef uint8_t c
    put_c(b, 34)
    while i < n:
        c = s[i]
        if c >= 0x80:
            if utf8_step(s + i, n - i, &k):
                put(b, src + i, k)
            else:
                put(b, b"\xef\xbf\xbd", 3)
            i += k
            continue
        i += 1
        if c == 34:
            put(b, b'\\"', 2)
        elif c == 92:
            put(b, b"\\\\", 2)
        elif c >= 0x20:
            put_c(b, <char>c)
        elif c == 10:
            put(b, b"\\n", 2)
        elif c == 13:
            put(b, b"\\r", 2)
        elif c == 9:
            put(b, b"\\t", 2)
        elif c == 8:
            put(b, b"\\b", 2)
        elif c == 12:
            put(b, b"\\f", 2)
        else:   # c < 0x20: \u00 and two lower-case hex digits
            put(b, b"\\u00", 4)
            put_c(b, <char>(48 + (c >> 4)))
            put_c(b, <char>(48 + (c & 15) if (c & 15) < 10 else 87 + (c & 15)))
    put_c(b, 34)


cdef inline size_t put_text(Buf *b, const char *src, size_t n) noexcept nogil:
    """Text as decoded with errors="replace"; returns its length in code points.  Reserve 3 * n."""
    cdef const uint8_t *s = <const uint8_t *>src
    cdef size_t i = 0, k, points = 0
    while i < n:
        if s[i] < 0x80:
            put_c(b, src[i])
            k = 1
        elif utf8_step(s + i, n - i, &k):
            put(b, src + i, k)
        else:
            put(b, b"\xef\xbf\xbd", 3)
        i += k
        points += 1
    return points


# -- times --------------------------------------------------------------------------------------

cdef inline void civil(int64_t days, int64_t *y, int *m, int *d) noexcept nogil:
    """Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm)."""
    cdef int64_t z = days + 719468
    cdef int64_t era = (z if z >= 0 else z - 146096) // 146097
    cdef int64_t doe = z - era * 146097
    cdef int64_t yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    cdef int64_t doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    cdef int64_t mp = (5 * doy + 2) // 153
    d[0] = <int>(doy - (153 * mp + 2) // 5 + 1)
    m[0] = <int>(mp + 3 if mp < 10 else mp - 9)
    y[0] = yoe + era * 400 + (1 if m[0] <= 2 else 0)


cdef inline void put_date_time(Buf *b, uint64_t seconds) noexcept nogil:
    """``YYYY-MM-DDTHH:MM:SS`` in UTC; the last second rendered is kept in the buffer."""
    cdef int64_t y
    cdef int m, d
    cdef uint64_t sod = seconds % 86400
    cdef Buf c
    if seconds + 1 != b.date_key:
        c.p = b.date
        c.n = 0
        civil(<int64_t>(seconds // 86400), &y, &m, &d)
        put_digits(&c, <uint64_t>y, 4)
        put_c(&c, 45)
        put_digits(&c, m, 2)
        put_c(&c, 45)
        put_digits(&c, d, 2)
        put_c(&c, 84)
        put_digits(&c, sod // 3600, 2)
        put_c(&c, 58)
        put_digits(&c, sod // 60 % 60, 2)
        put_c(&c, 58)
        put_digits(&c, sod % 60, 2)
        b.date_key = seconds + 1
    put(b, b.date, 19)


cdef inline void put_rfc3339_nano(Buf *b, uint64_t ns) noexcept nogil:
    """Go's ``time.RFC3339Nano`` in UTC (trailing zeros of the fraction trimmed)."""
    put_date_time(b, ns // 1000000000)
    put_frac(b, ns % 1000000000, 9, True)
    put_c(b, 90)


cdef inline double round_half_even(double x) noexcept nogil:
    cdef double r = round(x)
    if fabs(x - r) == 0.5:
        r = 2.0 * round(x / 2.0)
    return r


cdef inline void put_iso_us(Buf *b, uint64_t ns) noexcept nogil:
    """``datetime.fromtimestamp(ns / 1e9, utc).isoformat()`` with ``Z``: the float seconds
    rounded half-even to microseconds, exactly as CPython does."""
    cdef double intpart
    cdef double d = <double>ns / 1e9
    cdef double fp = modf(d, &intpart) * 1e6
    fp = round_half_even(fp)
    if fp >= 1e6:
        fp -= 1e6
        intpart += 1.0
    put_date_time(b, <uint64_t>intpart)
    if <uint64_t>fp:
        put_frac(b, <uint64_t>fp, 6, False)
    put_c(b, 90)


cdef inline void put_duration(Buf *b, uint64_t ns) noexcept nogil:
    """Go's ``time.Duration.String()`` of a non-negative duration."""
    cdef uint64_t h, m, rem
    if ns == 0:
        put(b, b"0s", 2)
        return
    if ns < 1000000000:
        if ns >= 1000000:
            put_u64(b, ns // 1000000)
            put_frac(b, ns % 1000000, 6, True)
            put(b, b"ms", 2)
        elif ns >= 1000:
            put_u64(b, ns // 1000)
            put_frac(b, ns % 1000, 3, True)
            put(b, b"\xc2\xb5s", 3)
        else:
            put_u64(b, ns)
            put(b, b"ns", 2)
        return
    h = ns // 3600000000000ULL
    rem = ns % 3600000000000ULL
    m = rem // 60000000000ULL
    rem = rem % 60000000000ULL
    if h:
        put_u64(b, h)
        put_c(b, 104)
    if h or m:
        put_u64(b, m)
        put_c(b, 109)
    put_u64(b, rem // 1000000000)
    put_frac(b, rem % 1000000000, 9, True)
    put_c(b, 115)
