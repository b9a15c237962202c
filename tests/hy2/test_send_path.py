"""The compiled send path (fastpath.hy2.quic.stream_send, fastpath.hy2.quic.send_path) against aioquic.

- ``StreamSendBuffer`` and aioquic's ``QuicStreamSender`` run the same random operations
  (writes, frames of random room and credit, acknowledgements and losses of frames sent, FIN,
  reset) and must give the same frames and the same state;
- the ACK and STREAM frames the compiled writers put in a packet are read back with aioquic's
  parser (``pull_ack_frame``; the STREAM fields with aioquic's ``Buffer``) and must say what was
  meant: ranges (the newest that fit), delay, stream ID, offset, length, data, FIN;
- a fastpath server connection in memory sends random streams (sizes, FIN, several streams, a
  DATAGRAM now and then) through random loss to an aioquic client, which must receive exactly the
  bytes written, in order, with FIN, while the compiled loop built the packets.
"""
from __future__ import annotations

import hashlib
import random

import pytest
from aioquic.buffer import Buffer
from aioquic.quic import events as qe
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import pull_ack_frame
from aioquic.quic.packet_builder import QuicDeliveryState
from aioquic.quic.rangeset import RangeSet
from aioquic.quic.stream import QuicStreamSender
from aioquic.tls import CipherSuite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastpath.hy2.quic.quic_connection  # noqa: F401  (installs the send path)
from fastpath.hy2.quic import aioquic_seam, send_path
from fastpath.hy2.quic.stream_send import StreamSendBuffer

ACKED, LOST = QuicDeliveryState.ACKED, QuicDeliveryState.LOST


@pytest.fixture(autouse=True, scope="module")
def compiled_send_path():
    """These tests are about the compiled path: on for them, whatever FASTPATH_QUIC_SENDPATH
    says (a suite run with it off still tests it here), then back as it was."""
    before = aioquic_seam.installed_send_path()
    aioquic_seam.install_send_path("fastpath")
    yield
    aioquic_seam.install_send_path(before)


def crypto_pair() -> CryptoPair:
    pair = CryptoPair()
    pair.send.setup(cipher_suite=CipherSuite.AES_128_GCM_SHA256, secret=bytes(range(32)),
                    version=1)
    pair.recv.setup(cipher_suite=CipherSuite.AES_128_GCM_SHA256, secret=bytes(32), version=1)
    return pair


def state(sender) -> tuple:
    return (sender.buffer_is_empty, sender.highest_offset, sender.is_finished,
            sender.reset_pending, sender.next_offset, sender._buffer_start, sender._buffer_stop,
            sender._buffer_fin)


# -- the sender against aioquic's -----------------------------------------------------------------
ops = st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(0, 5000), st.booleans()),
    st.tuples(st.just("frame"), st.integers(-5, 3000), st.one_of(st.none(), st.integers(0, 40000))),
    st.tuples(st.just("deliver"), st.integers(0, 1000), st.booleans()),
    st.tuples(st.just("reset"), st.integers(0, 99), st.booleans()),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_sender_matches_aioquics(operations):
    ours, theirs = StreamSendBuffer(4), QuicStreamSender(4, True)
    outstanding: list[tuple[int, int, bool]] = []
    written = 0
    for op in operations:
        kind = op[0]
        if kind == "write":
            _, size, end = op
            data = bytes((written + i) % 251 for i in range(size))
            results = []
            for s in (ours, theirs):
                try:
                    s.write(data, end_stream=end)
                    results.append(None)
                except RuntimeError as exc:
                    results.append(str(exc))
            assert results[0] == results[1]
            if results[0] is None:
                written += size
        elif kind == "frame":
            _, size, max_offset = op
            if theirs._reset_error_code is not None:
                continue
            a, b = ours.get_frame(size, max_offset), theirs.get_frame(size, max_offset)
            assert (a is None) == (b is None)
            if a is not None:
                assert (a.data, a.offset, a.fin) == (b.data, b.offset, b.fin)
                outstanding.append((a.offset, a.offset + len(a.data), a.fin))
        elif kind == "deliver":
            _, index, acked = op
            if not outstanding:
                continue
            frame = outstanding.pop(index % len(outstanding))
            for s in (ours, theirs):
                s.on_data_delivery(ACKED if acked else LOST, *frame)
        else:
            _, code, acked = op
            for s in (ours, theirs):
                s.reset(code)
            if acked and ours.reset_pending:
                f1, f2 = ours.get_reset_frame(), theirs.get_reset_frame()
                assert (f1.error_code, f1.final_size, f1.stream_id) == (
                    f2.error_code, f2.final_size, f2.stream_id)
                for s in (ours, theirs):
                    s.on_reset_delivery(ACKED)
        assert state(ours) == state(theirs), op


def test_sender_drops_acknowledged_bytes():
    s = StreamSendBuffer(0)
    for _ in range(64):
        s.write(bytes(16384))
        frame = s.get_frame(16384)
        s.on_data_delivery(ACKED, frame.offset, frame.offset + len(frame.data), False)
    assert s._buffer_start == s._buffer_stop == 64 * 16384


# -- frames read back with aioquic's parser --------------------------------------------------------
range_sets = st.lists(st.tuples(st.integers(0, 1 << 40), st.integers(1, 5000)),
                      min_size=1, max_size=300)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(range_sets, st.integers(0, (1 << 30)), st.sampled_from([1252, 200, 80]))
def test_ack_frame_reads_back(pairs, delay, datagram_size):
    ranges = RangeSet()
    for start, length in pairs:
        ranges.add(start, start + length)
    frame, count = send_path.ack_frame_bytes(ranges, delay, crypto_pair(), datagram_size)
    assert frame[0] == 0x02
    assert len(frame) <= datagram_size - 16 - 11
    buf = Buffer(data=frame[1:])
    got, got_delay = pull_ack_frame(buf)
    assert buf.eof()
    assert got_delay == delay
    assert count >= 1
    assert list(got) == list(ranges)[-count:]     # the newest ranges, all that fit


def pull_stream_frame(frame: bytes):
    buf = Buffer(data=frame)
    ftype = buf.pull_uint_var()
    assert ftype & 0xF8 == 0x08 and ftype & 0x02, hex(ftype)
    sid = buf.pull_uint_var()
    offset = buf.pull_uint_var() if ftype & 0x04 else 0
    length = buf.pull_uint_var()
    data = buf.pull_bytes(length)
    assert buf.eof()
    return sid, offset, data, bool(ftype & 0x01)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, (1 << 62) - 1), st.lists(st.integers(0, 3000), min_size=1, max_size=8),
       st.booleans(), st.sampled_from([1252, 300, 60, 30]), st.integers(0, 20000),
       st.lists(st.tuples(st.integers(0, 9), st.booleans()), max_size=8))
def test_stream_frames_read_back(sid, sizes, fin, datagram_size, credit, deliveries):
    sender, mirror = StreamSendBuffer(sid), QuicStreamSender(sid, True)
    payload = random.Random(len(sizes)).randbytes(sum(sizes))
    pos = 0
    for i, size in enumerate(sizes):
        end = fin and i == len(sizes) - 1
        sender.write(payload[pos:pos + size], end_stream=end)
        mirror.write(payload[pos:pos + size], end_stream=end)
        pos += size
    sent = []
    for _ in range(1000):
        frame, raised, handler_args = send_path.stream_frame_bytes(sender, credit, crypto_pair(),
                                                                   datagram_size)
        if not frame:
            assert raised == 0 and handler_args == []
            break
        got_sid, offset, data, got_fin = pull_stream_frame(frame)
        assert got_sid == sid
        assert data == payload[offset:offset + len(data)]
        assert offset + len(data) <= credit
        assert got_fin == (fin and offset + len(data) == len(payload))
        assert handler_args == [(offset, offset + len(data), got_fin)]
        sent.append(handler_args[0])
        if deliveries:
            index, acked = deliveries.pop(0)
            delivered = sent.pop(index % len(sent))
            sender.on_data_delivery(ACKED if acked else LOST, *delivered)
    # what was sent and not lost covers the stream up to the credit
    assert sender.highest_offset == min(len(payload), credit) or not sent


# -- a whole connection: fastpath server, aioquic client, random loss ------------------------------
@pytest.fixture(scope="module")
def cert_key(tmp_path_factory):
    from fastpath.supervisor.bootstrap import ensure_certificate
    return tuple(map(str, ensure_certificate(tmp_path_factory.mktemp("tls"))))


def run_transfer(cert_key, sizes_per_stream, loss, seed, datagrams=0, window=1 << 20,
                 actions=None, skip_streams=(), server_events=None, client_events=None):
    from bench.send_path_micro import exchange, handshake, pair
    rng = random.Random(seed)
    client, server = pair(*cert_key, window=window)
    now = 1.0
    handshake(client, server, now)
    streams = []
    for _ in sizes_per_stream:
        sid = client.get_next_available_stream_id()
        client.send_stream_data(sid, b"x")
        streams.append(sid)
    now = exchange(client, server, now)
    while server.next_event() is not None:
        pass
    want = {}
    for sid, sizes in zip(streams, sizes_per_stream):
        blob = rng.randbytes(sum(sizes))
        want[sid] = blob
        pos = 0
        for i, size in enumerate(sizes):
            server.send_stream_data(sid, blob[pos:pos + size], end_stream=i == len(sizes) - 1)
            pos += size
    for i in range(datagrams):
        assert server.queue_datagram(bytes([i]) * 100)
    got = {sid: bytearray() for sid in streams}
    ended = set()
    datagrams_got = 0
    fast_before = send_path.counters()[0]
    expected = set(streams) - {streams[i] for i in skip_streams}
    for step in range(20000):
        if expected <= ended and datagrams_got >= datagrams * (1 - loss) * 0.5:
            break
        if actions and step in actions:
            actions[step](server, streams)
        now += 0.002
        for data, _ in server.datagrams_to_send(now):
            if rng.random() >= loss:
                client.receive_datagram(data, ("10.0.0.1", 1), now)
        event = client.next_event()
        while event is not None:
            if isinstance(event, qe.StreamDataReceived):
                got[event.stream_id] += event.data
                if event.end_stream:
                    ended.add(event.stream_id)
            elif isinstance(event, qe.DatagramFrameReceived):
                datagrams_got += 1
            if client_events is not None:
                client_events.append(event)
            event = client.next_event()
        for data, _ in client.datagrams_to_send(now):
            if rng.random() >= loss:
                server.receive_datagram(data, ("10.0.0.2", 2), now)
        event = server.next_event()
        while event is not None:
            if server_events is not None:
                server_events.append(event)
            event = server.next_event()
        for conn in (server, client):
            timer = conn.get_timer()
            if timer is not None and timer <= now:
                conn.handle_timer(now)
    assert expected <= ended
    for sid in expected:
        assert bytes(got[sid]) == want[sid], sid
    return send_path.counters()[0] - fast_before, datagrams_got


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.integers(0, 60000), min_size=1, max_size=4), min_size=1, max_size=3),
       st.sampled_from([0.0, 0.02, 0.1]), st.integers(0, 1 << 30), st.integers(0, 20))
def test_connection_delivers_through_loss(cert_key, sizes_per_stream, loss, seed, datagrams):
    assert aioquic_seam.installed_send_path() == "fastpath"
    fast, _ = run_transfer(cert_key, sizes_per_stream, loss, seed, datagrams)
    if sum(map(sum, sizes_per_stream)) > 20000:
        assert fast > 0, "the compiled loop built no packet"


def test_small_window_and_many_streams(cert_key):
    # the peer's credit (64 KiB per stream) bounds each stream; MAX_STREAM_DATA moves it on
    fast, _ = run_transfer(cert_key, [[300000]] * 6, 0.01, 7, window=64 << 10)
    assert fast > 200


def test_switch_off_keeps_aioquics_sender(cert_key):
    try:
        aioquic_seam.install_send_path("aioquic")
        assert aioquic_seam.installed_send_path() == "aioquic"
        from bench.send_path_micro import pair
        _client, server = pair(*cert_key)
        stream = server._get_or_create_stream_for_send(1)
        assert type(stream.sender) is QuicStreamSender
        before = send_path.counters()
        run_transfer(cert_key, [[50000]], 0.0, 1)
        assert send_path.counters() == before      # nothing went through the compiled loop
    finally:
        aioquic_seam.install_send_path("fastpath")


def test_unusual_frames_go_through_aioquics_loop_and_back(cert_key):
    """A PING on request, a key update, a stream reset and a STOP_SENDING in the middle of a
    transfer: aioquic's loop writes the first two, the compiled loop the stream ends, and the
    other streams arrive whole."""
    def ping(server, streams):
        server.send_ping(7)

    def key_update(server, streams):
        server.request_key_update()

    def reset(server, streams):
        server.reset_stream(streams[1], 0x10C)

    def stop(server, streams):
        server.stop_stream(streams[2], 0x10C)

    events, client_events = [], []
    fallbacks = send_path.counters()[1]
    fast, _ = run_transfer(cert_key, [[400000], [400000], [400000]], 0.01, 3,
                           actions={5: ping, 20: key_update, 40: reset, 60: stop},
                           skip_streams=(1,), server_events=events, client_events=client_events)
    assert send_path.counters()[1] - fallbacks >= 2
    assert any(isinstance(e, qe.StreamReset) and e.error_code == 0x10C for e in client_events)
    assert any(isinstance(e, qe.StopSendingReceived) and e.error_code == 0x10C
               for e in client_events)
    assert fast > 200
    assert any(isinstance(e, qe.PingAcknowledged) and e.uid == 7 for e in events)


def test_stream_ends_are_written_by_the_compiled_loop(cert_key):
    """Short streams (the peer opens one, both sides FIN it, ours also STOP_SENDING, one of
    them reset): the compiled loop writes STOP_SENDING, RESET_STREAM and MAX_STREAMS and
    discards the finished streams, without handing a single write to aioquic's loop, and the
    peer may keep opening streams past its initial limit."""
    from bench.send_path_micro import exchange, handshake, pair
    client, server = pair(*cert_key)
    now = 1.0
    handshake(client, server, now)
    limit = server._local_max_streams_bidi.value
    now = exchange(client, server, now, 4, 0.005)
    fallbacks = send_path.counters()[1]
    resets = stops = 0
    for i in range(limit * 2):
        sid = client.get_next_available_stream_id()
        client.send_stream_data(sid, b"q" * 32, end_stream=True)
        now = exchange(client, server, now, 4, 0.005)
        if i % 5 == 0:
            server.reset_stream(sid, 0x10C)
        else:
            server.send_stream_data(sid, b"a" * 32, end_stream=True)
        server.stop_stream(sid, 0x10C)
        now = exchange(client, server, now, 4, 0.005)
        while (e := client.next_event()) is not None:
            resets += isinstance(e, qe.StreamReset)
            stops += isinstance(e, qe.StopSendingReceived)
        while server.next_event() is not None:
            pass
    assert send_path.counters()[1] == fallbacks
    assert resets == len(range(0, limit * 2, 5))
    assert stops == limit * 2
    assert len(server._streams) <= 1               # the finished ones are discarded
    assert server._local_max_streams_bidi.value >= limit * 2
