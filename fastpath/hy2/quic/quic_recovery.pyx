"""Compiled QUIC loss recovery (RFC 9002) with aioquic's ``QuicPacketRecovery`` interface, and
an ACK frame parser that feeds it straight from the packet's memory.

Why: in a Hysteria 2 download the worker receives an ACK every few packets, and aioquic
handles each in Python: ``pull_ack_frame`` builds a ``RangeSet``, ``on_ack_received`` copies the
whole sent-packet dict's keys into a list per ACK and bisects it, calls the Python congestion
controller and pacer per packet, and scans for losses (issue 12 profile: about a sixth of the
worker).  Here sent packets live in a C array per packet-number space, sorted by packet number
(packets are sent in order), so an ACK range is found by binary search and each acknowledged
packet costs a few C operations plus its delivery handlers (aioquic's Python objects: stream
senders, ACK-of-ACK, which stay aioquic's).  Congestion control and pacing are C too
(``fastpath.hy2.quic.quic_cc``).

The interface is the one aioquic's connection calls (``on_packet_sent``, ``on_ack_received``
with a ``RangeSet``, ``get_loss_detection_time``, ``on_loss_detection_timeout``,
``reschedule_data``, ``discard_space``, ``get_probe_timeout``, ``bytes_in_flight``,
``congestion_window``, ``spaces``, ``_pacer``), so the compiled send path of another module can
register packets through it unchanged.  Behaviour follows RFC 9002 as aioquic applies it:
packet and time thresholds (3 packets, 9/8 RTT), RTT estimation with the ACK delay capped at
max_ack_delay, the PTO with exponential backoff (application data arms it only once the
handshake is confirmed), persistent congestion over 3 PTOs of ack-eliciting packets with no
acknowledged packet between them, and a PTO that retransmits CRYPTO data or the oldest
ack-eliciting packet without a congestion event.  ``tests/hy2/test_quic_recovery.py`` drives
this and aioquic's recovery with the same packets and ACKs and compares every delivery.

Written by hand from the RFC because the state has to be in C to be cheap; aioquic keeps the
packet-number spaces' receive side, the handshake and qlog (a connection with a qlog trace gets
aioquic's own recovery, see ``fastpath.hy2.quic.aioquic_seam``).
"""
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from libc.stdint cimport uint8_t, uint64_t, int64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memmove

from fastpath.hy2.quic.quic_cc cimport Controller, Pacer, CC_BRUTAL
from fastpath.hy2.quic.quic_builder cimport SentPacket
from fastpath.hy2.quic.stream_send cimport StreamSendBuffer
from fastpath.hy2.quic.packet_protection cimport read_varint as _varint

from aioquic.buffer import BufferReadError
from aioquic.quic.packet_builder import QuicDeliveryState

cdef object _ACKED = QuicDeliveryState.ACKED
cdef object _LOST = QuicDeliveryState.LOST

cdef int K_PACKET_THRESHOLD = 3
cdef double K_TIME_THRESHOLD = 9.0 / 8.0
cdef double K_GRANULARITY = 0.001
cdef int K_PERSISTENT_CONGESTION_THRESHOLD = 3

cdef enum:
    F_LIVE = 1
    F_IN_FLIGHT = 2
    F_ACK_ELICITING = 4
    F_CRYPTO = 8


cdef struct Sent:
    int64_t pn
    double sent_time
    int64_t sent_bytes
    int flags
    PyObject *packet            # a strong reference to the sent-packet record while LIVE


cdef class SentLog:
    """The sent, not yet acknowledged or lost packets of one packet-number space, in packet
    number order; slots of finished packets stay as holes until the head passes them."""
    cdef Sent *e
    cdef Py_ssize_t head, tail, cap
    cdef readonly int64_t live
    cdef readonly int64_t ack_eliciting_in_flight
    cdef readonly int64_t largest_acked_packet
    cdef double _loss_time               # < 0: none
    cdef readonly object space           # aioquic's QuicPacketSpace
    cdef readonly bint is_application_data

    def __cinit__(self):
        self.cap = 64
        self.e = <Sent *>malloc(self.cap * sizeof(Sent))
        if self.e == NULL:
            raise MemoryError()
        self.head = self.tail = 0
        self._loss_time = -1.0

    def __dealloc__(self):
        self._clear()
        free(self.e)

    @property
    def loss_time(self):
        return None if self._loss_time < 0 else self._loss_time

    cdef void _clear(self):
        cdef Py_ssize_t i
        for i in range(self.head, self.tail):
            if self.e[i].flags & F_LIVE:
                self.e[i].flags = 0
                Py_DECREF(<object>self.e[i].packet)
        self.head = self.tail = 0
        self.live = 0
        self.ack_eliciting_in_flight = 0

    cdef int _append(self, int64_t pn, double sent_time, int64_t sent_bytes, int flags,
                     object packet) except -1:
        cdef Py_ssize_t pos, n
        cdef Sent *grown
        if self.tail == self.cap:
            n = self.tail - self.head
            if self.head > 0 and n <= self.cap // 2:
                memmove(self.e, self.e + self.head, n * sizeof(Sent))
            else:
                grown = <Sent *>realloc(self.e, 2 * self.cap * sizeof(Sent))
                if grown == NULL:
                    raise MemoryError()
                self.e = grown
                self.cap *= 2
                if self.head > 0:
                    memmove(self.e, self.e + self.head, n * sizeof(Sent))
            self.head = 0
            self.tail = n
        pos = self.tail
        if pos > self.head and self.e[pos - 1].pn >= pn:
            # Out of order (never from aioquic's connection, whose packet numbers only grow):
            # keep the array sorted.  A packet number sent twice replaces nothing: refuse it.
            pos = self._find(pn)
            if pos < self.tail and self.e[pos].pn == pn:
                raise ValueError(f"packet number {pn} registered twice")
            memmove(self.e + pos + 1, self.e + pos, (self.tail - pos) * sizeof(Sent))
        self.tail += 1
        Py_INCREF(packet)
        self.e[pos].pn = pn
        self.e[pos].sent_time = sent_time
        self.e[pos].sent_bytes = sent_bytes
        self.e[pos].flags = flags | F_LIVE
        self.e[pos].packet = <PyObject *>packet
        self.live += 1
        if flags & F_ACK_ELICITING:
            self.ack_eliciting_in_flight += 1
        return 0

    cdef inline Py_ssize_t _find(self, int64_t pn):
        """Index of the first slot whose packet number is >= pn."""
        cdef Py_ssize_t lo = self.head, hi = self.tail, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.e[mid].pn < pn:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef inline object _take(self, Py_ssize_t i):
        """Ends slot i's packet (acknowledged, lost or expired); returns its record, whose
        reference the caller now holds."""
        cdef Sent *s = &self.e[i]
        cdef object packet = <object>s.packet
        Py_DECREF(packet)             # the slot's reference; ``packet`` holds its own
        s.flags &= ~F_LIVE
        self.live -= 1
        if s.flags & F_ACK_ELICITING:
            self.ack_eliciting_in_flight -= 1
        return packet

    cdef inline void _trim(self):
        while self.head < self.tail and not (self.e[self.head].flags & F_LIVE):
            self.head += 1
        if self.head == self.tail:
            self.head = self.tail = 0

    def packet_numbers(self):
        """The packet numbers still tracked (for tests)."""
        cdef Py_ssize_t i
        return [self.e[i].pn for i in range(self.head, self.tail) if self.e[i].flags & F_LIVE]


cdef inline list _handlers(object packet):
    """The packet's delivery handlers: a typed read for the compiled builder's records, an
    attribute lookup for any other (aioquic's builder, tests)."""
    if type(packet) is SentPacket:
        return (<SentPacket>packet).delivery_handlers
    return packet.delivery_handlers


cdef inline void _call_handlers(object packet, object state) except *:
    """Each recorded ``(handler, args)`` as ``handler(state, *args)``; a stream buffer's (one
    per STREAM frame, most of them) by its typed entry instead."""
    cdef bint acked = state is _ACKED
    for handler, args in _handlers(packet):
        if type(handler) is StreamSendBuffer:
            (<StreamSendBuffer>handler).delivered(acked, <tuple>args)
        else:
            handler(state, *args)


cdef class QuicPacketRecovery:
    """Loss recovery and congestion control of one connection; see the module docstring."""

    cdef public bint handshake_confirmed
    cdef public double max_ack_delay
    cdef public bint peer_completed_address_validation
    cdef list _spaces
    cdef list _logs
    cdef object _send_probe
    cdef object _logger
    cdef readonly Controller _cc
    cdef readonly Pacer _pacer
    cdef int64_t _mds
    cdef public int _pto_count
    cdef public double _rtt_first_sample_time
    cdef public double _rtt_initial
    cdef public bint _rtt_initialized
    cdef public double _rtt_latest
    cdef public double _rtt_min
    cdef public double _rtt_smoothed
    cdef public double _rtt_variance
    cdef public double _time_of_last_sent_ack_eliciting_packet
    # what the peer's ACKs did: ACK frames handled and packets they newly acknowledged (how
    # often the peer acknowledges, per packet: issue 12's measure of a receiver's ACK pattern)
    cdef readonly int64_t acks_received
    cdef readonly int64_t packets_acked
    # ranges of the ACK being handled: (start, stop) pairs, ascending
    cdef int64_t *_ranges
    cdef Py_ssize_t _ranges_cap

    def __init__(self, *, congestion_control_algorithm="reno", initial_rtt,
                 max_datagram_size, peer_completed_address_validation, send_probe,
                 logger=None, quic_logger=None):
        self.handshake_confirmed = False
        self.max_ack_delay = 0.025
        self.peer_completed_address_validation = peer_completed_address_validation
        self._spaces = []
        self._logs = []
        self._send_probe = send_probe
        self._logger = logger
        self._mds = max_datagram_size
        self._cc = Controller(max_datagram_size=max_datagram_size,
                              algorithm=congestion_control_algorithm)
        self._pacer = Pacer(max_datagram_size=max_datagram_size)
        self._pto_count = 0
        self._rtt_first_sample_time = 0.0
        self._rtt_initial = initial_rtt
        self._rtt_initialized = False
        self._rtt_latest = 0.0
        self._rtt_min = float("inf")
        self._rtt_smoothed = 0.0
        self._rtt_variance = 0.0
        self._time_of_last_sent_ack_eliciting_packet = 0.0

    def __cinit__(self, *args, **kwargs):
        self._ranges_cap = 64
        self._ranges = <int64_t *>malloc(2 * self._ranges_cap * sizeof(int64_t))
        if self._ranges == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self._ranges)

    # -- what the connection reads -------------------------------------------------------------
    @property
    def bytes_in_flight(self):
        return self._cc.bytes_in_flight

    @property
    def congestion_window(self):
        return self._cc.congestion_window

    @property
    def spaces(self):
        return self._spaces

    @spaces.setter
    def spaces(self, value):
        cdef SentLog log
        self._spaces = list(value)
        logs = []
        for space in self._spaces:
            log = SentLog()
            log.space = space
            log.is_application_data = bool(space.is_application_data)
            logs.append(log)
        self._logs = logs

    def log_for(self, space):
        """The SentLog of an aioquic QuicPacketSpace (for tests and the ACK handler)."""
        return self._log(space)

    cdef SentLog _log(self, object space):
        cdef SentLog log
        for log in self._logs:
            if log.space is space:
                return log
        raise ValueError("unknown packet number space")

    def use_brutal(self, bps, now):
        """Switch this connection to Brutal at ``bps`` bytes/s; bytes in flight carry over."""
        self._cc.switch("brutal", bps, now, self._rtt_smoothed)
        self._cc.update_pacer(self._pacer, now, self._rtt_smoothed)

    def set_brutal_rate(self, bps, now):
        self._cc.bps = max(1, int(bps))
        self._cc.switch("brutal", self._cc.bps, now, self._rtt_smoothed)
        self._cc.update_pacer(self._pacer, now, self._rtt_smoothed)

    # -- timers --------------------------------------------------------------------------------
    def get_probe_timeout(self, *, include_max_ack_delay=True):
        return self._probe_timeout(include_max_ack_delay)

    cdef double _probe_timeout(self, bint include_max_ack_delay):
        cdef double pto
        if not self._rtt_initialized:
            return 2 * self._rtt_initial
        pto = 4 * self._rtt_variance
        if pto < K_GRANULARITY:
            pto = K_GRANULARITY
        pto += self._rtt_smoothed
        if include_max_ack_delay:
            pto += self.max_ack_delay
        return pto

    cdef SentLog _loss_log(self):
        cdef SentLog log, best = None
        for log in self._logs:
            if log._loss_time >= 0 and (best is None or log._loss_time < best._loss_time):
                best = log
        return best

    def get_loss_detection_time(self, *, amplification_limited):
        cdef SentLog log = self._loss_log()
        cdef int64_t in_flight = 0
        cdef double timeout
        if log is not None:
            return log._loss_time
        if amplification_limited:
            return None
        for log in self._logs:
            if self.handshake_confirmed or not log.is_application_data:
                in_flight += log.ack_eliciting_in_flight
        if not self.peer_completed_address_validation or in_flight:
            timeout = self._probe_timeout(self.handshake_confirmed) * (1 << min(self._pto_count, 30))
            return self._time_of_last_sent_ack_eliciting_packet + timeout
        return None

    def on_loss_detection_timeout(self, *, double now):
        cdef SentLog log = self._loss_log()
        if log is not None:
            self._detect_loss(log, now)
        else:
            self._pto_count += 1
            self.reschedule_data(now=now)

    # -- sending -------------------------------------------------------------------------------
    def on_packet_sent(self, *, packet, space):
        self.register_sent(packet, self._log(space))

    cdef int register_sent(self, object packet, SentLog log) except -1:
        cdef int flags = 0
        cdef double sent_time
        cdef int64_t sent_bytes, pn
        cdef SentPacket sp
        if type(packet) is SentPacket:
            sp = <SentPacket>packet
            sent_time = sp.sent_time
            sent_bytes = sp.sent_bytes
            pn = sp.packet_number
            flags = ((F_IN_FLIGHT if sp.in_flight else 0)
                     | (F_ACK_ELICITING if sp.is_ack_eliciting else 0)
                     | (F_CRYPTO if sp.is_crypto_packet else 0))
        else:
            sent_time = packet.sent_time
            sent_bytes = packet.sent_bytes
            pn = packet.packet_number
            if packet.in_flight:
                flags |= F_IN_FLIGHT
            if packet.is_ack_eliciting:
                flags |= F_ACK_ELICITING
            if packet.is_crypto_packet:
                flags |= F_CRYPTO
        log._append(pn, sent_time, sent_bytes, flags, packet)
        if flags & F_IN_FLIGHT:
            if (flags & F_ACK_ELICITING) and (self.handshake_confirmed
                                              or not log.is_application_data):
                self._time_of_last_sent_ack_eliciting_packet = sent_time
            self._cc.on_sent(sent_bytes)
        return 0

    # -- acknowledgements ------------------------------------------------------------------------
    def on_ack_received(self, *, ack_rangeset, double ack_delay, double now, space):
        """aioquic's entry point: the ranges of a RangeSet (ascending)."""
        cdef Py_ssize_t n = 0
        for r in ack_rangeset:
            if n == self._ranges_cap:
                self._grow_ranges()
            self._ranges[2 * n] = r.start
            self._ranges[2 * n + 1] = r.stop
            n += 1
        if n:
            self.on_ack_ranges(self._log(space), n, ack_delay, now)

    cdef int _grow_ranges(self) except -1:
        cdef int64_t *grown = <int64_t *>realloc(self._ranges,
                                                 4 * self._ranges_cap * sizeof(int64_t))
        if grown == NULL:
            raise MemoryError()
        self._ranges = grown
        self._ranges_cap *= 2
        return 0

    cdef int on_ack_ranges(self, SentLog log, Py_ssize_t n, double ack_delay,
                           double now) except -1:
        """Handles the ``n`` ascending ranges in ``self._ranges``."""
        cdef int64_t largest_acked = self._ranges[2 * n - 1] - 1
        cdef int64_t largest_newly_acked = -1, start, stop
        cdef double largest_sent_time = 0.0, latest_rtt, srtt = self._rtt_smoothed
        cdef bint is_ack_eliciting = False, newly = False
        cdef Py_ssize_t r, i
        cdef Sent *s
        if largest_acked > log.largest_acked_packet:
            log.largest_acked_packet = largest_acked
        self.acks_received += 1
        for r in range(n):
            start = self._ranges[2 * r]
            stop = self._ranges[2 * r + 1]
            i = log._find(start)
            while i < log.tail:
                s = &log.e[i]              # re-read: a handler may have grown the array
                if s.pn >= stop:
                    break
                if s.flags & F_LIVE:
                    if s.flags & F_ACK_ELICITING:
                        is_ack_eliciting = True
                    if s.flags & F_IN_FLIGHT:
                        self._cc.on_acked(s.sent_bytes, s.sent_time, now, srtt)
                    largest_newly_acked = s.pn
                    largest_sent_time = s.sent_time
                    newly = True
                    self.packets_acked += 1
                    packet = log._take(i)
                    if _handlers(packet):
                        _call_handlers(packet, _ACKED)
                i += 1
        log._trim()
        if not newly:
            return 0

        if largest_acked == largest_newly_acked and is_ack_eliciting:
            latest_rtt = now - largest_sent_time
            if ack_delay > self.max_ack_delay:
                ack_delay = self.max_ack_delay
            # RTT estimate (RFC 9002 section 5), never below 1 ms
            self._rtt_latest = latest_rtt if latest_rtt > 0.001 else 0.001
            if self._rtt_latest < self._rtt_min:
                self._rtt_min = self._rtt_latest
            if self._rtt_latest > self._rtt_min + ack_delay:
                self._rtt_latest -= ack_delay
            if not self._rtt_initialized:
                self._rtt_first_sample_time = now
                self._rtt_initialized = True
                self._rtt_variance = latest_rtt / 2
                self._rtt_smoothed = latest_rtt
            else:
                self._rtt_variance = (0.75 * self._rtt_variance
                                      + 0.25 * abs(self._rtt_min - self._rtt_latest))
                self._rtt_smoothed = 0.875 * self._rtt_smoothed + 0.125 * self._rtt_latest
            self._cc.on_rtt(now, self._rtt_latest, self._rtt_smoothed)
            self._cc.update_pacer(self._pacer, now, self._rtt_smoothed)

        self._detect_loss(log, now)
        # The PTO count resets unless a client is not yet sure the server validated its
        # address (RFC 9002 section 6.2.1).
        if self.peer_completed_address_validation:
            self._pto_count = 0
        return 0

    # -- loss ----------------------------------------------------------------------------------
    cdef int _detect_loss(self, SentLog log, double now) except -1:
        cdef double rtt = (self._rtt_latest if self._rtt_latest > self._rtt_smoothed
                           else self._rtt_smoothed) if self._rtt_initialized else self._rtt_initial
        cdef double loss_delay = K_TIME_THRESHOLD * rtt
        cdef int64_t packet_threshold = log.largest_acked_packet - K_PACKET_THRESHOLD
        cdef double time_threshold = now - loss_delay
        cdef Py_ssize_t i, first = -1, last = -1
        cdef Sent *s
        log._loss_time = -1.0
        # Packets are sorted by number and by send time, so the lost ones are a prefix of
        # those below the largest acknowledged; the first one that is not lost gives the loss
        # timer (RFC 9002 section 6.1).
        i = log.head
        while i < log.tail:
            s = &log.e[i]
            if s.pn > log.largest_acked_packet:
                break
            if s.flags & F_LIVE:
                if s.pn <= packet_threshold or s.sent_time <= time_threshold:
                    if first < 0:
                        first = i
                    last = i
                else:
                    log._loss_time = s.sent_time + loss_delay
                    break
            i += 1
        if first >= 0:
            self._lose(log, first, last + 1, now, True)
        return 0

    cdef bint _persistent(self, SentLog log, Py_ssize_t first, Py_ssize_t stop):
        """RFC 9002 section 7.6.2 over the live packets of slots [first, stop): two
        ack-eliciting packets sent after the first RTT sample and more than 3 PTOs apart, with
        no packet number between them acknowledged (a gap ends the run)."""
        cdef double duration, start_time = -1.0
        cdef int64_t previous = -1
        cdef bint has_previous = False
        cdef Py_ssize_t i
        cdef Sent *s
        if not self._rtt_initialized:
            return False
        duration = self._probe_timeout(True) * K_PERSISTENT_CONGESTION_THRESHOLD
        for i in range(first, stop):
            s = &log.e[i]
            if not (s.flags & F_LIVE):
                continue
            if has_previous and s.pn != previous + 1:
                start_time = -1.0
            previous = s.pn
            has_previous = True
            if (s.flags & F_ACK_ELICITING) and s.sent_time > self._rtt_first_sample_time:
                if start_time < 0:
                    start_time = s.sent_time
                elif s.sent_time - start_time > duration:
                    return True
        return False

    cdef int _lose(self, SentLog log, Py_ssize_t first, Py_ssize_t stop, double now,
                   bint congestion_event) except -1:
        """Declares the live packets in slots [first, stop) lost: their handlers requeue the
        data; the controller hears of a congestion event, or only of expired bytes."""
        cdef int64_t lost_bytes = 0, count = 0
        cdef double largest_sent_time = 0.0
        cdef bint persistent = congestion_event and self._persistent(log, first, stop)
        cdef Py_ssize_t i
        cdef list taken = []
        for i in range(first, stop):
            if not (log.e[i].flags & F_LIVE):
                continue
            if log.e[i].flags & F_IN_FLIGHT:
                lost_bytes += log.e[i].sent_bytes
                count += 1
                largest_sent_time = log.e[i].sent_time
            taken.append(log._take(i))
        log._trim()
        # The handlers run once the log is consistent (they may queue new data).
        for packet in taken:
            if _handlers(packet):
                _call_handlers(packet, _LOST)
        if count:
            if not congestion_event:
                self._cc.on_expired(lost_bytes)
            else:
                self._cc.on_lost(lost_bytes, count, largest_sent_time, now, self._rtt_smoothed)
                if persistent:
                    self._cc.on_persistent_congestion()
                self._cc.update_pacer(self._pacer, now, self._rtt_smoothed)
        return 0

    def reschedule_data(self, *, double now, speed_up_handshake=False):
        """Retransmit outstanding CRYPTO data, or else (unless only the handshake is being
        sped up) the oldest ack-eliciting packet, then ask for a probe (RFC 9002 section 6.2.4).
        The packets count as lost for their handlers, but not as a congestion event."""
        cdef SentLog log, oldest_log = None
        cdef Py_ssize_t i, oldest_i = -1
        cdef bint crypto_scheduled = False
        cdef double oldest_time = 0.0
        for log in self._logs:
            crypto = [i for i in range(log.head, log.tail)
                      if (log.e[i].flags & (F_LIVE | F_CRYPTO)) == (F_LIVE | F_CRYPTO)]
            if crypto:
                crypto_scheduled = True
                self._lose_slots(log, crypto, now)
        if not crypto_scheduled and not speed_up_handshake:
            for log in self._logs:
                if log.is_application_data and not self.handshake_confirmed:
                    continue
                for i in range(log.head, log.tail):
                    if (log.e[i].flags & (F_LIVE | F_ACK_ELICITING)) == (F_LIVE | F_ACK_ELICITING):
                        if oldest_log is None or log.e[i].sent_time < oldest_time:
                            oldest_log = log
                            oldest_i = i
                            oldest_time = log.e[i].sent_time
                        break
            if oldest_log is not None:
                self._lose(oldest_log, oldest_i, oldest_i + 1, now, False)
        self._send_probe()

    cdef int _lose_slots(self, SentLog log, list slots, double now) except -1:
        cdef int64_t expired = 0
        cdef Py_ssize_t i
        taken = []
        for i in slots:
            if log.e[i].flags & F_IN_FLIGHT:
                expired += log.e[i].sent_bytes
            taken.append(log._take(i))
        log._trim()
        for packet in taken:
            if _handlers(packet):
                _call_handlers(packet, _LOST)
        if expired:
            self._cc.on_expired(expired)
        return 0

    def discard_space(self, space):
        """The space's keys are gone: forget its packets (their bytes leave the flight)."""
        cdef SentLog log = self._log(space)
        cdef Py_ssize_t i
        cdef int64_t expired = 0
        for i in range(log.head, log.tail):
            if (log.e[i].flags & (F_LIVE | F_IN_FLIGHT)) == (F_LIVE | F_IN_FLIGHT):
                expired += log.e[i].sent_bytes
        log._clear()
        self._cc.on_expired(expired)
        space.ack_at = None
        log._loss_time = -1.0
        self._pto_count = 0


# -- the ACK frame (RFC 9000 section 19.3), read from aioquic's Buffer memory -------------------
cdef extern from *:
    """
    typedef struct { PyObject_HEAD uint8_t *base; uint8_t *end; uint8_t *pos; } fp_rx_buffer;
    """
    ctypedef struct fp_rx_buffer:
        uint8_t *base
        uint8_t *end
        uint8_t *pos


cdef enum:
    ACK_OK = 0
    ACK_TRUNCATED = 1
    ACK_NEGATIVE = 2


cdef int parse_ack(const uint8_t **p, const uint8_t *end, QuicPacketRecovery into,
                   Py_ssize_t *count, uint64_t *delay) except -1:
    """Reads an ACK frame's body (after the type) into ``into._ranges`` as ascending (start,
    stop) pairs; returns ACK_OK, ACK_TRUNCATED or ACK_NEGATIVE (a range below packet 0).
    Nothing is allocated per range beyond the recovery's reusable array, which grows only as
    far as the frame's own bytes allow (each range takes at least two)."""
    cdef uint64_t largest, range_count, first_range, gap, length, smallest, k
    cdef Py_ssize_t n, j
    cdef int64_t tmp
    if (_varint(p, end, &largest) or _varint(p, end, delay)
            or _varint(p, end, &range_count) or _varint(p, end, &first_range)):
        return ACK_TRUNCATED
    if range_count > <uint64_t>(end - p[0]) // 2:
        return ACK_TRUNCATED
    if first_range > largest:
        return ACK_NEGATIVE
    n = <Py_ssize_t>range_count + 1
    while n > into._ranges_cap:
        into._grow_ranges()
    smallest = largest - first_range
    # ranges arrive newest first; fill from the end so the array ends ascending
    into._ranges[2 * (n - 1)] = <int64_t>smallest
    into._ranges[2 * (n - 1) + 1] = <int64_t>(largest + 1)
    for k in range(range_count):
        if _varint(p, end, &gap) or _varint(p, end, &length):
            return ACK_TRUNCATED
        # the next range's largest is smallest - gap - 2 (RFC 9000 section 19.3.1)
        if gap + 2 > smallest:
            return ACK_NEGATIVE
        largest = smallest - gap - 2
        if length > largest:
            return ACK_NEGATIVE
        smallest = largest - length
        j = n - 2 - <Py_ssize_t>k
        into._ranges[2 * j] = <int64_t>smallest
        into._ranges[2 * j + 1] = <int64_t>(largest + 1)
    if largest >= (<uint64_t>1 << 62):
        return ACK_NEGATIVE
    count[0] = n
    return ACK_OK


_parse_scratch = None


def parse_ack_frame(data, bint ecn=False):
    """Parses an ACK frame body (``data`` starts after the frame type) the way the connection's
    handler does: returns (ranges ascending as (start, stop) tuples, ack delay, bytes read);
    raises BufferReadError when truncated and ValueError for a range below packet 0."""
    global _parse_scratch
    if _parse_scratch is None:
        _parse_scratch = QuicPacketRecovery(initial_rtt=0.1, max_datagram_size=1200,
                                            peer_completed_address_validation=True,
                                            send_probe=None)
    cdef QuicPacketRecovery into = _parse_scratch
    cdef bytes raw = bytes(data)
    cdef const uint8_t *start = <const uint8_t *><char *>raw
    cdef const uint8_t *p = start
    cdef const uint8_t *end = start + len(raw)
    cdef Py_ssize_t n = 0, i
    cdef uint64_t delay = 0, skip
    cdef int rc = parse_ack(&p, end, into, &n, &delay)
    if rc == ACK_TRUNCATED:
        raise BufferReadError("Read out of bounds")
    if rc == ACK_NEGATIVE:
        raise ValueError("ACK range contains a negative packet number")
    if ecn:
        for i in range(3):
            if _varint(&p, end, &skip):
                raise BufferReadError("Read out of bounds")
    return ([(into._ranges[2 * i], into._ranges[2 * i + 1]) for i in range(n)], delay,
            p - start)


cdef object _FRAME_ENCODING_ERROR = None
cdef object _QuicConnectionError = None
cdef object _EPOCH_HANDSHAKE = None
cdef object _EPOCH_ONE_RTT = None
cdef object _RangeSet = None
cdef uint64_t _ACK_ECN = 0x03


def _late_imports():
    global _FRAME_ENCODING_ERROR, _QuicConnectionError, _EPOCH_HANDSHAKE, _EPOCH_ONE_RTT
    global _RangeSet
    from aioquic.quic.connection import QuicConnectionError
    from aioquic.quic.packet import QuicErrorCode
    from aioquic.quic.rangeset import RangeSet
    from aioquic.tls import Epoch
    _FRAME_ENCODING_ERROR = QuicErrorCode.FRAME_ENCODING_ERROR
    _QuicConnectionError = QuicConnectionError
    _EPOCH_HANDSHAKE = Epoch.HANDSHAKE
    _EPOCH_ONE_RTT = Epoch.ONE_RTT
    _RangeSet = RangeSet


def handle_ack_frame(self, context, frame_type, buf):
    """aioquic's ``QuicConnection._handle_ack_frame`` (installed by the seam): parse the ACK
    from the packet buffer's memory and give the ranges to the compiled recovery; with
    aioquic's recovery (a qlog trace) the ranges go as a RangeSet, as aioquic's handler does."""
    if _QuicConnectionError is None:
        _late_imports()
    cdef fp_rx_buffer *m = <fp_rx_buffer *><PyObject *>buf
    cdef const uint8_t *p = m.pos
    cdef Py_ssize_t n = 0, i
    cdef uint64_t delay = 0, skip
    cdef double ack_delay
    cdef QuicPacketRecovery ours
    loss = self._loss
    if type(loss) is QuicPacketRecovery:
        ours = <QuicPacketRecovery>loss
    else:
        ours = _parse_scratch_for_foreign()
    cdef int rc = parse_ack(&p, m.end, ours, &n, &delay)
    if rc == ACK_TRUNCATED:
        raise BufferReadError("Read out of bounds")
    if rc == ACK_NEGATIVE:
        raise _QuicConnectionError(error_code=_FRAME_ENCODING_ERROR, frame_type=frame_type,
                                   reason_phrase="ACK range contains a negative packet number")
    if frame_type == _ACK_ECN:
        for i in range(3):
            if _varint(&p, m.end, &skip):
                raise BufferReadError("Read out of bounds")
    m.pos = <uint8_t *>p
    ack_delay = (delay << self._remote_ack_delay_exponent) / 1000000.0
    epoch = context.epoch
    if not loss.peer_completed_address_validation and (epoch is _EPOCH_HANDSHAKE
                                                       or epoch is _EPOCH_ONE_RTT):
        loss.peer_completed_address_validation = True
    space = self._spaces[epoch]
    if ours is loss:
        if self._quic_logger is not None:
            context.quic_logger_frames.append(self._quic_logger.encode_ack_frame(
                _RangeSet([range(ours._ranges[2 * i], ours._ranges[2 * i + 1])
                           for i in range(n)]), ack_delay))
        ours.on_ack_ranges(ours._log(space), n, ack_delay, context.time)
    else:
        rangeset = _RangeSet([range(ours._ranges[2 * i], ours._ranges[2 * i + 1])
                              for i in range(n)])
        if self._quic_logger is not None:
            context.quic_logger_frames.append(
                self._quic_logger.encode_ack_frame(rangeset, ack_delay))
        loss.on_ack_received(ack_rangeset=rangeset, ack_delay=ack_delay, now=context.time,
                             space=space)


cdef QuicPacketRecovery _parse_scratch_for_foreign():
    global _parse_scratch
    if _parse_scratch is None:
        _parse_scratch = QuicPacketRecovery(initial_rtt=0.1, max_datagram_size=1200,
                                            peer_completed_address_validation=True,
                                            send_probe=None)
    return <QuicPacketRecovery>_parse_scratch
