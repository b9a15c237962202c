"""Congestion controllers and the pacer of fastpath's compiled loss recovery, in C.

Why compiled: aioquic calls its Python controller and pacer once per packet sent and per packet
acknowledged (issue 12, lever 3); here recovery (``fastpath.hy2.quic.quic_recovery``) calls C methods
with plain numbers, and no Python object is touched per packet.

One small seam (``quic_cc.pxd``): recovery reports bytes sent, acknowledged (with the packet's
send time), lost (a batch: total bytes, count, the send time of the newest lost packet) and
expired, persistent congestion and RTT samples; the controller keeps ``congestion_window`` and
``bytes_in_flight`` and gives the pacer its rate.  Three controllers behind it:

- ``reno``: NewReno as RFC 9002 section 7 and appendix B describe it (slow start, halving once
  per recovery period, one datagram per window in congestion avoidance); aioquic's default.
  Slow start ends early when the RTT rises (HyStart++'s delay-increase test, RFC 9406 section
  4.2, without its conservative phase), as aioquic's slow start does with its own RTT monitor:
  without it a window keeps doubling into a slow receiver's queue until packets drop.
- ``cubic``: CUBIC as RFC 9438 describes it (beta 0.7, C 0.4, fast convergence, the
  Reno-friendly estimate), with the same slow start and recovery periods.
- ``brutal``: Hysteria 2's fixed-rate controller (``/work/shared/spec/hysteria2.md``): pacing
  rate bps / ackRate, window bps x smoothed RTT x 2 / ackRate (at least one datagram, 10240
  bytes before an RTT sample), ackRate = acknowledged / (acknowledged + lost) packets over the
  last five one-second slots, floored at 0.8, and 1 with fewer than 50 samples.  No slow start,
  no back-off.

The pacer is a token bucket measured in time, as aioquic's: the bucket holds up to a burst's
worth of send time and each packet costs ``max_datagram_size / rate``.  Written by hand because
the controllers have to sit inside the compiled recovery; no library offers them for it.
"""
import os

from libc.math cimport cbrt

cdef double K_MICRO_SECOND = 0.000001
cdef double K_SECOND = 1.0
cdef int K_INITIAL_WINDOW = 10          # datagrams (RFC 9002 section 7.2)
cdef int K_MINIMUM_WINDOW = 2
cdef double K_LOSS_REDUCTION = 0.5      # NewReno
cdef double CUBIC_C = 0.4               # RFC 9438 section 4.1
cdef double CUBIC_BETA = 0.7
cdef double CUBIC_ALPHA = 3.0 * (1.0 - 0.7) / (1.0 + 0.7)
cdef int BRUTAL_MIN_SAMPLES = 50
# A pacer burst (what one wake-up of the event loop may send at once) is a quarter of the
# window, at most 16 packets or what the rate carries in PACER_BURST_SECONDS if that is more,
# and never more than PACER_BURST_PACKETS (the most one GSO send carries).  The time-based part
# is Linux TCP's TSO autosizing (about 1 ms of data per burst): a slow path keeps bursts of at
# most 16 packets, a fast one (loopback, a LAN) gets fewer, larger ones -- at 16 packets a
# 100 MB/s download woke the loop 6 000 times a second and spent a third of its CPU there.
cdef double PACER_BURST_SECONDS = 0.001
cdef int PACER_BURST_FLOOR = 16
cdef int PACER_BURST_PACKETS = int(os.environ.get("FASTPATH_QUIC_PACER_BURST", "64"))
cdef double BRUTAL_MIN_ACK_RATE = 0.8
cdef int64_t BRUTAL_INITIAL_WINDOW = 10240

NAMES = {"reno": CC_RENO, "cubic": CC_CUBIC, "brutal": CC_BRUTAL}
INITIAL_WINDOW_BRUTAL = BRUTAL_INITIAL_WINDOW


cdef class Pacer:
    """Token bucket in seconds: ``next_send_time`` says when the next packet may go (None:
    now), ``update_after_send`` spends one packet's time.  The interface aioquic's connection
    calls on ``recovery._pacer``."""

    def __init__(self, *, max_datagram_size):
        self._mds = max_datagram_size
        self.bucket_max = 0.0
        self.bucket_time = 0.0
        self.evaluation_time = 0.0
        self._packet_time = -1.0

    @property
    def packet_time(self):
        return None if self._packet_time < 0 else self._packet_time

    cdef void set_rate(self, double rate, int64_t burst_window):
        cdef double burst, cap
        if rate <= 0:
            return
        self._packet_time = self._mds / rate
        if self._packet_time < K_MICRO_SECOND:
            self._packet_time = K_MICRO_SECOND
        elif self._packet_time > K_SECOND:
            self._packet_time = K_SECOND
        cap = rate * PACER_BURST_SECONDS
        if cap < PACER_BURST_FLOOR * self._mds:
            cap = PACER_BURST_FLOOR * self._mds
        if cap > PACER_BURST_PACKETS * self._mds:
            cap = PACER_BURST_PACKETS * self._mds
        burst = burst_window // 4
        if burst > cap:
            burst = cap
        if burst < 2 * self._mds:
            burst = 2 * self._mds
        # The bucket holds burst / mds packets of packet_time each.  That is burst / rate unless
        # packet_time was raised to its 1 us floor: above mds bytes per microsecond (a window
        # of a few MB at a loopback RTT) burst / rate is shorter than one packet's time, the
        # bucket never holds a whole packet, and every wake-up of the event loop sent one
        # packet -- a server in that state spent 25-30 s of CPU per GiB, 1.1 datagrams per
        # send, one timer per packet (issue 12's "slow mode").
        self.bucket_max = burst / rate
        if burst / self._mds * self._packet_time > self.bucket_max:
            self.bucket_max = burst / self._mds * self._packet_time
        if self.bucket_time > self.bucket_max:
            self.bucket_time = self.bucket_max

    def set_pacing(self, double rate, int64_t burst_window):
        """``set_rate`` from Python: ``rate`` bytes/s, ``burst_window`` the congestion window
        the burst is a quarter of (tests)."""
        self.set_rate(rate, burst_window)

    cdef void _update_bucket(self, double now):
        if now > self.evaluation_time:
            self.bucket_time += now - self.evaluation_time
            if self.bucket_time > self.bucket_max:
                self.bucket_time = self.bucket_max
            self.evaluation_time = now

    cpdef object next_send_time(self, double now):
        if self._packet_time >= 0:
            self._update_bucket(now)
            if self.bucket_time <= 0:
                return now + self._packet_time
        return None

    cpdef void update_after_send(self, double now):
        if self._packet_time >= 0:
            self._update_bucket(now)
            if self.bucket_time < self._packet_time:
                self.bucket_time = 0.0
            else:
                self.bucket_time -= self._packet_time


cdef class Controller:
    """One connection's congestion controller (``mode``: CC_RENO, CC_CUBIC or CC_BRUTAL)."""

    def __init__(self, *, max_datagram_size, algorithm="reno", bps=0):
        if algorithm not in NAMES:
            raise ValueError(f"unknown congestion control algorithm {algorithm!r}")
        self._mds = max_datagram_size
        self.bytes_in_flight = 0
        self._reset(NAMES[algorithm], bps)

    cdef void _reset(self, int mode, int64_t bps):
        cdef int i
        self.mode = mode
        self.congestion_window = K_INITIAL_WINDOW * self._mds
        self._ssthresh = -1
        self._recovery_start = 0.0
        self._ca_acked = 0
        self._epoch_start = -1.0
        self._w_max = 0.0
        self._last_w_max = 0.0
        self._k = 0.0
        self._w_origin = 0.0
        self._w_est = 0.0
        self._hs_round_min = 1e9
        self._hs_last_min = 1e9
        self._hs_round_end = -1.0
        self._hs_samples = 0
        self.bps = bps if bps > 0 else 1
        for i in range(BRUTAL_SLOTS):
            self._slot_second[i] = -1
            self._slot_acked[i] = 0
            self._slot_lost[i] = 0
        if mode == CC_BRUTAL:
            self.congestion_window = BRUTAL_INITIAL_WINDOW

    def switch(self, algorithm, int64_t bps=0, double now=0.0, double srtt=0.0):
        """Change the algorithm of a live connection; bytes in flight carry over."""
        self._reset(NAMES[algorithm], bps)
        if self.mode == CC_BRUTAL:
            self._brutal_window(now, srtt)

    @property
    def algorithm(self):
        return ("reno", "cubic", "brutal")[self.mode]

    @property
    def ssthresh(self):
        return None if self._ssthresh < 0 else self._ssthresh

    def get_log_data(self):
        data = {"cwnd": self.congestion_window, "bytes_in_flight": self.bytes_in_flight}
        if self._ssthresh >= 0:
            data["ssthresh"] = self._ssthresh
        if self.mode == CC_BRUTAL:
            data["bps"] = self.bps
        return data

    # -- Brutal's loss compensation -----------------------------------------------------------
    cdef int _slot(self, double now):
        cdef int64_t second = <int64_t>now
        cdef int i = <int>(second % BRUTAL_SLOTS)
        if self._slot_second[i] != second:
            self._slot_second[i] = second
            self._slot_acked[i] = 0
            self._slot_lost[i] = 0
        return i

    cdef double c_ack_rate(self, double now):
        cdef int64_t second = <int64_t>now, acked = 0, lost = 0
        cdef int i
        for i in range(BRUTAL_SLOTS):
            if second - self._slot_second[i] < BRUTAL_SLOTS:
                acked += self._slot_acked[i]
                lost += self._slot_lost[i]
        if acked + lost < BRUTAL_MIN_SAMPLES:
            return 1.0
        cdef double rate = <double>acked / <double>(acked + lost)
        return rate if rate > BRUTAL_MIN_ACK_RATE else BRUTAL_MIN_ACK_RATE

    def ack_rate(self, double now):
        return self.c_ack_rate(now)

    def pacing_rate(self, double now, double srtt=0.0):
        return self.rate(now, srtt)

    cdef void _brutal_window(self, double now, double srtt):
        cdef int64_t window
        if srtt <= 0:
            self.congestion_window = BRUTAL_INITIAL_WINDOW
            return
        window = <int64_t>(<double>self.bps * srtt * 2.0 / self.c_ack_rate(now))
        self.congestion_window = window if window > self._mds else self._mds

    # -- the seam recovery calls --------------------------------------------------------------
    cdef void on_sent(self, int64_t sent_bytes):
        self.bytes_in_flight += sent_bytes

    cdef void on_expired(self, int64_t sent_bytes):
        self.bytes_in_flight -= sent_bytes

    cdef void on_acked(self, int64_t sent_bytes, double sent_time, double now, double srtt):
        cdef double t, target, cwnd
        self.bytes_in_flight -= sent_bytes
        if self.mode == CC_BRUTAL:
            self._slot_acked[self._slot(now)] += 1
            return
        # No growth for packets sent before the current recovery period began (RFC 9002 7.3.2).
        if sent_time <= self._recovery_start:
            return
        if self._ssthresh < 0 or self.congestion_window < self._ssthresh:
            self.congestion_window += sent_bytes              # slow start
            return
        if self.mode == CC_RENO:
            self._ca_acked += sent_bytes
            if self._ca_acked >= self.congestion_window:
                self._ca_acked -= self.congestion_window
                self.congestion_window += self._mds
            return
        # CUBIC congestion avoidance (RFC 9438 section 4.2 to 4.4), in bytes.
        cwnd = <double>self.congestion_window
        if self._epoch_start < 0:
            self._epoch_start = now
            self._w_est = cwnd
            if cwnd < self._w_max:
                self._k = cbrt((self._w_max - cwnd) / self._mds / CUBIC_C)
                self._w_origin = self._w_max
            else:
                self._k = 0.0
                self._w_origin = cwnd
        t = now - self._epoch_start + srtt - self._k
        target = self._w_origin + CUBIC_C * t * t * t * self._mds
        if target < cwnd:
            target = cwnd
        elif target > 1.5 * cwnd:
            target = 1.5 * cwnd
        self._w_est += CUBIC_ALPHA * self._mds * sent_bytes / cwnd
        if target < self._w_est:
            cwnd = self._w_est                                # the Reno-friendly region
        else:
            cwnd += (target - cwnd) * sent_bytes / cwnd
        if <int64_t>cwnd > self.congestion_window:
            self.congestion_window = <int64_t>cwnd

    cdef void on_lost(self, int64_t lost_bytes, int64_t count, double largest_sent_time,
                      double now, double srtt):
        cdef int64_t floor = K_MINIMUM_WINDOW * self._mds
        cdef double cwnd
        self.bytes_in_flight -= lost_bytes
        if self.mode == CC_BRUTAL:
            self._slot_lost[self._slot(now)] += count
            self._brutal_window(now, srtt)
            return
        # One reduction per recovery period (RFC 9002 section 7.3.2).
        if largest_sent_time <= self._recovery_start:
            return
        self._recovery_start = now
        if self.mode == CC_RENO:
            self.congestion_window = <int64_t>(self.congestion_window * K_LOSS_REDUCTION)
            self._ca_acked = 0
        else:
            cwnd = <double>self.congestion_window
            # fast convergence (RFC 9438 section 4.7)
            if cwnd < self._last_w_max:
                self._w_max = cwnd * (1.0 + CUBIC_BETA) / 2.0
            else:
                self._w_max = cwnd
            self._last_w_max = cwnd
            self.congestion_window = <int64_t>(cwnd * CUBIC_BETA)
            self._epoch_start = -1.0
        if self.congestion_window < floor:
            self.congestion_window = floor
        self._ssthresh = self.congestion_window

    cdef void on_persistent_congestion(self):
        if self.mode == CC_BRUTAL:
            return                                            # Brutal does not back off
        self.congestion_window = K_MINIMUM_WINDOW * self._mds
        self._recovery_start = 0.0
        self._epoch_start = -1.0
        self._ca_acked = 0

    cdef void on_rtt(self, double now, double latest_rtt, double srtt):
        cdef double eta
        if self.mode == CC_BRUTAL:
            self._brutal_window(now, srtt)
            return
        if self._ssthresh >= 0 and self.congestion_window >= self._ssthresh:
            return                                            # not in slow start
        # HyStart++ delay increase (RFC 9406 section 4.2), rounds of one smoothed RTT
        if now >= self._hs_round_end:
            self._hs_last_min = self._hs_round_min
            self._hs_round_min = 1e9
            self._hs_samples = 0
            self._hs_round_end = now + srtt
        if latest_rtt < self._hs_round_min:
            self._hs_round_min = latest_rtt
        self._hs_samples += 1
        if self._hs_samples >= 8 and self._hs_last_min < 1e9:
            eta = self._hs_last_min / 8
            if eta < 0.004:
                eta = 0.004
            elif eta > 0.016:
                eta = 0.016
            if self._hs_round_min >= self._hs_last_min + eta:
                self._ssthresh = self.congestion_window       # leave slow start

    cdef double rate(self, double now, double srtt):
        """Bytes per second the pacer should allow."""
        if self.mode == CC_BRUTAL:
            return <double>self.bps / self.c_ack_rate(now)
        return <double>self.congestion_window / (srtt if srtt > K_MICRO_SECOND else K_MICRO_SECOND)

    cdef void update_pacer(self, Pacer pacer, double now, double srtt):
        cdef int64_t window = self.congestion_window
        if self.mode == CC_BRUTAL and window < BRUTAL_INITIAL_WINDOW:
            window = BRUTAL_INITIAL_WINDOW
        pacer.set_rate(self.rate(now, srtt), window)

    # -- for tests and tools: the seam from Python ----------------------------------------------
    def report_sent(self, int64_t sent_bytes):
        self.on_sent(sent_bytes)

    def report_acked(self, int64_t sent_bytes, double sent_time, double now, double srtt=0.0):
        self.on_acked(sent_bytes, sent_time, now, srtt)

    def report_lost(self, int64_t lost_bytes, int64_t count, double largest_sent_time,
                    double now, double srtt=0.0):
        self.on_lost(lost_bytes, count, largest_sent_time, now, srtt)

    def report_rtt(self, double now, double srtt, latest_rtt=None):
        self.on_rtt(now, srtt if latest_rtt is None else latest_rtt, srtt)

    def report_persistent_congestion(self):
        self.on_persistent_congestion()
