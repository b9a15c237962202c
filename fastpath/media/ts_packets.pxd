# C-level interface of MPEG-TS packet scanning, for the fan-out and other Cython modules.

cdef enum:
    TS_PACKET = 188
    TS_SYNC = 0x47

# Chunk flags: what a chunk of the fan-out ring starts with.
cdef enum:
    CHUNK_PAT = 1           # a Program Association Table packet (a demuxer can start here)
    CHUNK_KEY = 2           # a packet flagged random-access (a keyframe starts here)
    CHUNK_SWITCH = 4        # first chunk after the upstream changed (failover, reconnect)

cdef Py_ssize_t c_find_sync(const unsigned char *p, Py_ssize_t n, Py_ssize_t start,
                            int confirm) noexcept nogil
cdef int c_packet_flags(const unsigned char *pkt) noexcept nogil
