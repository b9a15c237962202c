"""UTF-8 stepping as CPython's decoder does it with ``errors="replace"``, shared by the
compiled views: ids in the counter slots are cut at a byte limit, so a reader must decode (or
group) them exactly as ``bytes.decode("utf-8", "replace")`` would, without the GIL."""
from libc.stdint cimport uint8_t


cdef inline bint _cont(uint8_t c) noexcept nogil:
    return 0x80 <= c <= 0xBF


cdef inline int _sequence(const uint8_t *s, size_t n, size_t need, uint8_t lo, uint8_t hi,
                          size_t *used) noexcept nogil:
    """A lead byte that wants ``need`` bytes in all, the second in ``lo..hi`` (the lead's own
    range, RFC 3629 section 4) and the rest continuation bytes: as ``utf8_step``."""
    cdef size_t i
    if n < 2 or not (lo <= s[1] <= hi):
        used[0] = 1
        return 0
    for i in range(2, need):
        if n <= i or not _cont(s[i]):
            used[0] = i
            return 0
    used[0] = need
    return 1


cdef inline int utf8_step(const uint8_t *s, size_t n, size_t *used) noexcept nogil:
    """1 and the sequence length when ``s`` starts a valid sequence; 0 and the length of the
    maximal invalid subpart (one U+FFFD each, as CPython's decoder) otherwise."""
    cdef uint8_t b0 = s[0]
    if b0 < 0x80:
        used[0] = 1
        return 1
    if 0xC2 <= b0 <= 0xDF:
        return _sequence(s, n, 2, 0x80, 0xBF, used)
    if 0xE0 <= b0 <= 0xEF:
        return _sequence(s, n, 3, 0xA0 if b0 == 0xE0 else 0x80, 0x9F if b0 == 0xED else 0xBF,
                         used)
    if 0xF0 <= b0 <= 0xF4:
        return _sequence(s, n, 4, 0x90 if b0 == 0xF0 else 0x80, 0x8F if b0 == 0xF4 else 0xBF,
                         used)
    used[0] = 1
    return 0
