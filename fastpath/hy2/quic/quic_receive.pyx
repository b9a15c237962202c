# distutils: libraries = crypto
"""The compiled receive path for 1-RTT packets of an established aioquic connection.

Why: uploading through a Hysteria 2 node, the worker spends about two fifths of its time in
aioquic's ``receive_datagram`` (issue 12 profile): Python per datagram for the header, the
connection-ID and path checks, two trips through ``aioquic.quic.crypto``'s Python layer for
header protection and AEAD (each with fresh ``bytes``), the frame loop with an Enum hash per
frame, and the bookkeeping after it.  This function takes the datagrams that make up the data
rate (one short-header packet, on the connection's current validated path and connection ID,
in the current key phase, no qlog trace) and does that work in C: header protection removed
and the payload opened with OpenSSL EVP (RFC 9001 sections 5.3, 5.4), the packet number
decoded (RFC 9000 appendix A.3), frames dispatched without the per-frame Python of aioquic's
loop (ACK frames to fastpath's compiled ACK path, the others to aioquic's handlers).  Every
other datagram -- long headers, a new path or connection ID, a key update, a failure to
decrypt, the handshake -- goes to aioquic's own ``receive_datagram`` untouched, so migration,
stateless resets and key updates keep aioquic's behaviour.

What happens to a packet here is what aioquic does to it (duplicate check, reserved bits, the
expected packet number, 0-RTT key discard, spin bit, idle timer, ACK queue and ACK timer), in
the same order, except when the ACK is due on a connection that acknowledges eagerly
(``Hy2QuicConnection.eager_ack``, quic-go's rule: ``_schedule_ack``); ``tests/hy2/test_quic_receive.py``
runs connections with this path and without it and compares their state.  Keys are derived once per key with aioquic's own
derivation and cached on aioquic's ``CryptoContext``, as the packet builder does for sending.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint64_t, int64_t
from libc.string cimport memcpy, memcmp, memset

from aioquic.buffer import Buffer, BufferReadError
from aioquic.quic import connection as _connection
from aioquic.quic.packet import NON_ACK_ELICITING_FRAME_TYPES, QuicErrorCode, QuicFrameType
from aioquic.quic.events import DatagramFrameReceived, StreamDataReceived
from aioquic.quic.stream import StreamFinishedError
from aioquic.tls import Epoch

from fastpath.hy2.quic import quic_recovery
from fastpath.hy2.quic.stateless_reset import MIN_RESET_SIZE as _RESET_MIN
from fastpath.hy2.quic.relay_pump cimport RelayPump


from fastpath.hy2.quic.packet_protection cimport (
    EVP_CIPHER_CTX_ctrl, EVP_CTRL_AEAD_SET_TAG, EVP_DecryptFinal_ex, EVP_DecryptInit_ex,
    EVP_DecryptUpdate, PacketKey, SAMPLE_SIZE, TAG_SIZE, frame_type_bits, packet_key_free,
    packet_key_init, packet_key_mask, packet_key_nonce, read_varint as _peek_varint)


cdef extern from *:
    """
    typedef struct { PyObject_HEAD uint8_t *base; uint8_t *end; uint8_t *pos; } fp_rx_buf;
    """
    ctypedef struct fp_rx_buf:
        uint8_t *base
        uint8_t *end
        uint8_t *pos


cdef enum:
    MAX_CID = 20
    MAX_ACK_RANGES = 64      # aioquic.quic.recovery.MAX_ACK_RANGES, checked by the seam test

AIOQUIC_RECEIVE_DATAGRAM = _connection.QuicConnection.receive_datagram

cdef object _ONE_RTT = Epoch.ONE_RTT
cdef object _ZERO_RTT = Epoch.ZERO_RTT
cdef object _CONNECTED = _connection.QuicConnectionState.CONNECTED
cdef object _CLOSING = _connection.QuicConnectionState.CLOSING
cdef object _DRAINING = _connection.QuicConnectionState.DRAINING
cdef object _TERMINATED = _connection.QuicConnectionState.TERMINATED
cdef object _Context = _connection.QuicReceiveContext
cdef object _ConnectionError = _connection.QuicConnectionError
cdef object _FRAME_ENCODING_ERROR = QuicErrorCode.FRAME_ENCODING_ERROR
cdef object _PROTOCOL_VIOLATION = QuicErrorCode.PROTOCOL_VIOLATION
cdef object _PADDING = QuicFrameType.PADDING
cdef object _ack_handler = quic_recovery.handle_ack_frame
cdef object _NON_ACK_ELICITING = NON_ACK_ELICITING_FRAME_TYPES
cdef uint64_t _non_ack_eliciting_bits = frame_type_bits(NON_ACK_ELICITING_FRAME_TYPES)

# datagrams taken here / handed to aioquic (C counters: no dict update per datagram)
cdef uint64_t _fast_count = 0, _fallback_count = 0
# STREAM frames whose bytes went to a relay pump directly (RelayPump.take)
cdef uint64_t _pump_count = 0


def stats():
    """{"fast": datagrams handled here, "fallback": datagrams handed to aioquic, "pump":
    STREAM frames handed to a relay pump without an event}."""
    return {"fast": _fast_count, "fallback": _fallback_count, "pump": _pump_count}

# True while the seam has the compiled ACK handler installed: ACK frames then skip the
# connection's handler table.
cdef bint _direct_ack = False


def set_direct_ack(bint on):
    global _direct_ack
    _direct_ack = on


cdef class _RecvKeys:
    """OpenSSL contexts for one receiving key (AEAD and header protection); ``aead_ref`` and
    ``hp_ref`` are the aioquic objects they were made for.  ``usable`` is False when ours could
    not match aioquic's header protection (keys first seen after a key update): then every
    packet goes to aioquic."""
    cdef PacketKey k
    cdef bint usable
    cdef object aead_ref
    cdef object hp_ref
    cdef bytes hp_key

    def __dealloc__(self):
        packet_key_free(&self.k)

    cdef inline int mask(self, const uint8_t *sample, uint8_t *out):
        """The header protection mask for ``sample`` (16 bytes out, 5 used); 0 on success."""
        return packet_key_mask(&self.k, sample, out)

    cdef int open(self, const uint8_t *header, int header_len, const uint8_t *payload,
                  int payload_len, uint64_t pn, uint8_t *out):
        """Opens ``payload`` (ciphertext then the 16-byte tag) into ``out``; 0 when the tag
        verifies."""
        cdef uint8_t nonce[12]
        cdef int outl = 0
        cdef int clen = payload_len - TAG_SIZE
        packet_key_nonce(&self.k, pn, nonce)
        if (EVP_DecryptInit_ex(self.k.aead_ctx, NULL, NULL, NULL, nonce) != 1
                or EVP_DecryptUpdate(self.k.aead_ctx, NULL, &outl, header, header_len) != 1
                or EVP_DecryptUpdate(self.k.aead_ctx, out, &outl, payload, clen) != 1
                or EVP_CIPHER_CTX_ctrl(self.k.aead_ctx, EVP_CTRL_AEAD_SET_TAG, TAG_SIZE,
                                       <void *>(payload + clen)) != 1
                or EVP_DecryptFinal_ex(self.k.aead_ctx, out + clen, &outl) != 1):
            return -1
        return 0

    cdef int check_hp(self, object hp) except -1:
        cdef uint8_t sample[SAMPLE_SIZE]
        cdef uint8_t ours[SAMPLE_SIZE]
        cdef int i
        for i in range(SAMPLE_SIZE):
            sample[i] = <uint8_t>(i * 41 + 7)
        if self.mask(sample, ours) != 0:
            self.usable = False
            return 0
        theirs = hp._mask(PyBytes_FromStringAndSize(<const char *>sample, SAMPLE_SIZE))
        if PyBytes_FromStringAndSize(<const char *>ours, 5) != theirs[:5]:
            self.usable = False
        return 0


cdef _RecvKeys _recv_keys(object context):
    """The OpenSSL keys for aioquic's receiving ``CryptoContext`` (None without keys), made on
    first use and after each change, cached on the context."""
    aead = context.aead
    if aead is None:
        return None
    hp = context.hp
    cdef _RecvKeys keys = getattr(context, "_fastpath_recv_keys", None)
    if keys is not None and keys.aead_ref is aead and keys.hp_ref is hp:
        return keys
    same_hp = keys is not None and keys.hp_ref is hp
    cdef _RecvKeys fresh = _RecvKeys()
    fresh.hp_key = packet_key_init(&fresh.k, context, keys.hp_key if same_hp else None, True)
    fresh.usable = True
    if same_hp:
        fresh.usable = keys.usable
    else:
        fresh.check_hp(hp)
    fresh.aead_ref = aead
    fresh.hp_ref = hp
    context._fastpath_recv_keys = fresh
    return fresh


cdef inline uint64_t _decode_pn(uint64_t truncated, int bits, uint64_t expected):
    """RFC 9000 appendix A.3, as aioquic's ``decode_packet_number``."""
    cdef uint64_t window = (<uint64_t>1) << bits
    cdef uint64_t half = window >> 1
    cdef uint64_t candidate = (expected & ~(window - 1)) | truncated
    if candidate + half <= expected and candidate < ((<uint64_t>1) << 62) - window:
        return candidate + window
    if candidate > expected + half and candidate >= window:
        return candidate - window
    return candidate


cdef object _open(_RecvKeys keys, const uint8_t *p, Py_ssize_t n, Py_ssize_t cid_len,
                  int key_phase, uint64_t expected, uint8_t *header, uint64_t *pn_out):
    """Header protection off (RFC 9001 section 5.4; the sample starts 4 bytes after the packet
    number's start) and the payload opened: the plain payload (in a fresh aioquic ``Buffer``,
    decrypted straight into its memory: no ``bytes`` in between, and the Buffer made with a
    positional capacity, not ``data=``, whose keyword parsing was ~4 % of the client's time),
    with the plain header in
    ``header`` (its first byte, the ID, the packet number) and the packet number in
    ``pn_out``; None where aioquic must look at the packet (another key phase, no room, a tag
    that does not verify)."""
    cdef uint8_t mask[SAMPLE_SIZE]
    cdef Py_ssize_t pn_offset = 1 + cid_len, header_len
    cdef uint64_t truncated = 0
    cdef int pn_len, i
    cdef uint8_t first
    if n < pn_offset + 4 + SAMPLE_SIZE or keys.mask(p + pn_offset + 4, mask) != 0:
        return None
    first = p[0] ^ (mask[0] & 0x1F)
    if ((first >> 2) & 1) != key_phase:
        return None                                    # a key update: aioquic's
    pn_len = (first & 0x03) + 1
    header_len = pn_offset + pn_len
    header[0] = first
    memcpy(header + 1, p + 1, cid_len)
    for i in range(pn_len):
        header[pn_offset + i] = p[pn_offset + i] ^ mask[1 + i]
        truncated = (truncated << 8) | header[pn_offset + i]
    if n - header_len - TAG_SIZE <= 0:
        return None
    pn_out[0] = _decode_pn(truncated, pn_len * 8, expected)
    plain = Buffer(n - header_len - TAG_SIZE)
    if keys.open(header, <int>header_len, p + header_len, <int>(n - header_len), pn_out[0],
                 (<fp_rx_buf *><PyObject *>plain).base) != 0:
        return None
    return plain


cdef enum:
    PN_WINDOW = 2 * MAX_ACK_RANGES          # aioquic's QuicPacketNumberWindow size


cdef class PacketNumberWindow:
    """aioquic's ``QuicPacketNumberWindow`` (the duplicate check of RFC 9000 section 12.3:
    the last ``PN_WINDOW`` packet numbers, anything older counts as received) as a bitmap.

    Why: aioquic's is a Python class with a set; its ``__contains__`` and ``add`` were two
    Python calls per received packet, about 4 % of ``fastpath client``'s time during a
    download.  The fast path puts this one in the 1-RTT space in place of aioquic's (same
    state), so the packets aioquic's own ``receive_datagram`` takes see the same window
    through ``in`` and ``add``."""
    cdef int64_t lower
    cdef uint64_t bits[2]                   # PN_WINDOW bits

    def __init__(self, lower=0, received=()):
        self.lower = lower
        memset(self.bits, 0, sizeof(self.bits))
        for pn in received:
            if pn >= self.lower:
                self.put(pn)

    cdef inline bint has(self, int64_t pn) noexcept:
        if pn < self.lower:
            return True
        if pn >= self.lower + PN_WINDOW:
            return False
        cdef int64_t slot = pn % PN_WINDOW
        return (self.bits[slot >> 6] >> (slot & 63)) & 1

    cdef inline void put(self, int64_t pn) noexcept:
        cdef int64_t new_lower = pn - PN_WINDOW + 1, q, slot
        if pn < self.lower:
            return
        if new_lower > self.lower:
            # the slots of [lower, new_lower) are taken over by [lower + PN_WINDOW, pn]
            if new_lower - self.lower >= PN_WINDOW:
                memset(self.bits, 0, sizeof(self.bits))
            else:
                q = self.lower
                while q < new_lower:
                    slot = q % PN_WINDOW
                    self.bits[slot >> 6] &= ~((<uint64_t>1) << (slot & 63))
                    q += 1
            self.lower = new_lower
        slot = pn % PN_WINDOW
        self.bits[slot >> 6] |= (<uint64_t>1) << (slot & 63)

    def add(self, packet_number):
        self.put(packet_number)

    def __contains__(self, packet_number):
        return self.has(packet_number)


cdef PacketNumberWindow _window_of(object space):
    """The space's window as ours, swapped in once from aioquic's (its ``_lower`` and
    ``_received``, checked by the seam test)."""
    window = space.received_packets
    if type(window) is PacketNumberWindow:
        return <PacketNumberWindow>window
    ours = PacketNumberWindow(window._lower, window._received)
    space.received_packets = ours
    return ours


cdef class _ConnRx:
    """What the fast path looks up per datagram, cached per connection: the 1-RTT space and
    crypto pair (aioquic keys those dicts by an Enum whose hash is Python code), the 0-RTT
    receive context until it is torn down, the local idle timeout, the space's
    packet-number window, and whether the connection acknowledges eagerly (see
    ``_schedule_ack``)."""
    cdef object spaces, cryptos, space, crypto, zero_rtt_recv
    cdef bint zero_rtt_done, eager_ack
    cdef double idle_timeout
    cdef PacketNumberWindow window


cdef _ConnRx _conn_rx(object self):
    cdef _ConnRx rx = getattr(self, "_fastpath_rx", None)
    spaces = self._spaces
    cryptos = self._cryptos
    if rx is not None and rx.spaces is spaces and rx.cryptos is cryptos:
        return rx
    rx = _ConnRx()
    rx.spaces = spaces
    rx.cryptos = cryptos
    rx.space = spaces[_ONE_RTT]
    rx.crypto = cryptos[_ONE_RTT]
    rx.zero_rtt_recv = cryptos[_ZERO_RTT].recv
    rx.zero_rtt_done = False
    rx.idle_timeout = self._configuration.idle_timeout
    rx.window = _window_of(rx.space)
    rx.eager_ack = getattr(self, "eager_ack", False) is True
    self._fastpath_rx = rx
    return rx


cdef inline void _ack_queue_add(object ack_queue, int64_t pn) except *:
    """``RangeSet.add(pn)`` for the common cases -- the next packet number, or one above every
    range -- on the RangeSet's own list (checked by the seam test); the rest through add()."""
    cdef list ranges = ack_queue._RangeSet__ranges
    cdef Py_ssize_t n = len(ranges)
    if n:
        last = ranges[n - 1]               # (this module is built without wraparound)
        stop = last.stop
        if stop == pn:
            ranges[n - 1] = range(last.start, pn + 1)
            return
        if stop < pn:
            ranges.append(range(pn, pn + 1))
            return
        ack_queue.add(pn)
        return
    ranges.append(range(pn, pn + 1))


def receive_datagram(self, data, addr, now):
    """aioquic's ``QuicConnection.receive_datagram`` (installed by the seam): the data-rate
    datagrams here, the others to aioquic's."""
    global _fast_count, _fallback_count
    if not _receive_fast(self, data, addr, now):
        _fallback_count += 1
        AIOQUIC_RECEIVE_DATAGRAM(self, data, addr, now)
    else:
        _fast_count += 1


cdef Py_ssize_t _MIN_RESET_SIZE = _RESET_MIN


def receive_batch(self, list batch, double now, reset_token=None, flush=None,
                  Py_ssize_t flush_every=0):
    """The client's loop over one received batch of ``(data, addr)`` (``fastpath client``'s
    ``ClientConnection.on_batch``), in C: each datagram to the fast path or to aioquic's
    ``receive_datagram`` as ``receive_datagram`` does (or to the connection's own when the seam
    has the fast path off).  Returns True, with the datagrams after it unread, at the first
    short-header datagram that ends in ``reset_token`` (the stateless reset the server gave
    for the connection ID we send to, RFC 9000 section 10.3; aioquic does not look for one).

    With ``flush`` and ``flush_every`` > 0, ``flush()`` (the glue's transmit) is called after
    every ``flush_every`` datagrams of the batch while an ACK is due in the 1-RTT space, so a
    large batch (recvmmsg/GRO hand over 30-60 datagrams at data rate) is acknowledged in
    pieces, as a receiver that reads packet by packet does, not with one ACK at its end.

    Why: the Python loop, its bound-method call and the token slice per datagram were a few
    per cent of the client's time during a download."""
    global _fast_count, _fallback_count
    cdef bint fast = getattr(type(self), "receive_datagram", None) is receive_datagram
    cdef bytes token = reset_token if reset_token else None
    cdef Py_ssize_t tn = len(token) if token is not None else 0, n
    cdef Py_ssize_t since_flush = 0
    cdef _ConnRx rx
    cdef const uint8_t *p
    if flush is None:
        flush_every = 0
    for item in batch:
        if flush_every and since_flush >= flush_every:
            since_flush = 0
            rx = getattr(self, "_fastpath_rx", None)
            if rx is not None and rx.space.ack_at is not None:
                flush()
        since_flush += 1
        data, addr = item
        if tn:
            if type(data) is bytes:
                n = PyBytes_GET_SIZE(<bytes>data)
                p = <const uint8_t *>PyBytes_AS_STRING(<bytes>data)
                if (n >= _MIN_RESET_SIZE and n >= tn and not p[0] & 0x80
                        and memcmp(p + n - tn, PyBytes_AS_STRING(token), tn) == 0):
                    return True
            elif (len(data) >= _MIN_RESET_SIZE and not data[0] & 0x80
                  and bytes(data[-tn:]) == token):
                return True
        if not fast:
            self.receive_datagram(data, addr, now)
        elif _receive_fast(self, data, addr, now):
            _fast_count += 1
        else:
            _fallback_count += 1
            AIOQUIC_RECEIVE_DATAGRAM(self, data, addr, now)
    return False


cdef bint _receive_fast(object self, object data, object addr, double now) except -1:
    cdef bytes raw
    cdef const uint8_t *p
    cdef Py_ssize_t n, cid_len
    cdef uint8_t header[MAX_CID + 5]
    cdef uint8_t first
    cdef uint64_t pn = 0
    cdef _RecvKeys keys
    if type(data) is not bytes:
        return False
    raw = <bytes>data
    n = PyBytes_GET_SIZE(raw)
    p = <const uint8_t *>PyBytes_AS_STRING(raw)
    if n < 1 or p[0] & 0x80:                           # a long header: aioquic's
        return False
    if self._quic_logger is not None or self._state is not _CONNECTED:
        return False
    paths = self._network_paths
    if not paths:
        return False
    path = paths[0]
    if not path.is_validated or path.addr != addr or self._close_at is None:
        return False
    host_cid = self.host_cid
    cid_len = PyBytes_GET_SIZE(host_cid)
    if cid_len != self._configuration.connection_id_length or cid_len > MAX_CID:
        return False
    if n < 1 + cid_len + 4 + SAMPLE_SIZE:
        return False
    if cid_len and memcmp(p + 1, PyBytes_AS_STRING(host_cid), cid_len) != 0:
        return False                                   # another of our IDs: migration rules
    cdef _ConnRx rx = _conn_rx(self)
    recv = rx.crypto.recv
    keys = _recv_keys(recv)
    if keys is None or not keys.usable:
        return False

    space = rx.space
    plain = _open(keys, p, n, cid_len, recv.key_phase, <uint64_t>space.expected_packet_number,
                  header, &pn)
    if plain is None:
        return False
    first = header[0]

    # from here on, what aioquic's receive_datagram does with a decrypted 1-RTT packet
    if rx.window.has(<int64_t>pn):
        return True                                    # a duplicate (RFC 9000 section 12.3)
    if first & 0x18:
        self.close(error_code=_PROTOCOL_VIOLATION, frame_type=_PADDING,
                   reason_phrase="Reserved bits must be zero")
        return True
    if pn > <uint64_t>space.expected_packet_number:
        space.expected_packet_number = pn + 1
    is_client = self._is_client
    if not is_client and not rx.zero_rtt_done:
        if rx.zero_rtt_recv.aead is not None:
            rx.zero_rtt_recv.teardown()
        rx.zero_rtt_done = True
    peer_cid = self._peer_cid
    if peer_cid.sequence_number is None:
        peer_cid.cid = b""
        peer_cid.sequence_number = 0
    if <int64_t>pn > self._spin_highest_pn:
        spin = bool(first & 0x20)
        self._spin_bit = (not spin) if is_client else spin
        self._spin_highest_pn = pn

    context = _Context(epoch=_ONE_RTT, host_cid=host_cid, network_path=path,
                       quic_logger_frames=None, time=now, version=None)
    is_ack_eliciting = False
    try:
        is_ack_eliciting = _payload_received(self, context, plain, now)
    except _ConnectionError as exc:
        self._logger.warning(exc)
        self.close(error_code=exc.error_code, frame_type=exc.frame_type,
                   reason_phrase=exc.reason_phrase)
    state = self._state             # (identity, not ``in``: the Enum's hash is Python code)
    if state is _CLOSING or state is _DRAINING or state is _TERMINATED or self._close_pending:
        return True
    # aioquic's _idle_timeout(): the smaller of ours and the peer's, at least 3 PTOs
    cdef double idle = rx.idle_timeout
    remote = self._remote_max_idle_timeout
    if remote is not None and remote < idle:
        idle = remote
    cdef double pto3 = 3 * self._loss.get_probe_timeout()
    self._close_at = now + (idle if idle > pto3 else pto3)
    self._ack_eliciting_sent_since_receipt = False
    # (the path is the validated first one and the connection ID the current one: no
    # migration, no promotion)
    cdef int64_t largest
    if not space.discarded:
        largest = space.largest_received_packet
        if <int64_t>pn > largest:
            space.largest_received_packet = pn
            space.largest_received_time = now
        ack_queue = space.ack_queue
        _ack_queue_add(ack_queue, pn)
        rx.window.put(<int64_t>pn)
        if len(ack_queue._RangeSet__ranges) > MAX_ACK_RANGES:
            ack_queue.shift()
        if is_ack_eliciting:
            _schedule_ack(self, space, rx.eager_ack, <int64_t>pn != largest + 1, now)
    return True


cdef inline int _schedule_ack(object self, object space, bint eager, bint out_of_order,
                              double now) except -1:
    """When the ACK for an ack-eliciting packet is due (``space.ack_at``; the send path writes
    it in the next packet built at or after that time and clears it).

    aioquic's rule: ``max_ack_delay`` (its 1 ms ``K_GRANULARITY``) after the first
    ack-eliciting packet since the last ACK.  With a 1 ms event-loop timer that becomes one
    ACK per 1-2 ms, 40-110 packets at data rate (issue 12, counted on the server), so the
    sender sees few, large ACKs: its congestion window opens in steps and it sends in bursts.
    An eager connection (``Hy2QuicConnection.eager_ack``) acknowledges as quic-go does and RFC
    9000 section 13.2.2 recommends: at once on the second ack-eliciting packet since the last
    ACK, and at once on a packet out of order (a gap before it, or older than the largest:
    section 13.2.1).  "At once" is the end of the receive batch, where the glue transmits, so a
    batch of two or more packets gets one ACK; a lone in-order packet still waits the delay
    for a second one."""
    ack_at = space.ack_at
    if eager and (out_of_order or ack_at is not None):
        if ack_at is None or <double>ack_at > now:
            space.ack_at = now
    elif ack_at is None:
        space.ack_at = now + self._ack_delay
    return 0


cdef bint _payload_received(object self, object context, object buf, double now) except -1:
    """aioquic's frame loop for a 1-RTT packet (every frame type is allowed in 1-RTT, checked
    by the seam test): PADDING skipped in C, ACK to the compiled ACK path, the rest to the
    connection's own handlers.  Returns whether the packet was ack-eliciting."""
    cdef fp_rx_buf *m = <fp_rx_buf *><PyObject *>buf
    cdef uint64_t ftype
    cdef int k, size
    cdef bint found = False, eliciting = False
    handlers = None
    while m.pos < m.end:
        size = 1 << (m.pos[0] >> 6)
        if m.pos + size > m.end:
            raise _ConnectionError(error_code=_FRAME_ENCODING_ERROR, frame_type=None,
                                   reason_phrase="Malformed frame type")
        ftype = m.pos[0] & 0x3F
        for k in range(1, size):
            ftype = (ftype << 8) | m.pos[k]
        m.pos += size
        found = True
        if ftype == 0x00:
            while m.pos < m.end and m.pos[0] == 0:
                m.pos += 1
            continue
        if ftype < 64:
            if not (_non_ack_eliciting_bits >> ftype) & 1:
                eliciting = True
        elif ftype not in _NON_ACK_ELICITING:
            eliciting = True
        try:
            if _direct_ack and (ftype == 0x02 or ftype == 0x03):
                _ack_handler(self, context, ftype, buf)
            elif 0x08 <= ftype <= 0x0E and not ftype & 1 and _stream_frame_in_order(self, ftype, m):
                pass
            elif (ftype == 0x30 or ftype == 0x31) and _datagram_frame(self, ftype, m, now):
                pass
            else:
                if handlers is None:
                    handlers = self._QuicConnection__frame_handlers
                entry = handlers.get(ftype)
                if entry is None:
                    raise _ConnectionError(error_code=_FRAME_ENCODING_ERROR, frame_type=ftype,
                                           reason_phrase="Unknown frame type")
                entry[0](context, ftype, buf)
        except BufferReadError:
            raise _ConnectionError(error_code=_FRAME_ENCODING_ERROR, frame_type=ftype,
                                   reason_phrase="Failed to parse frame")
        except StreamFinishedError:
            pass                        # no state for the stream any more: ignore the frame
    if not found:
        raise _ConnectionError(error_code=_PROTOCOL_VIOLATION, frame_type=_PADDING,
                               reason_phrase="Packet contains no frames")
    return eliciting


def open_packet(conn, data):
    """Removes header protection from and opens a 1-RTT packet as the fast path does, without
    touching the connection's state: (plain header, payload, packet number), or None where the
    fast path would hand the datagram to aioquic.  For tests against aioquic's decryption."""
    cdef bytes raw = bytes(data)
    cdef uint8_t header[MAX_CID + 5]
    cdef uint64_t pn = 0
    cdef Py_ssize_t cid_len = PyBytes_GET_SIZE(conn.host_cid)
    recv = conn._cryptos[_ONE_RTT].recv
    cdef _RecvKeys keys = _recv_keys(recv)
    if keys is None or not keys.usable or not raw or raw[0] & 0x80 or cid_len > MAX_CID:
        return None
    plain = _open(keys, <const uint8_t *>PyBytes_AS_STRING(raw), len(raw), cid_len,
                  recv.key_phase, <uint64_t>conn._spaces[_ONE_RTT].expected_packet_number,
                  header, &pn)
    if plain is None:
        return None
    cdef fp_rx_buf *m = <fp_rx_buf *><PyObject *>plain
    return PyBytes_FromStringAndSize(<const char *>header, 1 + cid_len + (header[0] & 3) + 1), \
        PyBytes_FromStringAndSize(<const char *>m.base, m.end - m.base), pn


def decode_packet_number(truncated, bits, expected):
    """The fast path's packet number decoding (for tests against aioquic's)."""
    return _decode_pn(truncated, bits, expected)


cdef bint _stream_frame_in_order(object self, uint64_t ftype, fp_rx_buf *m) except -1:
    """The common STREAM frame (no FIN) of an upload: the next bytes of an open stream that can
    receive, within both flow-control limits, with nothing buffered out of order.  Does what
    aioquic's ``_handle_stream_frame`` and ``QuicStreamReceiver.handle_frame`` do for it (one
    StreamDataReceived event, the receiver's offsets, the connection's credit used) and returns
    True; returns False with the buffer untouched for every other case, which aioquic's handler
    then takes (and, for a bad frame, closes the connection as aioquic does)."""
    global _pump_count
    cdef const uint8_t *p = m.pos
    cdef uint64_t stream_id, offset = 0, length, end
    cdef bint client_initiated
    if _peek_varint(&p, m.end, &stream_id):
        return False
    if ftype & 4 and _peek_varint(&p, m.end, &offset):
        return False
    if ftype & 2:
        if _peek_varint(&p, m.end, &length):
            return False
    else:
        length = m.end - p
    if length == 0 or length > <uint64_t>(m.end - p) or offset + length > ((<uint64_t>1) << 62) - 1:
        return False
    end = offset + length
    stream = self._streams.get(stream_id)
    if stream is None:
        return False
    client_initiated = (stream_id & 1) == 0
    if (stream_id & 2) and client_initiated == self._is_client:
        return False                                   # our own unidirectional stream
    if end > <uint64_t>stream.max_stream_data_local:
        return False
    receiver = stream.receiver
    if (receiver._final_size is not None or receiver.is_finished or receiver._buffer
            or <uint64_t>receiver._buffer_start != offset):
        return False
    limit = self._local_max_data
    cdef uint64_t highest = receiver.highest_offset
    cdef uint64_t newly = end - highest if end > highest else 0
    if <uint64_t>limit.used + newly > <uint64_t>limit.value:
        return False
    m.pos = <uint8_t *>(p + length)
    if end > highest:
        receiver.highest_offset = end
    receiver._buffer_start = end
    limit.used += newly
    # The stream's relay pump takes the bytes now when no event is queued before them (so
    # they cannot overtake bytes of an earlier frame still in aioquic's queue); otherwise, or
    # when it does not take them (RelayPump.take), aioquic's event as before.
    events = self._events
    pumps = getattr(self, "stream_pumps", None)
    if pumps is not None and not events:
        pump = pumps.get(stream_id)
        if (type(pump) is RelayPump
                and (<RelayPump>pump).take(p, <Py_ssize_t>length)):
            _pump_count += 1
            return True
    data = PyBytes_FromStringAndSize(<const char *>p, <Py_ssize_t>length)
    events.append(StreamDataReceived(data=data, end_stream=False, stream_id=stream_id))
    return True


cdef bint _datagram_frame(object self, uint64_t ftype, fp_rx_buf *m, double now) except -1:
    """A DATAGRAM frame (RFC 9221 section 4) within the size we advertised: its payload goes
    to the connection's ``datagram_sink`` (``Hy2QuicConnection``; the server's relays a client's
    UDP message to its target straight from here, ``fastpath.hy2.server.udp_pump.ClientDatagrams``)
    or, when the sink does not take it, becomes aioquic's ``DatagramFrameReceived`` event, as
    aioquic's ``_handle_datagram_frame`` makes it.  Returns False with the buffer untouched for
    anything else (no limit advertised, too large, truncated), which aioquic's handler then
    takes and, for a bad frame, closes the connection as aioquic does."""
    cdef const uint8_t *p = m.pos
    cdef uint64_t length
    if ftype == 0x31:
        if _peek_varint(&p, m.end, &length):
            return False
    else:
        length = m.end - p
    if length > <uint64_t>(m.end - p):
        return False
    limit = self._configuration.max_datagram_frame_size
    if limit is None or <uint64_t>(p + length - m.pos) >= <uint64_t>limit:
        return False
    data = PyBytes_FromStringAndSize(<const char *>p, <Py_ssize_t>length)
    m.pos = <uint8_t *>(p + length)
    sink = getattr(self, "datagram_sink", None)
    if sink is None or not sink(data, now):
        self._events.append(DatagramFrameReceived(data=data))
    return True
