# The seam between fastpath's compiled loss recovery (quic_recovery.pyx) and its congestion
# controllers: recovery reports bytes sent, acknowledged, lost and expired, and RTT samples;
# the controller keeps the window and tells the pacer its rate.
from libc.stdint cimport int64_t


cdef enum:
    CC_RENO = 0
    CC_CUBIC = 1
    CC_BRUTAL = 2
    BRUTAL_SLOTS = 5


cdef class Pacer:
    cdef int64_t _mds
    cdef public double bucket_max, bucket_time, evaluation_time
    cdef double _packet_time          # < 0: no rate known yet (no pacing)
    cdef void set_rate(self, double rate, int64_t burst_window)
    cdef void _update_bucket(self, double now)
    cpdef object next_send_time(self, double now)
    cpdef void update_after_send(self, double now)


cdef class Controller:
    cdef readonly int mode
    cdef int64_t _mds
    cdef public int64_t congestion_window
    cdef public int64_t bytes_in_flight
    cdef int64_t _ssthresh            # < 0: none yet (slow start)
    cdef double _recovery_start
    # NewReno: bytes acknowledged in congestion avoidance since the window last grew
    cdef int64_t _ca_acked
    # CUBIC (RFC 9438): epoch start (< 0: none), W_max, K, the window at the epoch start and
    # the Reno-friendly estimate, all in bytes / seconds
    cdef double _epoch_start, _w_max, _last_w_max, _k, _w_origin, _w_est
    # HyStart++ (RFC 9406) delay increase: the minimum RTT of this round and the last, the
    # samples this round, and when the round ends (one smoothed RTT after it began)
    cdef double _hs_round_min, _hs_last_min, _hs_round_end
    cdef int _hs_samples
    # Brutal: target bytes/s, and acknowledged / lost packet counts per one-second slot
    cdef public int64_t bps
    cdef int64_t _slot_second[BRUTAL_SLOTS]
    cdef int64_t _slot_acked[BRUTAL_SLOTS]
    cdef int64_t _slot_lost[BRUTAL_SLOTS]

    cdef void _reset(self, int mode, int64_t bps)
    cdef int _slot(self, double now)
    cdef void _brutal_window(self, double now, double srtt)
    cdef void on_sent(self, int64_t sent_bytes)
    cdef void on_acked(self, int64_t sent_bytes, double sent_time, double now, double srtt)
    cdef void on_expired(self, int64_t sent_bytes)
    cdef void on_lost(self, int64_t lost_bytes, int64_t count, double largest_sent_time,
                      double now, double srtt)
    cdef void on_persistent_congestion(self)
    cdef void on_rtt(self, double now, double latest_rtt, double srtt)
    cdef double c_ack_rate(self, double now)
    cdef double rate(self, double now, double srtt)
    cdef void update_pacer(self, Pacer pacer, double now, double srtt)
