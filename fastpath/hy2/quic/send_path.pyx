"""The 1-RTT send loop in C: the frames a Hysteria 2 connection sends at data rate.

Why: with the compiled packet builder in place, the largest cost left in a download is
aioquic's ``_write_application`` (a Python loop per packet that checks a dozen kinds of frame
and writes each field with a Python call) and the stream sender behind ``_write_stream_frame``.
``write_application`` here does the same work for the frames that come at data rate, written
from RFC 9000 (sections 13.2 and 19.3 ACK, 19.8 STREAM, 19.9/19.10 MAX_DATA and
MAX_STREAM_DATA, RFC 9221 DATAGRAM), straight into the compiled builder's memory:

- per packet, in aioquic's order: ACK when one is due (with a PING every eighth packet whose
  ACK has more than one range, so the peer acknowledges our ACKs), MAX_DATA, MAX_STREAMS,
  MAX_STREAM_DATA (Hysteria 2's sliding window, as ``Hy2QuicConnection._write_stream_limits``),
  DATAGRAM frames, then for each stream in round-robin order its STOP_SENDING and
  RESET_STREAM when pending and STREAM frames from its compiled sender (``StreamSendBuffer``),
  bounded by the packet's room, the peer's stream and connection credit;
- the streams finished both ways are discarded first (the opening and closing of streams:
  without this, every write with a stream ending in it, nearly all of them under short
  connections, went to aioquic's Python loop);
- pacing and the packets' registration go through aioquic's recovery interface
  (``_loss._pacer.next_send_time``/``update_after_send``, ``_loss.on_packet_sent``), so any
  recovery implementation with that interface plugs in (fastpath compiles recovery separately).

Everything else (the handshake and its crypto spaces, 0-RTT, path validation, HANDSHAKE_DONE,
NEW/RETIRE_CONNECTION_ID, STREAMS_BLOCKED, PING on request or as a probe, 1-RTT CRYPTO,
qlog) stays aioquic's: the loop
checks, before each packet, whether any of it is pending, and if so hands the rest of the call to
aioquic's own ``_write_application``, which picks up where this one stopped.  Every aioquic
internal read here is listed in ``fastpath/hy2/quic/aioquic_seam.py`` and checked by
``tests/hy2/test_aioquic_seam.py``.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicPacketType
from aioquic.quic.packet_builder import QuicPacketBuilderStop
from aioquic.quic.rangeset import RangeSet
from aioquic.tls import Epoch

from fastpath.hy2.quic.quic_builder cimport QuicPacketBuilder, SentPacket
from fastpath.hy2.quic.packet_protection cimport put_varint as _put_varint
from fastpath.hy2.quic.stream_send cimport StreamSendBuffer
from fastpath.hy2.wire.varint cimport varint_size as _varint_size

cdef object _aioquic_write_application = QuicConnection._write_application
cdef object _aioquic_flush_builder = QuicConnection._flush_builder
cdef object _ONE_RTT = Epoch.ONE_RTT
cdef object _HANDSHAKE = Epoch.HANDSHAKE
cdef object _INITIAL = Epoch.INITIAL
cdef object _ONE_RTT_PACKET = QuicPacketType.ONE_RTT
cdef object _RangeSet = RangeSet

cdef enum:
    T_PING = 0x01
    T_ACK = 0x02
    T_RESET_STREAM = 0x04
    T_STOP_SENDING = 0x05
    T_MAX_DATA = 0x10
    T_MAX_STREAM_DATA = 0x11
    T_DATAGRAM_LEN = 0x31
    UINT_VAR_MAX = 8
    ACK_CAPACITY = 1 + 4 * UINT_VAR_MAX
    LIMIT_CAPACITY = 1 + UINT_VAR_MAX
    STREAM_LIMIT_CAPACITY = 1 + 2 * UINT_VAR_MAX
    STOP_SENDING_CAPACITY = 1 + 2 * UINT_VAR_MAX
    RESET_STREAM_CAPACITY = 1 + 3 * UINT_VAR_MAX

cdef tuple _NO_UIDS = ((),)
cdef tuple _NO_ARGS = ()

# counters for tests and profiles: packets this loop built, and calls handed to aioquic
cdef public long long fp_send_fast_packets = 0
cdef public long long fp_send_fallbacks = 0


def counters():
    """(packets built here, write calls handed to aioquic) since the process started."""
    return fp_send_fast_packets, fp_send_fallbacks


cdef Py_ssize_t write_ack_ranges(QuicPacketBuilder builder, list ranges, uint64_t delay,
                                 uint8_t *p) except -1:
    """Writes the fields of an ACK frame (RFC 9000 19.3: largest acknowledged, ACK delay, range
    count, first range, then gap / length pairs going down) for ``ranges`` (ascending, disjoint
    ``range`` objects) at ``p``, as many of the newest ranges as the packet has room for;
    returns how many went in."""
    cdef Py_ssize_t n = len(ranges), i, count
    cdef int64_t room = builder.buffer_room() - (p - (builder._mem.pos))
    cdef int64_t size, extra
    cdef int64_t largest, smallest, r_start, r_stop
    r = ranges[n - 1]
    r_start = r.start
    r_stop = r.stop
    largest = r_stop - 1
    size = (_varint_size(largest) + _varint_size(delay) + _varint_size(n - 1)
            + _varint_size(largest - r_start))
    count = 1
    smallest = r_start
    i = n - 2
    while i >= 0:                       # how many older ranges fit
        r = ranges[i]
        r_start = r.start
        r_stop = r.stop
        extra = _varint_size(smallest - r_stop - 1) + _varint_size(r_stop - 1 - r_start)
        if size + extra > room:
            break
        size += extra
        smallest = r_start
        count += 1
        i -= 1
    r = ranges[n - 1]
    p = _put_varint(p, largest)
    p = _put_varint(p, delay)
    p = _put_varint(p, count - 1)
    p = _put_varint(p, largest - <int64_t>r.start)
    smallest = r.start
    for i in range(n - 2, n - 1 - count, -1):
        r = ranges[i]
        r_start = r.start
        r_stop = r.stop
        p = _put_varint(p, smallest - r_stop - 1)
        p = _put_varint(p, r_stop - 1 - r_start)
        smallest = r_start
    builder.close_frame(p)
    return count


cdef int _write_ack(conn, QuicPacketBuilder builder, space, double now) except -1:
    cdef double delay_s = now - space.largest_received_time
    cdef int64_t delay = <int64_t>(delay_s * 1000000)
    cdef int exponent = conn._local_ack_delay_exponent
    if delay < 0:
        delay = 0
    delay >>= exponent
    queue = space.ack_queue
    ranges = queue._RangeSet__ranges if type(queue) is _RangeSet else list(queue)
    cdef uint8_t *p = builder.open_frame(T_ACK, ACK_CAPACITY, conn._on_ack_delivery,
                                         (space, space.largest_received_packet))
    cdef Py_ssize_t count = write_ack_ranges(builder, ranges, <uint64_t>delay, p)
    space.ack_at = None
    if count > 1 and builder._packet_number % 8 == 0:
        # ACK-of-ACK trigger: an ack-eliciting frame so the peer acknowledges this ACK and we
        # can stop repeating old ranges (RFC 9000 section 13.2.4)
        builder.open_frame(T_PING, 1, conn._on_ping_delivery, _NO_UIDS)
    return 0


cdef bint _unusual(conn, network_path, crypto_stream) except -1:
    """Something is pending that only aioquic's loop writes (see the module docstring)."""
    if conn._handshake_done_pending or conn._probe_pending or conn._ping_pending:
        return True
    if not (network_path.is_validated or network_path.local_challenge_sent):
        return True
    if network_path.remote_challenges:
        return True
    if conn._retire_connection_ids or conn._streams_blocked_pending:
        return True
    if not crypto_stream.sender.buffer_is_empty:
        return True
    for cid in conn._host_cids:
        if not cid.was_sent:
            return True
    for stream in conn._streams_queue:
        if type(stream.sender) is not StreamSendBuffer:
            return True
    return False


cdef int _discard_finished(conn) except -1:
    """Forget the streams finished both ways, as aioquic's loop does before it writes their
    frames (RFC 9000 section 4.6: each one the peer opened lets it open one more, announced by
    MAX_STREAMS in ``_write_limits``).  A stream only finishes when a datagram is received or
    the application calls the connection, so once per call is where aioquic would do it too:
    its first packet."""
    cdef list queue = conn._streams_queue
    cdef list kept = None
    cdef Py_ssize_t i, n = len(queue)
    cdef StreamSendBuffer sender
    cdef bint is_client = conn._is_client
    cdef int64_t sid
    for i in range(n):
        stream = queue[i]
        sender = <StreamSendBuffer>stream.sender
        if sender.is_finished and stream.receiver.is_finished:
            if kept is None:
                kept = queue[:i]
            sid = sender._sid
            conn._streams.pop(sid, None)
            if ((sid & 1) == 0) != is_client:     # opened by the peer
                if sid & 2:
                    conn._local_max_streams_uni.value += 1
                else:
                    conn._local_max_streams_bidi.value += 1
        elif kept is not None:
            kept.append(stream)
    if kept is not None:
        conn._streams_queue = kept
    return 0


cdef int _write_limits(conn, QuicPacketBuilder builder) except -1:
    """MAX_DATA (aioquic's policy: double when half is used) and MAX_STREAM_DATA (Hysteria 2's
    sliding window over what was delivered, frozen while the consumer is full:
    ``Hy2QuicConnection._write_stream_limits`` does the same for aioquic's loop)."""
    cdef uint8_t *p
    cdef int64_t window, delivered, local
    limit = conn._local_max_data
    if limit.used * 2 > limit.value:
        limit.value *= 2
    if limit.value != limit.sent:
        p = builder.open_frame(T_MAX_DATA, LIMIT_CAPACITY, conn._on_connection_limit_delivery,
                               (limit,))
        builder.close_frame(_put_varint(p, limit.value))
        limit.sent = limit.value
    for limit in (conn._local_max_streams_bidi, conn._local_max_streams_uni):
        # aioquic's batching: only once the peer has fewer streams left to open (sent - used)
        # than the update would grant (value - sent)
        if limit.value != limit.sent and not (limit.sent - limit.used
                                              >= limit.value - limit.sent):
            p = builder.open_frame(limit.frame_type, LIMIT_CAPACITY,
                                   conn._on_connection_limit_delivery, (limit,))
            builder.close_frame(_put_varint(p, limit.value))
            limit.sent = limit.value
    held = conn._held
    window = conn._stream_window
    for stream in conn._streams.values():
        local = stream.max_stream_data_local
        if local and (not held or stream.stream_id not in held):
            delivered = stream.receiver.highest_offset
            if delivered + window // 2 > local:
                local = delivered + window
                stream.max_stream_data_local = local
        if stream.max_stream_data_local_sent != local:
            p = builder.open_frame(T_MAX_STREAM_DATA, STREAM_LIMIT_CAPACITY,
                                   conn._on_max_stream_data_delivery, (stream,))
            p = _put_varint(p, stream.stream_id)
            builder.close_frame(_put_varint(p, local))
            stream.max_stream_data_local_sent = local
    return 0


cdef int _write_datagrams(conn, QuicPacketBuilder builder) except -1:
    cdef bytes data
    cdef Py_ssize_t n
    cdef uint8_t *p
    pending = conn._datagrams_pending
    while pending:
        item = pending[0]
        data = item if type(item) is bytes else bytes(item)
        n = len(data)
        try:
            p = builder.open_frame(T_DATAGRAM_LEN, 1 + _varint_size(n) + n, None, None)
        except QuicPacketBuilderStop:
            break
        p = _put_varint(p, n)
        memcpy_bytes(p, data, n)
        builder.close_frame(p + n)
        pending.popleft()
    return 0


cdef inline void memcpy_bytes(uint8_t *p, bytes data, Py_ssize_t n) noexcept:
    memcpy(p, PyBytes_AS_STRING(data), n)


cdef inline int64_t _max_offset(StreamSendBuffer sender, int64_t credit, int64_t remote,
                                int64_t used) noexcept:
    """How far a stream may send: its own credit (``credit``, the peer's MAX_STREAM_DATA) and
    what is left of the connection's (``remote`` - ``used``) past what it has sent."""
    cdef int64_t room = sender.highest_offset + remote - used
    return credit if credit < room else room


cdef int _write_streams(conn, QuicPacketBuilder b) except -1:
    """STREAM frames from each stream in service order, each bounded by the packet's room, the
    stream's credit and what is left of the connection's; the streams that sent go to the end
    of the order (round robin, as aioquic)."""
    cdef StreamSendBuffer sender
    cdef int64_t remote = conn._remote_max_data
    cdef int64_t used = conn._remote_max_data_used, raised, total = 0
    cdef list queue = conn._streams_queue
    cdef list sent = None
    cdef uint8_t *p
    for stream in queue:
        sender = <StreamSendBuffer>stream.sender
        receiver = stream.receiver
        if receiver.stop_pending or sender.reset_pending:
            try:
                _write_stream_ends(b, sender, receiver)
            except QuicPacketBuilderStop:
                break                   # no room left in this packet: the next one
        if sender.buffer_is_empty or stream.is_blocked:
            continue
        raised = sender.write_frame(b, _max_offset(sender, stream.max_stream_data_remote,
                                                   remote, used))
        if raised > 0:
            used += raised
            total += raised
            if sent is None:
                sent = []
            sent.append(stream)
    if total:
        conn._remote_max_data_used = used
    if sent is not None and len(queue) > 1:
        # served streams to the end, in their order
        if len(sent) == len(queue):
            return 0
        served = set(sent)
        conn._streams_queue = [s for s in queue if s not in served] + sent
    return 0


cdef int _write_stream_ends(QuicPacketBuilder b, StreamSendBuffer sender, receiver) except -1:
    """STOP_SENDING (RFC 9000 19.5) and RESET_STREAM (19.4) for one stream, when pending; each
    is pending again if its packet is lost (the delivery handlers, as in aioquic)."""
    cdef uint8_t *p
    if receiver.stop_pending:
        p = b.open_frame(T_STOP_SENDING, STOP_SENDING_CAPACITY,
                         receiver.on_stop_sending_delivery, _NO_ARGS)
        p = _put_varint(p, <uint64_t>sender._sid)
        b.close_frame(_put_varint(p, <uint64_t>receiver._stop_error_code))
        receiver.stop_pending = False
    if sender.reset_pending:
        p = b.open_frame(T_RESET_STREAM, RESET_STREAM_CAPACITY, sender.on_reset_delivery,
                         _NO_ARGS)
        p = _put_varint(p, <uint64_t>sender._sid)
        p = _put_varint(p, <uint64_t>sender._reset_error_code)
        b.close_frame(_put_varint(p, <uint64_t>sender.highest_offset))
        sender.reset_pending = False
    return 0


def write_application(conn, builder, network_path, double now):
    """``QuicConnection._write_application`` for a Hysteria 2 connection: see the module
    docstring.  Hands the call to aioquic's when the builder is not fastpath's, outside 1-RTT
    after the handshake, with qlog on, or when anything unusual is pending.

    What makes a call unusual, and the connection and stream limits, can only change when a
    datagram is received, a timer fires or the application calls the connection, never while
    this loop builds packets: so they are checked (and MAX_DATA / MAX_STREAM_DATA written) once,
    in the first packet of the call, as aioquic's loop would have written them there too."""
    global fp_send_fast_packets, fp_send_fallbacks
    cdef QuicPacketBuilder b
    cdef bint first = True
    if (type(builder) is not QuicPacketBuilder or conn._quic_logger is not None
            or not conn._handshake_complete):
        fp_send_fallbacks += 1
        return _aioquic_write_application(conn, builder, network_path, now)
    crypto = conn._cryptos[_ONE_RTT]
    if not crypto.send.is_valid() or _unusual(conn, network_path, conn._crypto_streams[_ONE_RTT]):
        fp_send_fallbacks += 1
        return _aioquic_write_application(conn, builder, network_path, now)
    b = <QuicPacketBuilder>builder
    _discard_finished(conn)
    space = conn._spaces[_ONE_RTT]
    pacer = conn._loss._pacer
    next_send_time = pacer.next_send_time
    update_after_send = pacer.update_after_send
    datagrams = conn._datagrams_pending
    # One stream with nothing but data to send (a bulk transfer's case): its sender, its
    # credit and the connection's, read once for the call instead of once per packet (they
    # change only when a datagram is received, a timer fires or the application calls,
    # as above); the connection's credit used is written back at the end.
    cdef StreamSendBuffer one = None
    cdef int64_t credit = 0, remote = 0, used = 0, used_before = 0
    queue = conn._streams_queue
    if len(queue) == 1:
        stream = queue[0]
        one = <StreamSendBuffer>stream.sender
        if stream.receiver.stop_pending or one.reset_pending or stream.is_blocked:
            one = None
        else:
            credit = stream.max_stream_data_remote
            remote = conn._remote_max_data
            used = used_before = conn._remote_max_data_used
    try:
        while True:
            ack_at = space.ack_at
            if ack_at is None or ack_at >= now:
                pacing_at = next_send_time(now)
                if pacing_at is not None:
                    conn._pacing_at = pacing_at
                    break
            b.begin_packet(_ONE_RTT_PACKET, crypto)
            if ack_at is not None and ack_at <= now:
                _write_ack(conn, b, space, now)
            if first:
                _write_limits(conn, b)
                first = False
            if datagrams:
                _write_datagrams(conn, b)
            if one is None:
                _write_streams(conn, b)
            elif not one.buffer_is_empty:
                used += one.write_frame(b, _max_offset(one, credit, remote, used))
            if b.packet_empty():
                break
            fp_send_fast_packets += 1
            update_after_send(now)
    finally:
        if used != used_before:
            conn._remote_max_data_used = used
    return None


def flush_builder(conn, builder, network_path, peer_cid, double now):
    """``QuicConnection._flush_builder``: registers the packets built with recovery
    (``_loss.on_packet_sent``, the interface any recovery implementation offers), restarts the
    idle timer on the first ack-eliciting packet since the last one received (RFC 9000 10.1)
    and returns the datagrams for ``network_path``.  qlog, or aioquic's builder: aioquic's."""
    cdef QuicPacketBuilder b
    cdef list datagrams, packets, ret
    cdef SentPacket sp
    cdef Py_ssize_t total = 0
    cdef bint sent_handshake = False
    if type(builder) is not QuicPacketBuilder or conn._quic_logger is not None:
        return _aioquic_flush_builder(conn, builder, network_path, peer_cid, now)
    b = <QuicPacketBuilder>builder
    datagrams, packets = b.take_flush()
    if datagrams:
        conn._packet_number = b._packet_number
        on_packet_sent = conn._loss.on_packet_sent
        spaces = conn._spaces
        one_rtt_space = None
        now_obj = now
        for packet in packets:                  # the compiled builder's SentPacket records
            sp = <SentPacket?>packet
            sp.sent_time = now_obj
            epoch = sp.epoch
            if epoch is _ONE_RTT:
                # one lookup per call: an Epoch key hashes through Enum.__hash__ in Python
                if one_rtt_space is None:
                    one_rtt_space = spaces[epoch]
                space = one_rtt_space
            else:
                space = spaces[epoch]
            on_packet_sent(packet=sp, space=space)
            if epoch is _HANDSHAKE:
                sent_handshake = True
            if sp.is_ack_eliciting and not conn._ack_eliciting_sent_since_receipt:
                conn._close_at = now + conn._idle_timeout()
                conn._ack_eliciting_sent_since_receipt = True
        if sent_handshake and conn._is_client:
            conn._discard_epoch(_INITIAL)
    addr = network_path.addr
    ret = []
    for datagram in datagrams:
        total += PyBytes_GET_SIZE(datagram)
        ret.append((datagram, addr))
    if total:
        network_path.bytes_sent += total
    return ret


# -- for tests: one frame written by the compiled writers, as bytes ------------------------------
def _test_builder(crypto, Py_ssize_t datagram_size):
    b = QuicPacketBuilder(host_cid=b"", peer_cid=bytes(8), version=1, is_client=False,
                          max_datagram_size=datagram_size)
    b.max_flight_bytes = datagram_size
    b.start_packet(_ONE_RTT_PACKET, crypto)
    return b


def ack_frame_bytes(ranges, uint64_t delay, crypto, Py_ssize_t datagram_size=1252):
    """The ACK frame (type byte first) ``_write_ack`` writes for ``ranges`` (an aioquic
    RangeSet) in a fresh 1-RTT packet of a ``datagram_size`` datagram, and how many ranges went
    in (tests read it back with aioquic's ``pull_ack_frame``)."""
    cdef QuicPacketBuilder b = _test_builder(crypto, datagram_size)
    cdef Py_ssize_t begin = b._tell(), count
    cdef uint8_t *p = b.open_frame(T_ACK, ACK_CAPACITY, None, None)
    count = write_ack_ranges(b, list(ranges), delay, p)
    return PyBytes_FromStringAndSize(<char *>b._mem.base + begin, b._tell() - begin), count


def stream_frame_bytes(StreamSendBuffer sender, int64_t max_offset, crypto,
                       Py_ssize_t datagram_size=1252):
    """The STREAM frame ``StreamSendBuffer.write_frame`` writes into a fresh 1-RTT packet (b""
    when it writes none) and what it returned, with the delivery handler's arguments."""
    cdef QuicPacketBuilder b = _test_builder(crypto, datagram_size)
    cdef Py_ssize_t begin = b._tell()
    cdef int64_t raised = sender.write_frame(b, max_offset)
    handlers = b._packet_handlers or []
    return PyBytes_FromStringAndSize(<char *>b._mem.base + begin, b._tell() - begin), raised, [args for _h, args in handlers]
