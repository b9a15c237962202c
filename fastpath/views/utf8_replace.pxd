"""UTF-8 stepping as CPython's decoder does it with ``errors="replace"``, shared by the
compiled views: ids in the counter slots are cut at a byte limit, so a reader must decode (or
group) them exactly as ``bytes.decode("utf-8", "replace")`` would, without the GIL."""
from libc.stdint cimport uint8_t


cdef inline bint _cont(uint8_t c) noexcept nogil:
    return 0x80 <= c <= 0xBF


cdef inline int utf8_step(const uint8_t *s, size_t n, size_t *used) noexcept nogil:
    """1 and the sequence length when ``s`` starts a valid sequence; 0 and the length of the
    maximal invalid subpart (one U+FFFD each, as CPython's decoder) otherwise."""
    cdef uint8_t b0 = s[0]
    cdef uint8_t lo = 0x80, hi = 0xBF
    if b0 < 0x80:
        used[0] = 1
        return 1
    if 0xC2 <= b0 <= 0xDF:
        if n >= 2 and _cont(s[1]):
            used[0] = 2
            return 1
        used[0] = 1
        return 0
    if 0xE0 <= b0 <= 0xEF:
        if b0 == 0xE0:
            lo = 0xA0
        elif b0 == 0xED:
            hi = 0x9F
        if n < 2 or not (lo <= s[1] <= hi):
            used[0] = 1
            return 0
        if n < 3 or not _cont(s[2]):
            used[0] = 2
            return 0
        used[0] = 3
        return 1
    if 0xF0 <= b0 <= 0xF4:
        if b0 == 0xF0:
            lo = 0x90
        elif b0 == 0xF4:
            hi = 0x8F
        if n < 2 or not (lo <= s[1] <= hi):
            used[0] = 1
            return 0
        if n < 3 or not _cont(s[2]):
            used[0] = 2
            return 0
        if n < 4 or not _cont(s[3]):
            used[0] = 3
            return 0
        used[0] = 4
        return 1
    used[0] = 1
    return 0
