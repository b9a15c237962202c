"""fastpath's compiled loss recovery, ACK parser and congestion controllers (quic_recovery.pyx,
quic_cc.pyx) against aioquic's.

- The ACK frame parser agrees with aioquic's ``pull_ack_frame`` on random valid frames, and on
  random bytes either both fail or both agree (hypothesis).
- Hostile ACK frames sent inside real 1-RTT packets to a real connection close it with
  FRAME_ENCODING_ERROR: ranges below packet 0, a first range larger than the largest
  acknowledged, huge range counts, truncation; a flood of tiny ACK frames is handled.
- The recovery, driven with the same sent packets, ACKs and timer firings as aioquic's,
  delivers the same ACKED / LOST events in the same order, with the same bytes in flight, RTT
  estimate and loss timer (hypothesis).
- The controllers: NewReno and CUBIC window rules, Brutal's window and rate as the spec says.
"""
from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioquic.buffer import Buffer, BufferReadError
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicErrorCode, pull_ack_frame
from aioquic.quic.packet_builder import QuicDeliveryState, QuicSentPacket
from aioquic.quic.rangeset import RangeSet
from aioquic.quic.recovery import QuicPacketRecovery as AioquicRecovery
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.tls import Epoch

import fastpath.hy2.quic.quic_connection  # noqa: F401  (installs the compiled builder and recovery)
from fastpath.hy2.quic import aioquic_seam, quic_cc
from fastpath.hy2.quic.quic_recovery import QuicPacketRecovery as OurRecovery
from fastpath.hy2.quic.quic_recovery import parse_ack_frame
from tests.hy2.reference_codecs import varint_encode as varint


def aioquic_parse(data: bytes):
    buf = Buffer(data=data)
    rangeset, delay = pull_ack_frame(buf)
    return [(r.start, r.stop) for r in rangeset], delay, buf.tell()


@st.composite
def valid_ack_frames(draw):
    """(body, ranges ascending): a well-formed ACK frame body."""
    largest = draw(st.integers(0, 2**40))
    first = draw(st.integers(0, min(largest, 5000)))
    ranges = [(largest - first, largest + 1)]
    body = [varint(largest), varint(draw(st.integers(0, 2**20))), None, varint(first)]
    smallest = largest - first
    extra = []
    for _ in range(draw(st.integers(0, 40))):
        if smallest < 2:
            break
        gap = draw(st.integers(0, min(smallest - 2, 300)))
        top = smallest - gap - 2
        length = draw(st.integers(0, min(top, 300)))
        extra.append(varint(gap) + varint(length))
        ranges.append((top - length, top + 1))
        smallest = top - length
    body[2] = varint(len(extra))
    return b"".join(body) + b"".join(extra), sorted(ranges)


@settings(max_examples=400, deadline=None)
@given(valid_ack_frames(), st.binary(max_size=8))
def test_ack_parser_agrees_with_aioquic_on_valid_frames(frame, trailer):
    body, ranges = frame
    ours = parse_ack_frame(body + trailer)
    assert ours == aioquic_parse(body + trailer)
    assert ours[0] == ranges and ours[2] == len(body)


def classify(fn, data):
    try:
        return ("ok", fn(data))
    except (BufferReadError, ValueError):
        return ("error", None)      # both are FRAME_ENCODING_ERROR in the connection


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.binary(max_size=64),
                 st.lists(st.integers(0, 2**62 - 1), max_size=12).map(
                     lambda vs: b"".join(varint(v) for v in vs))))
def test_ack_parser_on_hostile_bytes_fails_when_aioquic_does(data):
    assert classify(parse_ack_frame, data) == classify(aioquic_parse, data)


def test_ack_parser_named_hostile_cases():
    # first range larger than the largest acknowledged
    with pytest.raises(ValueError):
        parse_ack_frame(varint(5) + varint(0) + varint(0) + varint(6))
    # a gap that goes below packet 0 ("ranges going backwards")
    with pytest.raises(ValueError):
        parse_ack_frame(varint(10) + varint(0) + varint(1) + varint(2) + varint(7) + varint(0))
    # a range length below packet 0
    with pytest.raises(ValueError):
        parse_ack_frame(varint(10) + varint(0) + varint(1) + varint(2) + varint(1) + varint(9))
    # a huge range count with a few bytes: truncated, found without reading 2**62 ranges
    with pytest.raises(BufferReadError):
        parse_ack_frame(varint(10) + varint(0) + varint(2**62 - 1) + varint(0) + bytes(6))
    # truncated inside a varint, and ECN counts missing
    with pytest.raises(BufferReadError):
        parse_ack_frame(varint(10) + varint(0) + varint(0) + b"\x80\x00")
    with pytest.raises(BufferReadError):
        parse_ack_frame(varint(10) + varint(0) + varint(0) + varint(0) + varint(1), ecn=True)
    # many ranges: the range array grows as needed
    body = varint(100_000) + varint(3) + varint(2000) + varint(0) + (varint(0) + varint(0)) * 2000
    ranges, delay, used = parse_ack_frame(body)
    assert len(ranges) == 2001 and delay == 3 and used == len(body)
    assert ranges == aioquic_parse(body)[0]


# -- hostile ACK frames through a real connection ------------------------------------------------
def exchange(client, server, now):
    while True:
        sent = 0
        for src, dst, addr in ((client, server, ("1.2.3.4", 1)),
                               (server, client, ("5.6.7.8", 2))):
            for data, _ in src.datagrams_to_send(now):
                dst.receive_datagram(data, addr, now)
                sent += 1
        if not sent:
            return


def server_for(client, tls_files):
    """The server end of ``client``'s connection (a certificate from ``tls_files``)."""
    cert, key = tls_files
    cfg = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
    cfg.load_cert_chain(cert, key)
    return QuicConnection(configuration=cfg, original_destination_connection_id=(
        client.original_destination_connection_id))


def deliver(client, server, payload: bytes, step: float, rounds: int, carry) -> bytes:
    """Connects, sends ``payload`` on a new client stream and runs both ends (``carry(now)``
    moves their datagrams, then due timers fire) every ``step`` seconds until the server has
    it all or ``rounds`` ran out; returns what the server received on the stream."""
    now = 1.0
    client.connect(("5.6.7.8", 2), now)
    exchange(client, server, now)
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, payload, end_stream=True)
    got = bytearray()
    for _ in range(rounds):
        now += step
        carry(now)
        for conn in (client, server):
            t = conn.get_timer()
            if t is not None and t <= now:
                conn.handle_timer(now)
        ev = server.next_event()
        while ev is not None:
            if getattr(ev, "stream_id", None) == sid and hasattr(ev, "data"):
                got += ev.data
            ev = server.next_event()
        if len(got) == len(payload):
            break
    return bytes(got)


@pytest.fixture
def connected(tls_files):
    """A client and server aioquic connection (built as fastpath installs them) after the
    handshake, in memory."""
    assert aioquic_seam.installed_recovery() == "fastpath"
    client = QuicConnection(configuration=QuicConfiguration(is_client=True, alpn_protocols=["h3"],
                                                            verify_mode=0))
    server = server_for(client, tls_files)
    client.connect(("5.6.7.8", 2), 1.0)
    exchange(client, server, 1.0)
    assert client._handshake_complete and server._handshake_complete
    assert isinstance(server._loss, OurRecovery)
    return client, server


def inject(client, server, payload: bytes, now: float = 2.0):
    """Seal ``payload`` as the client's next 1-RTT packet and hand it to the server."""
    pn = client._packet_number
    client._packet_number += 1
    header = bytes([0x41]) + client._peer_cid.cid + pn.to_bytes(2, "big")
    packet = client._cryptos[Epoch.ONE_RTT].encrypt_packet(header, payload, pn)
    server.receive_datagram(packet, ("1.2.3.4", 1), now)


PAD = bytes(24)    # PADDING frames first, so a truncated ACK is the packet's last frame

HOSTILE = {
    "first range above largest": varint(5) + varint(0) + varint(0) + varint(6),
    "gap below zero": varint(10) + varint(0) + varint(1) + varint(2) + varint(7) + varint(0),
    "length below zero": varint(10) + varint(0) + varint(1) + varint(2) + varint(1) + varint(9),
    "huge range count": varint(10) + varint(0) + varint(2**62 - 1) + varint(0) + bytes(6),
    "truncated varint": varint(10) + varint(0) + varint(0) + b"\x80\x00",
    "truncated range": varint(10) + varint(0) + varint(3) + varint(0) + varint(1),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_ack_closes_the_connection_with_frame_encoding_error(connected, name):
    client, server = connected
    inject(client, server, PAD + b"\x02" + HOSTILE[name])
    assert server._close_event is not None
    assert server._close_event.error_code == QuicErrorCode.FRAME_ENCODING_ERROR


def test_truncated_ecn_counts_close_the_connection(connected):
    client, server = connected
    inject(client, server, PAD + b"\x03" + varint(0) + varint(0) + varint(0) + varint(0) + b"\x01")
    assert server._close_event.error_code == QuicErrorCode.FRAME_ENCODING_ERROR


def test_a_flood_of_tiny_acks_is_handled(connected):
    client, server = connected
    frame = b"\x02" + varint(0) + varint(0) + varint(0) + varint(0)
    inject(client, server, frame * 250)
    assert server._close_event is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=80))
def test_random_ack_bodies_never_escape_the_connection(connected, data):
    client, server = connected
    inject(client, server, PAD + b"\x02" + data)      # must not raise
    if server._close_event is not None:
        assert server._close_event.error_code in (QuicErrorCode.FRAME_ENCODING_ERROR,
                                                  QuicErrorCode.PROTOCOL_VIOLATION,
                                                  QuicErrorCode.STREAM_STATE_ERROR,
                                                  QuicErrorCode.FLOW_CONTROL_ERROR,
                                                  QuicErrorCode.STREAM_LIMIT_ERROR,
                                                  QuicErrorCode.FINAL_SIZE_ERROR,
                                                  QuicErrorCode.TRANSPORT_PARAMETER_ERROR)


@pytest.mark.parametrize("client_qlog", [False, True])
def test_transfer_with_both_recoveries_on_the_wire(tls_files, client_qlog):
    """A 1 MiB stream between two connections, SHA-256 equal: the compiled ACK path and
    recovery deliver every byte; with a qlog trace the client keeps aioquic's recovery and the
    compiled ACK handler hands it a RangeSet."""
    from aioquic.quic.logger import QuicLogger

    client = QuicConnection(configuration=QuicConfiguration(
        is_client=True, alpn_protocols=["h3"], verify_mode=0,
        quic_logger=QuicLogger() if client_qlog else None))
    assert isinstance(client._loss, AioquicRecovery if client_qlog else OurRecovery)
    server = server_for(client, tls_files)
    payload = hashlib.sha256(b"x").digest() * 32768
    got = deliver(client, server, payload, 0.005, 3000,
                  lambda now: exchange(client, server, now))
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    assert client._loss.bytes_in_flight >= 0 and client._loss._rtt_initialized


# -- the recovery against aioquic's ---------------------------------------------------------------
class Pair:
    """aioquic's recovery and ours, fed the same calls; every observable compared."""

    def __init__(self):
        self.events = ([], [])
        self.recs = []
        self.spaces = []
        self.probes = [0, 0]
        for k, cls in enumerate((AioquicRecovery, OurRecovery)):
            def probe(k=k):
                self.probes[k] += 1
            rec = cls(congestion_control_algorithm="reno", initial_rtt=0.1,
                      max_datagram_size=1200, peer_completed_address_validation=True,
                      send_probe=probe)
            spaces = [QuicPacketSpace(), QuicPacketSpace(),
                      QuicPacketSpace(is_application_data=True)]
            rec.spaces = spaces
            self.recs.append(rec)
            self.spaces.append(spaces)
        self.pn = 0

    def send(self, space: int, now: float, size: int, ack_eliciting: bool, in_flight: bool,
             crypto: bool):
        for k, rec in enumerate(self.recs):
            events = self.events[k]
            pn = self.pn

            def handler(state, pn=pn, events=events):
                events.append((pn, state))
            packet = QuicSentPacket(epoch=Epoch.ONE_RTT, in_flight=in_flight,
                                    is_ack_eliciting=ack_eliciting, is_crypto_packet=crypto,
                                    packet_number=pn, packet_type=None, sent_time=now,
                                    sent_bytes=size, delivery_handlers=[(handler, ())])
            rec.on_packet_sent(packet=packet, space=self.spaces[k][space])
        self.pn += 1
        self.check()

    def ack(self, space: int, ranges, delay: float, now: float):
        for k, rec in enumerate(self.recs):
            rs = RangeSet()
            for a, b in ranges:
                rs.add(a, b)
            rec.on_ack_received(ack_rangeset=rs, ack_delay=delay, now=now,
                                space=self.spaces[k][space])
        self.check()

    def timer(self):
        t = [rec.get_loss_detection_time(amplification_limited=False) for rec in self.recs]
        assert t[0] == pytest.approx(t[1]) if t[0] is not None else t[1] is None
        if t[0] is not None:
            for rec in self.recs:
                rec.on_loss_detection_timeout(now=t[0])
        self.check()
        return t[0]

    def check(self):
        a, b = self.recs
        assert self.events[0] == self.events[1]
        assert a.bytes_in_flight == b.bytes_in_flight
        assert self.probes[0] == self.probes[1]
        for name in ("_rtt_latest", "_rtt_smoothed", "_rtt_variance", "_rtt_min", "_pto_count"):
            assert getattr(a, name) == pytest.approx(getattr(b, name)), name
        assert a.get_probe_timeout() == pytest.approx(b.get_probe_timeout())
        ta = a.get_loss_detection_time(amplification_limited=False)
        tb = b.get_loss_detection_time(amplification_limited=False)
        assert (ta is None) == (tb is None) and (ta is None or ta == pytest.approx(tb))
        for k, space in enumerate(self.spaces[0]):
            assert sorted(space.sent_packets) == b.log_for(self.spaces[1][k]).packet_numbers()
            assert space.ack_eliciting_in_flight == \
                b.log_for(self.spaces[1][k]).ack_eliciting_in_flight


step = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 2), st.integers(50, 1300), st.booleans(),
              st.booleans(), st.booleans(), st.integers(1, 30)),
    st.tuples(st.just("ack"), st.integers(0, 2), st.lists(st.tuples(st.integers(0, 60),
                                                                     st.integers(1, 8)),
                                                           min_size=1, max_size=5),
              st.integers(0, 40), st.integers(1, 80)),
    st.tuples(st.just("timer")),
    st.tuples(st.just("confirm")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, min_size=1, max_size=80))
def test_recovery_delivers_as_aioquics_does(steps):
    pair = Pair()
    now = 1.0
    for s in steps:
        if s[0] == "send":
            _, space, size, eliciting, in_flight, crypto, dt = s
            now += dt / 1000
            pair.send(space, now, size, eliciting, in_flight, crypto)
        elif s[0] == "ack":
            _, space, ranges, delay, dt = s
            if pair.pn == 0:
                continue
            now += dt / 1000
            rs = [(min(a, pair.pn - 1), min(a, pair.pn - 1) + n) for a, n in ranges]
            pair.ack(space, rs, delay / 1000, now)
        elif s[0] == "timer":
            t = pair.timer()
            if t is not None:
                now = max(now, t)
        else:
            for rec in pair.recs:
                rec.handshake_confirmed = True
            pair.check()


def test_discard_space_and_reschedule():
    pair = Pair()
    for i in range(5):
        pair.send(0, 1.0 + i / 100, 1200, True, True, i % 2 == 0)
    for i in range(4):
        pair.send(2, 1.1 + i / 100, 1200, True, True, False)
    for k, rec in enumerate(pair.recs):
        rec.reschedule_data(now=1.2)
    pair.check()
    for k, rec in enumerate(pair.recs):
        rec.discard_space(pair.spaces[k][0])
    pair.check()
    for k, rec in enumerate(pair.recs):
        rec.handshake_confirmed = True
        rec.reschedule_data(now=1.3)
    pair.check()


# -- the controllers ------------------------------------------------------------------------------
def test_reno_slow_start_halving_and_avoidance():
    cc = quic_cc.Controller(max_datagram_size=1200, algorithm="reno")
    assert cc.congestion_window == 12000 and cc.ssthresh is None
    for _ in range(10):
        cc.report_sent(1200)
    for i in range(10):
        cc.report_acked(1200, 1.0, 1.1)
    assert cc.congestion_window == 24000 and cc.bytes_in_flight == 0
    cc.report_sent(2400)
    cc.report_lost(2400, 2, 1.2, 1.3)
    assert cc.congestion_window == 12000 and cc.ssthresh == 12000 and cc.bytes_in_flight == 0
    cc.report_lost(0, 1, 1.25, 1.35)          # sent before the recovery began: no second cut
    assert cc.congestion_window == 12000
    cc.report_acked(1200, 1.2, 1.4)            # sent before recovery: no growth
    assert cc.congestion_window == 12000
    for _ in range(10):
        cc.report_acked(1200, 1.5, 1.6)        # one window acknowledged: one datagram more
    assert cc.congestion_window == 13200
    cc.report_persistent_congestion()
    assert cc.congestion_window == 2400


def test_cubic_backs_off_by_beta_and_grows_back_past_w_max():
    cc = quic_cc.Controller(max_datagram_size=1200, algorithm="cubic")
    for _ in range(90):
        cc.report_acked(1200, 1.0, 1.01)
    w = cc.congestion_window
    cc.report_lost(1200, 1, 1.02, 1.05)
    assert cc.congestion_window == int(w * 0.7)
    now = 1.1
    grown = []
    for _ in range(6000):                                   # K = cbrt(100 x 0.3 / 0.4) = 4.2 s
        now += 0.001
        cc.report_acked(1200, now - 0.01, now, 0.01)
        grown.append(cc.congestion_window)
    assert grown == sorted(grown)                          # never shrinks without loss
    assert grown[-1] > w                                   # past W_max after the plateau


def test_compiled_brutal_window_and_pacing_as_the_spec():
    b = quic_cc.Controller(max_datagram_size=1200, algorithm="brutal", bps=10_000_000)
    assert b.congestion_window == quic_cc.INITIAL_WINDOW_BRUTAL == 10240
    b.report_rtt(100.0, 0.1)
    assert b.congestion_window == int(10_000_000 * 0.1 * 2)   # ackRate 1 with < 50 samples
    assert b.pacing_rate(100.0) == 10_000_000
    for _ in range(60):
        b.report_sent(1200)
        b.report_acked(1200, 100.4, 100.5)
    b.report_lost(0, 40, 100.4, 100.5, 0.1)                   # 60 / 100 -> floored at 0.8
    assert b.ack_rate(100.6) == pytest.approx(0.8)
    assert b.pacing_rate(100.6) == pytest.approx(10_000_000 / 0.8)
    assert b.congestion_window == int(10_000_000 * 0.1 * 2 / 0.8)
    b.report_lost(0, 5, 100.4, 100.5, 0.1)
    b.report_acked(0, 100.4, 100.5)
    b.report_persistent_congestion()                            # Brutal does not back off
    assert b.congestion_window == int(10_000_000 * 0.1 * 2 / 0.8)
    assert b.ack_rate(110.0) == 1.0                             # old slots expire
    for _ in range(45):
        b.report_acked(0, 200.0, 200.2)
    b.report_lost(0, 5, 200.0, 200.2, 0.1)                     # 45 / 50 = 0.9
    assert b.ack_rate(200.3) == pytest.approx(0.9)


def test_recovery_switches_to_brutal_and_paces_at_its_rate():
    rec = OurRecovery(initial_rtt=0.1, max_datagram_size=1200,
                      peer_completed_address_validation=True, send_probe=lambda: None)
    rec.spaces = [QuicPacketSpace(is_application_data=True)]
    rec.use_brutal(1_200_000, 5.0)
    assert rec._cc.algorithm == "brutal" and rec._cc.bps == 1_200_000
    assert rec._pacer.packet_time == pytest.approx(1200 / 1_200_000)
    # a full bucket lets a burst go, then packets are spaced packet_time apart
    now = 6.0
    sent = 0
    while rec._pacer.next_send_time(now) is None and sent < 100:
        rec._pacer.update_after_send(now)
        sent += 1
    assert 2 <= sent <= 16
    assert rec._pacer.next_send_time(now) == pytest.approx(now + 0.001)


def test_a_rate_above_one_packet_per_microsecond_still_sends_bursts():
    """Above mds bytes per microsecond the packet time stays at its 1 us floor; the bucket
    must still hold a burst of packets of that time (it held less than one, and each
    wake-up of the loop sent one packet)."""
    rec = OurRecovery(initial_rtt=0.1, max_datagram_size=1200,
                      peer_completed_address_validation=True, send_probe=lambda: None)
    rec.spaces = [QuicPacketSpace(is_application_data=True)]
    rec.use_brutal(100_000_000_000, 5.0)
    assert rec._pacer.packet_time == pytest.approx(1e-6)
    now = 6.0
    sent = 0
    while rec._pacer.next_send_time(now) is None and sent < 100:
        rec._pacer.update_after_send(now)
        sent += 1
    assert 2 <= sent <= 16, sent


@pytest.mark.parametrize("bps, burst", [(1_200_000, 16), (12_000_000, 16), (24_000_000, 20),
                                        (48_000_000, 40), (76_800_000, 64), (1_000_000_000, 64)])
def test_a_pacer_burst_is_a_millisecond_of_the_rate_between_16_and_64_packets(bps, burst):
    """The burst a full bucket lets go: about 1 ms of data at the pacing rate (as Linux's TSO
    autosizing), never under 16 packets (what a slow path always had) nor over 64."""
    pacer = quic_cc.Pacer(max_datagram_size=1200)
    pacer.set_pacing(bps, 64 << 20)            # a window far larger than any burst
    now = 6.0
    sent = 0
    while pacer.next_send_time(now) is None and sent < 200:
        pacer.update_after_send(now)
        sent += 1
    assert abs(sent - burst) <= 1, (bps, sent)
    # a window of 8 packets still bounds the burst to a quarter of it
    pacer = quic_cc.Pacer(max_datagram_size=1200)
    pacer.set_pacing(bps, 8 * 1200)
    sent = 0
    while pacer.next_send_time(now) is None and sent < 200:
        pacer.update_after_send(now)
        sent += 1
    assert sent <= 3, (bps, sent)


def test_slow_start_ends_when_the_rtt_rises():
    """HyStart++'s delay increase: a round of RTTs 10 ms above the last round's minimum ends
    slow start (ssthresh set) while the window is still growing, for NewReno and CUBIC."""
    for algorithm in ("reno", "cubic"):
        cc = quic_cc.Controller(max_datagram_size=1200, algorithm=algorithm)
        now = 1.0
        for _ in range(10):                    # one round at 20 ms
            now += 0.002
            cc.report_rtt(now, 0.02, latest_rtt=0.02)
        now += 0.03
        for _ in range(7):                     # the next round at 30 ms: 7 samples are too few
            now += 0.001
            cc.report_rtt(now, 0.02, latest_rtt=0.03)
        assert cc.ssthresh is None, algorithm
        cc.report_rtt(now + 0.001, 0.02, latest_rtt=0.03)
        assert cc.ssthresh == cc.congestion_window, algorithm
        cc2 = quic_cc.Controller(max_datagram_size=1200, algorithm=algorithm)
        for i in range(40):                    # a steady RTT never ends it
            cc2.report_rtt(1.0 + i * 0.005, 0.02, latest_rtt=0.02)
        assert cc2.ssthresh is None


def test_the_cc_env_picks_the_controller(monkeypatch):
    kw = dict(initial_rtt=0.1, max_datagram_size=1200, peer_completed_address_validation=True,
              send_probe=lambda: None)
    monkeypatch.setenv("FASTPATH_QUIC_CC", "cubic")
    assert aioquic_seam.make_recovery(**kw)._cc.algorithm == "cubic"
    monkeypatch.setenv("FASTPATH_QUIC_CC", "reno")
    assert aioquic_seam.make_recovery(congestion_control_algorithm="cubic", **kw)._cc.algorithm \
        == "reno"
    monkeypatch.delenv("FASTPATH_QUIC_CC")
    assert aioquic_seam.make_recovery(**kw)._cc.algorithm == "reno"


@pytest.mark.parametrize("algorithm", ["reno", "cubic"])
def test_transfer_under_loss_with_each_controller(tls_files, monkeypatch, algorithm):
    """1 MiB over 5 % loss with reordering, SHA-256 equal, with either default controller."""
    import random
    monkeypatch.setenv("FASTPATH_QUIC_CC", algorithm)
    client = QuicConnection(configuration=QuicConfiguration(is_client=True, alpn_protocols=["h3"],
                                                            verify_mode=0))
    server = server_for(client, tls_files)
    assert client._loss._cc.algorithm == algorithm
    rnd = random.Random(7)

    def lossy(now):
        for src, dst, addr in ((client, server, ("1.2.3.4", 1)),
                               (server, client, ("5.6.7.8", 2))):
            out = [d for d, _ in src.datagrams_to_send(now) if rnd.random() >= 0.05]
            if len(out) > 1 and rnd.random() < 0.3:
                out[0], out[-1] = out[-1], out[0]
            for data in out:
                dst.receive_datagram(data, addr, now)

    payload = hashlib.sha256(b"y").digest() * 32768
    got = deliver(client, server, payload, 0.003, 20000, lossy)
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
