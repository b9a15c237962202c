"""Brutal congestion control: send at a fixed target rate, compensating for measured loss.

The peer announced how fast it can receive; Brutal believes it.  There is no slow start and no
back-off: the pacing rate is ``bps / ackRate`` and the window ``bps * srtt * 2 / ackRate``, where
ackRate is the share of packets acknowledged over the last five one-second slots (floored at
0.8, and 1 until 50 packets were seen).  aioquic derives its pacing rate from cwnd / srtt, so
``install_brutal`` also swaps in a pacer that asks Brutal for its rate.

With fastpath's compiled recovery (``fastpath.hy2.quic.quic_recovery``, the default) Brutal is its C
controller (``fastpath.hy2.quic.quic_cc``, same rules) and this Python class is used only with
aioquic's recovery (``FASTPATH_QUIC_RECOVERY=aioquic``, or a connection with a qlog trace).
"""
from __future__ import annotations

import math
from typing import Callable

from aioquic.quic.congestion.base import QuicCongestionControl
from aioquic.quic.recovery import K_MICRO_SECOND, K_SECOND, QuicPacketPacer

from fastpath.hy2.quic import aioquic_seam

SLOTS = 5
MIN_SAMPLES = 50
MIN_ACK_RATE = 0.8
INITIAL_WINDOW = 10240


class BrutalCongestionControl(QuicCongestionControl):
    def __init__(self, *, max_datagram_size: int, bps: int,
                 smoothed_rtt: Callable[[], float] = lambda: 0.0) -> None:
        super().__init__(max_datagram_size=max_datagram_size)
        self._max_datagram_size = max_datagram_size
        self.bps = max(1, int(bps))
        self._smoothed_rtt = smoothed_rtt
        self._slot_second = [-1] * SLOTS
        self._acked = [0] * SLOTS
        self._lost = [0] * SLOTS
        self.congestion_window = INITIAL_WINDOW

    # -- the rate ---------------------------------------------------------------------------
    def ack_rate(self, now: float) -> float:
        second = int(now)
        acked = lost = 0
        for i in range(SLOTS):
            if second - self._slot_second[i] < SLOTS:
                acked += self._acked[i]
                lost += self._lost[i]
        if acked + lost < MIN_SAMPLES:
            return 1.0
        return max(MIN_ACK_RATE, acked / (acked + lost))

    def pacing_rate(self, now: float) -> float:
        return self.bps / self.ack_rate(now)

    def _update_window(self, now: float) -> None:
        rtt = self._smoothed_rtt()
        if rtt <= 0:
            self.congestion_window = INITIAL_WINDOW
            return
        window = int(self.bps * rtt * 2 / self.ack_rate(now))
        self.congestion_window = max(window, self._max_datagram_size)

    def _slot(self, now: float) -> int:
        second = int(now)
        i = second % SLOTS
        if self._slot_second[i] != second:
            self._slot_second[i] = second
            self._acked[i] = 0
            self._lost[i] = 0
        return i

    # -- aioquic's congestion control interface ----------------------------------------------
    def on_packet_acked(self, *, now: float, packet) -> None:
        self.bytes_in_flight -= packet.sent_bytes
        self._acked[self._slot(now)] += 1

    def on_packet_sent(self, *, packet) -> None:
        self.bytes_in_flight += packet.sent_bytes

    def on_packets_expired(self, *, packets) -> None:
        for packet in packets:
            self.bytes_in_flight -= packet.sent_bytes

    def on_packets_lost(self, *, now: float, packets) -> None:
        i = self._slot(now)
        for packet in packets:
            self.bytes_in_flight -= packet.sent_bytes
            self._lost[i] += 1
        self._update_window(now)

    def on_persistent_congestion(self) -> None:
        pass                                   # Brutal does not back off

    def on_rtt_measurement(self, *, now: float, rtt: float) -> None:
        self._update_window(now)

    def get_log_data(self) -> dict:
        return {"cwnd": self.congestion_window, "bytes_in_flight": self.bytes_in_flight,
                "bps": self.bps}


class BrutalPacer(QuicPacketPacer):
    """aioquic's token bucket, fed Brutal's rate instead of cwnd / srtt."""

    def __init__(self, *, max_datagram_size: int, brutal: BrutalCongestionControl,
                 clock: Callable[[], float]) -> None:
        super().__init__(max_datagram_size=max_datagram_size)
        self._size = max_datagram_size
        self._brutal = brutal
        self._clock = clock
        self.update_rate(brutal.congestion_window, 0.0)

    def update_rate(self, congestion_window: int, smoothed_rtt: float) -> None:
        rate = self._brutal.pacing_rate(self._clock())
        size = self._size
        self.packet_time = max(K_MICRO_SECOND, min(size / rate, K_SECOND))
        burst = max(2 * size, min(max(congestion_window, INITIAL_WINDOW) // 4, 16 * size))
        self.bucket_max = burst / rate
        if self.bucket_time > self.bucket_max:
            self.bucket_time = self.bucket_max


def install_brutal(quic, bps: int, now: float):
    """Switch a live aioquic connection to Brutal at ``bps`` bytes/s (packets in flight carry
    over).  Returns the controller (compiled or this module's), whose ``bps`` may be changed
    later."""
    recovery = aioquic_seam.recovery(quic)
    if aioquic_seam.is_compiled_recovery(recovery):
        recovery.use_brutal(max(1, int(bps)), now)
        return aioquic_seam.congestion_control(quic)
    old = aioquic_seam.congestion_control(quic)
    size = aioquic_seam.max_datagram_size(quic)
    brutal = BrutalCongestionControl(max_datagram_size=size, bps=bps,
                                     smoothed_rtt=lambda: aioquic_seam.smoothed_rtt(recovery))
    brutal.bytes_in_flight = old.bytes_in_flight
    brutal._update_window(now)
    aioquic_seam.replace_congestion_control(
        recovery, brutal, BrutalPacer(max_datagram_size=size, brutal=brutal,
                                      clock=lambda: quic_time(now)))
    return brutal


def quic_time(fallback: float) -> float:
    """The event loop's clock when there is one (the pacer runs inside the loop)."""
    import asyncio
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return fallback if math.isfinite(fallback) else 0.0


def brutal_rate(quic) -> int | None:
    """The Brutal rate (bytes/s) a connection sends at, or None under another controller."""
    cc = aioquic_seam.congestion_control(quic)
    if isinstance(cc, BrutalCongestionControl):
        return cc.bps
    if getattr(cc, "algorithm", None) == "brutal":
        return cc.bps
    return None
