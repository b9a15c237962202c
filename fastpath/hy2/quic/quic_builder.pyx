# distutils: libraries = crypto
"""A compiled QUIC packet builder that aioquic's QuicConnection uses in place of its own.

Why: in a one-connection download the server worker spends about two thirds of its time in
aioquic's ``datagrams_to_send``, and a large share of that is the packet builder: Python code per
packet for the header, padding, bookkeeping, and two trips through the Python layers of
``aioquic.quic.crypto`` (AEAD and header protection via ``cryptography``, each with fresh
``bytes`` objects).  This class offers the same interface to the connection (``start_packet``,
``start_frame``, ``flush``, the space properties, ``max_flight_bytes``/``max_total_bytes``) and
does the per-packet work in C: the header is written straight into the memory of aioquic's C
``Buffer`` (the object frame writers push into), and the payload is sealed in place with
OpenSSL's EVP AES-GCM / ChaCha20-Poly1305 and header-protected with AES-ECB / ChaCha20 masks
(RFC 9001 sections 5.3 and 5.4).  Keys are derived once per key (aioquic's own derivation)
and cached on aioquic's ``CryptoContext``; a key update (a new ``aead`` object on the context)
is noticed per packet and the header protection key is kept, as RFC 9001 section 6 requires.

The behaviour is the one aioquic's builder has (RFC 9000 sections 12.2, 14.1, 17; RFC 9002
section 2): the tests in ``tests/hy2/test_quic_builder.py`` run both builders on the same
inputs and compare the datagrams byte for byte and the sent-packet records field by field.
Written by hand because no library offers QUIC packet assembly for aioquic's connection; the
one coupling to aioquic's internals (its ``Buffer`` struct layout, its private names) is checked
by ``layout_ok()`` here and ``tests/hy2/test_aioquic_seam.py``.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy, memset

from aioquic.buffer import Buffer, BufferWriteError
from aioquic.quic import packet as _qp
from aioquic.quic.packet_builder import QuicPacketBuilderStop
from aioquic.tls import Epoch


from fastpath.hy2.quic.packet_protection cimport (
    EVP_CIPHER_CTX_ctrl, EVP_CTRL_AEAD_GET_TAG, EVP_EncryptFinal_ex, EVP_EncryptInit_ex,
    EVP_EncryptUpdate, PacketKey, SAMPLE_SIZE, TAG_SIZE, frame_type_bits, packet_key_free,
    packet_key_init, packet_key_mask, packet_key_nonce, put_varint as _put_varint)
from fastpath.hy2.wire.varint cimport varint_size as _varint_size


cdef enum:
    PN_MAX_SIZE = 4          # RFC 9000 section 17.1: packet numbers take 1 to 4 bytes
    PN_SEND_SIZE = 2         # we always send 2 (as aioquic does)
    NEW_DATAGRAM_BELOW = 128  # start a new datagram when less room than this is left
    LONG_HEADER = 0x80
    FIXED_BIT = 0x40

cdef object _INITIAL = _qp.QuicPacketType.INITIAL
cdef object _HANDSHAKE = _qp.QuicPacketType.HANDSHAKE
cdef object _ZERO_RTT = _qp.QuicPacketType.ZERO_RTT
cdef object _ONE_RTT = _qp.QuicPacketType.ONE_RTT
cdef object _EPOCH_INITIAL = Epoch.INITIAL
cdef object _EPOCH_HANDSHAKE = Epoch.HANDSHAKE
cdef object _EPOCH_ONE_RTT = Epoch.ONE_RTT
cdef object _encode_long_first_byte = _qp.encode_long_header_first_byte
cdef list _NO_ARGS = []

# Frame-type classes, taken from aioquic so both builders agree: a bit per type below 64, the
# sets themselves for the rare larger types.
cdef object _NON_ACK_ELICITING = _qp.NON_ACK_ELICITING_FRAME_TYPES
cdef object _NON_IN_FLIGHT = _qp.NON_IN_FLIGHT_FRAME_TYPES
cdef uint64_t _non_ack_eliciting_bits = frame_type_bits(_NON_ACK_ELICITING)
cdef uint64_t _non_in_flight_bits = frame_type_bits(_NON_IN_FLIGHT)
cdef uint64_t _CRYPTO = int(_qp.QuicFrameType.CRYPTO)
cdef uint64_t _PATH_CHALLENGE = int(_qp.QuicFrameType.PATH_CHALLENGE)
cdef uint64_t _PATH_RESPONSE = int(_qp.QuicFrameType.PATH_RESPONSE)


cdef inline fp_quic_buffer *_mem(object buf):
    return <fp_quic_buffer *><PyObject *>buf


def layout_ok() -> bool:
    """True when aioquic's Buffer has the memory layout this module writes through."""
    buf = Buffer(capacity=8)
    buf.push_uint16(0x1234)
    cdef fp_quic_buffer *m = _mem(buf)
    return (type(buf).__basicsize__ == sizeof(PyObject) + 3 * sizeof(void *)
            and m.end - m.base == 8 and m.pos - m.base == 2
            and m.base[0] == 0x12 and m.base[1] == 0x34 and buf.tell() == 2)


cdef class _SendKeys:
    """OpenSSL contexts for one sending key: the AEAD (RFC 9001 5.3) and the header protection
    (5.4).  ``aead_ref``/``hp_ref`` are the aioquic objects they were made for, so a changed
    object (new keys, or a key update, which replaces only the AEAD) is noticed."""
    cdef PacketKey k
    cdef object aead_ref
    cdef object hp_ref
    cdef bytes hp_key
    cdef object py_hp   # aioquic's own header protection, when ours could not match it

    def __dealloc__(self):
        packet_key_free(&self.k)

    cdef int seal(self, uint8_t *packet, Py_ssize_t header_size, Py_ssize_t payload_size,
                  uint64_t packet_number) except -1:
        """Encrypts ``packet[header_size:header_size+payload_size]`` in place, appends the tag
        and applies header protection to the first byte and the packet number."""
        cdef uint8_t nonce[12]
        cdef uint8_t mask[SAMPLE_SIZE]
        cdef uint8_t scratch[32]
        cdef int outl = 0, i
        cdef int pn_length, pn_offset
        cdef uint8_t *payload = packet + header_size
        packet_key_nonce(&self.k, packet_number, nonce)
        if (EVP_EncryptInit_ex(self.k.aead_ctx, NULL, NULL, NULL, nonce) != 1
                or EVP_EncryptUpdate(self.k.aead_ctx, NULL, &outl, packet,
                                     <int>header_size) != 1
                or EVP_EncryptUpdate(self.k.aead_ctx, payload, &outl, payload,
                                     <int>payload_size) != 1
                or EVP_EncryptFinal_ex(self.k.aead_ctx, scratch, &outl) != 1
                or EVP_CIPHER_CTX_ctrl(self.k.aead_ctx, EVP_CTRL_AEAD_GET_TAG, TAG_SIZE,
                                       payload + payload_size) != 1):
            raise RuntimeError("AEAD encryption failed")
        pn_length = (packet[0] & 0x03) + 1
        pn_offset = <int>header_size - pn_length
        # The sample starts 4 bytes after the start of the packet number (RFC 9001 5.4.2).
        if self.py_hp is not None:
            self.py_mask(packet + pn_offset + PN_MAX_SIZE, mask)
        else:
            self.mask(packet + pn_offset + PN_MAX_SIZE, mask)
        if packet[0] & LONG_HEADER:
            packet[0] ^= mask[0] & 0x0F
        else:
            packet[0] ^= mask[0] & 0x1F
        for i in range(pn_length):
            packet[pn_offset + i] ^= mask[1 + i]
        return 0

    cdef int mask(self, const uint8_t *sample, uint8_t *out) except -1:
        if packet_key_mask(&self.k, sample, out) != 0:
            raise RuntimeError("header protection failed")
        return 0

    cdef int py_mask(self, const uint8_t *sample, uint8_t *out) except -1:
        cdef bytes got = self.py_hp._mask(PyBytes_FromStringAndSize(<const char *>sample,
                                                                    SAMPLE_SIZE))
        memcpy(out, PyBytes_AS_STRING(got), 5)
        return 0

    cdef int check_hp(self, object hp) except -1:
        """Compares our header protection mask with aioquic's for one sample.  They differ
        only if this context was first seen after a key update (the secret we derived the key
        from had moved on): then aioquic's own object computes the masks, slower but right."""
        cdef uint8_t sample[SAMPLE_SIZE]
        cdef uint8_t ours[SAMPLE_SIZE]
        cdef int i
        for i in range(SAMPLE_SIZE):
            sample[i] = <uint8_t>(i * 37 + 11)
        self.mask(sample, ours)
        theirs = hp._mask(PyBytes_FromStringAndSize(<const char *>sample, SAMPLE_SIZE))
        if PyBytes_FromStringAndSize(<const char *>ours, 5) != theirs[:5]:
            self.py_hp = hp
        return 0


cdef _SendKeys _send_keys(object context):
    """The OpenSSL keys for aioquic's sending ``CryptoContext``, made on first use and after each
    change of its keys, cached on the context itself."""
    aead = context.aead
    hp = context.hp
    cdef _SendKeys keys = getattr(context, "_fastpath_send_keys", None)
    if keys is not None and keys.aead_ref is aead and keys.hp_ref is hp:
        return keys
    if aead is None:
        raise AssertionError("Encryption key is not available")
    same_hp = keys is not None and keys.hp_ref is hp
    cdef _SendKeys fresh = _SendKeys()
    fresh.hp_key = packet_key_init(&fresh.k, context, keys.hp_key if same_hp else None, False)
    if same_hp:
        fresh.py_hp = keys.py_hp
    else:
        fresh.check_hp(hp)
    fresh.aead_ref = aead
    fresh.hp_ref = hp
    context._fastpath_send_keys = fresh
    return fresh


cdef class SentPacket:
    """One sent packet as recovery tracks it: aioquic's ``QuicSentPacket`` fields under their
    names (aioquic's connection sets ``sent_time`` and reads the rest; its recovery, kept for
    qlog connections, reads them too), typed so that the compiled builder fills it and the
    compiled recovery reads it without a dict lookup per field.  A dataclass instance cost
    about a fifth of a sent packet's registration and acknowledgement (its dict, built and
    freed per packet, and one generic attribute lookup per field read)."""

    def __init__(self, *, epoch, in_flight, is_ack_eliciting, is_crypto_packet, packet_number,
                 packet_type, sent_time=None, sent_bytes=0, delivery_handlers=None,
                 quic_logger_frames=None):
        self.epoch = epoch
        self.in_flight = in_flight
        self.is_ack_eliciting = is_ack_eliciting
        self.is_crypto_packet = is_crypto_packet
        self.packet_number = packet_number
        self.packet_type = packet_type
        self.sent_time = sent_time
        self.sent_bytes = sent_bytes
        self.delivery_handlers = [] if delivery_handlers is None else delivery_handlers
        self.quic_logger_frames = [] if quic_logger_frames is None else quic_logger_frames

    def __repr__(self):
        return (f"SentPacket(epoch={self.epoch!r}, packet_number={self.packet_number}, "
                f"sent_bytes={self.sent_bytes}, in_flight={self.in_flight}, "
                f"is_ack_eliciting={self.is_ack_eliciting}, sent_time={self.sent_time!r})")


cdef SentPacket _sent_packet(object epoch, bint in_flight, bint ack_eliciting, bint is_crypto,
                             int64_t packet_number, object packet_type, Py_ssize_t sent_bytes,
                             list handlers, object frames):
    """A ``SentPacket`` filled from C (no ``__init__`` call); tests/hy2/test_quic_builder.py
    compares its fields with the records of aioquic's builder."""
    cdef SentPacket packet = SentPacket.__new__(SentPacket)
    packet.epoch = epoch
    packet.in_flight = in_flight
    packet.is_ack_eliciting = ack_eliciting
    packet.is_crypto_packet = is_crypto
    packet.packet_number = packet_number
    packet.packet_type = packet_type
    packet.sent_time = None
    packet.sent_bytes = sent_bytes
    packet.delivery_handlers = handlers
    packet.quic_logger_frames = frames
    return packet


cdef class QuicPacketBuilder:
    """Builds the datagrams of one ``datagrams_to_send`` call; see the module docstring."""

    def __init__(self, *, host_cid, peer_cid, version, is_client, max_datagram_size,
                 packet_number=0, peer_token=b"", quic_logger=None, spin_bit=False):
        self.quic_logger_frames = None
        self._has_max_flight = False
        self._has_max_total = False
        self._host_cid = bytes(host_cid)
        self._peer_cid = bytes(peer_cid)
        self._peer_token = bytes(peer_token)
        self._is_client = bool(is_client)
        self._spin_bit = bool(spin_bit)
        self._quic_logger = quic_logger
        self._version = version
        self._datagrams = []
        self._packets = []
        self._datagram_flight_bytes = 0
        self._flight_bytes = 0
        self._total_bytes = 0
        self._datagram_init = True
        self._datagram_needs_padding = False
        self._packet_type = None
        self._packet_crypto = None
        self._header_size = 0
        self._packet_start = 0
        self._packet_number = packet_number
        self._tag_size = TAG_SIZE
        self._buffer = Buffer(capacity=max_datagram_size)
        self._mem = _mem(self._buffer)
        self._buffer_capacity = max_datagram_size
        self._flight_capacity = max_datagram_size

    # -- the limits the connection sets --------------------------------------------------------
    @property
    def max_flight_bytes(self):
        return self._max_flight_bytes if self._has_max_flight else None

    @max_flight_bytes.setter
    def max_flight_bytes(self, value):
        self._has_max_flight = value is not None
        self._max_flight_bytes = value if value is not None else 0

    @property
    def max_total_bytes(self):
        return self._max_total_bytes if self._has_max_total else None

    @max_total_bytes.setter
    def max_total_bytes(self, value):
        self._has_max_total = value is not None
        self._max_total_bytes = value if value is not None else 0

    # -- state the frame writers read ----------------------------------------------------------
    @property
    def packet_is_empty(self):
        assert self._packet_type is not None
        return self._tell() - self._packet_start <= self._header_size

    @property
    def packet_number(self):
        return self._packet_number

    @property
    def remaining_buffer_space(self):
        return self._buffer_capacity - self._tell() - self._tag_size

    @property
    def remaining_flight_space(self):
        return self._flight_capacity - self._tell() - self._tag_size

    # -- building ------------------------------------------------------------------------------
    def flush(self):
        """Ends the packet and the datagram being built; returns (datagrams, sent packets)."""
        return self.take_flush()

    cdef tuple take_flush(self):
        if self._packet_type is not None:
            self._end_packet()
        self._flush_current_datagram()
        datagrams = self._datagrams
        packets = self._packets
        self._datagrams = []
        self._packets = []
        return datagrams, packets

    def start_frame(self, frame_type, Py_ssize_t capacity=1, handler=None,
                    handler_args=_NO_ARGS):
        """Opens a frame of ``frame_type`` that needs ``capacity`` bytes and returns the buffer
        to write it into; raises QuicPacketBuilderStop, writing nothing, when the packet or the
        congestion window has less room."""
        cdef uint64_t ftype = frame_type
        if ftype >= 64 and (frame_type in _NON_IN_FLIGHT or frame_type in _NON_ACK_ELICITING):
            # the rare large frame types aioquic classes by set: the general path
            return self._start_frame_sets(frame_type, capacity, handler, handler_args)
        self.open_frame(ftype, capacity, handler, handler_args)
        return self._buffer

    cdef uint8_t *open_frame(self, uint64_t ftype, Py_ssize_t capacity, object handler,
                             object handler_args) except NULL:
        """start_frame for a frame type below 64 or one that is in flight and ack-eliciting,
        for C callers: writes the type and returns where the frame's fields go (the caller
        writes them and calls close_frame).  Raises QuicPacketBuilderStop, writing nothing,
        when the packet or the congestion window has less room than ``capacity``."""
        cdef bint in_flight = True, ack_eliciting = True
        if ftype < 64:
            in_flight = not (_non_in_flight_bits >> ftype) & 1
            ack_eliciting = not (_non_ack_eliciting_bits >> ftype) & 1
        return self._open(ftype, capacity, in_flight, ack_eliciting, handler, handler_args)

    def _start_frame_sets(self, frame_type, Py_ssize_t capacity, handler, handler_args):
        self._open(frame_type, capacity, frame_type not in _NON_IN_FLIGHT,
                   frame_type not in _NON_ACK_ELICITING, handler, handler_args)
        return self._buffer

    cdef uint8_t *_open(self, uint64_t ftype, Py_ssize_t capacity, bint in_flight,
                        bint ack_eliciting, object handler, object handler_args) except NULL:
        cdef int64_t tell = self._tell()
        if self._packet_type is None:
            raise AssertionError("no packet started")
        # The first frame leaves room for the padding that header protection's sample needs.
        if tell - self._packet_start <= self._header_size and capacity < PN_MAX_SIZE - PN_SEND_SIZE:
            capacity = PN_MAX_SIZE - PN_SEND_SIZE
        if (self._buffer_capacity - tell - self._tag_size < capacity
                or (in_flight and self._flight_capacity - tell - self._tag_size < capacity)):
            raise QuicPacketBuilderStop
        cdef fp_quic_buffer *m = self._mem
        if m.pos + _varint_size(ftype) > m.end:
            raise BufferWriteError("Write out of bounds")
        m.pos = _put_varint(m.pos, ftype)
        if ack_eliciting:
            self._pkt_ack_eliciting = True
        if in_flight:
            self._pkt_in_flight = True
        if ftype == _CRYPTO:
            self._pkt_crypto = True
        if ftype == _PATH_CHALLENGE or ftype == _PATH_RESPONSE:
            # Datagrams with path validation frames are expanded to 1200 bytes unless the
            # anti-amplification limit prevents it (RFC 9000 sections 8.2.1, 8.2.2).
            self._datagram_needs_padding = True
        if handler is not None:
            if self._packet_handlers is None:
                self._packet_handlers = []
            self._packet_handlers.append((handler, handler_args))
        return m.pos

    def start_packet(self, packet_type, crypto):
        """Ends the packet being built and starts one of ``packet_type`` sealed with ``crypto``
        (aioquic's CryptoPair)."""
        self.begin_packet(packet_type, crypto)

    cdef int begin_packet(self, object packet_type, object crypto) except -1:
        cdef Py_ssize_t packet_start, header_size
        cdef int64_t room
        if not (packet_type is _ONE_RTT or packet_type is _HANDSHAKE
                or packet_type is _INITIAL or packet_type is _ZERO_RTT):
            raise AssertionError("Invalid packet type")
        if self._packet_type is not None:
            self._end_packet()

        # Too little room left: a new datagram (aioquic's threshold, so both builders agree).
        packet_start = self._tell()
        if self._buffer_capacity - packet_start < NEW_DATAGRAM_BELOW:
            self._flush_current_datagram()
            packet_start = 0
        # A short header packet pads inside itself, with congestion-controlled PADDING frames
        # (RFC 9002 section 2): if the window cannot cover them, a new datagram.
        if (packet_type is _ONE_RTT and self._datagram_needs_padding
                and self._flight_capacity < self._buffer_capacity):
            self._flush_current_datagram()
            packet_start = 0

        if self._datagram_init:
            if self._has_max_total:
                room = self._max_total_bytes - self._total_bytes
                if room < self._buffer_capacity:
                    self._buffer_capacity = room
            self._flight_capacity = self._buffer_capacity
            if self._has_max_flight:
                room = self._max_flight_bytes - self._flight_bytes
                if room < self._flight_capacity:
                    self._flight_capacity = room
            self._datagram_flight_bytes = 0
            self._datagram_init = False
            self._datagram_needs_padding = False

        # RFC 9000 17.2 / 17.3: long header = first byte, version, two CIDs with lengths,
        # (Initial: token), 2-byte length, 2-byte packet number; short = first byte, CID, PN.
        if packet_type is _ONE_RTT:
            header_size = 3 + PyBytes_GET_SIZE(self._peer_cid)
        else:
            header_size = 11 + PyBytes_GET_SIZE(self._peer_cid) + PyBytes_GET_SIZE(self._host_cid)
            if packet_type is _INITIAL:
                header_size += (_varint_size(PyBytes_GET_SIZE(self._peer_token))
                                + PyBytes_GET_SIZE(self._peer_token))
        if packet_start + header_size >= self._buffer_capacity:
            raise QuicPacketBuilderStop

        self._tag_size = crypto.aead_tag_size
        self._header_size = header_size
        self._packet_type = packet_type
        self._packet_crypto = crypto
        self._packet_start = packet_start
        self._pkt_ack_eliciting = False
        self._pkt_in_flight = False
        self._pkt_crypto = False
        self._packet_handlers = None
        self._packet_frames = []
        self.quic_logger_frames = self._packet_frames
        self._mem.pos = self._mem.base + packet_start + header_size
        return 0

    cdef int _end_packet(self) except -1:
        cdef fp_quic_buffer *m = self._mem
        cdef Py_ssize_t packet_size = (m.pos - m.base) - self._packet_start
        cdef Py_ssize_t padding_size, cid_len, token_len, length, sent_bytes
        cdef int64_t flight_room
        cdef uint8_t *p
        cdef bint one_rtt = self._packet_type is _ONE_RTT
        cdef int key_phase = 0
        cdef _SendKeys keys
        cdef uint32_t version
        if packet_size <= self._header_size:
            # nothing was written: drop the packet
            m.pos = m.base + self._packet_start
            self._packet_type = None
            self._packet_crypto = None
            self.quic_logger_frames = None
            return 0

        # Header protection samples 16 bytes from 4 bytes after the packet number start, so
        # the payload is at least 4 - PN_SEND_SIZE bytes (RFC 9001 section 5.4.2).
        padding_size = PN_MAX_SIZE - PN_SEND_SIZE + self._header_size - packet_size
        # Datagrams with an ack-eliciting Initial (any Initial from a client) are expanded to
        # 1200 bytes (RFC 9000 section 14.1).
        if (self._is_client or self._pkt_ack_eliciting) and self._packet_type is _INITIAL:
            self._datagram_needs_padding = True
        # A short header packet is the last of its datagram: its padding has to be inside it.
        if self._datagram_needs_padding and one_rtt:
            flight_room = self._flight_capacity - (m.pos - m.base) - self._tag_size
            if flight_room > padding_size:
                padding_size = flight_room
            self._datagram_needs_padding = False
        if padding_size > 0:
            if m.pos + padding_size > m.end:
                raise BufferWriteError("Write out of bounds")
            memset(m.pos, 0, padding_size)
            m.pos += padding_size
            packet_size += padding_size
            self._pkt_in_flight = True
            if self._quic_logger is not None:
                self._packet_frames.append(self._quic_logger.encode_padding_frame())

        crypto = self._packet_crypto
        if crypto._update_key_requested:
            # aioquic's CryptoPair.encrypt_packet does this before sealing: same here, after
            # noting the header protection key, which stays (RFC 9001 section 6).
            _send_keys(crypto.send)
            crypto._update_key("local_update")
            self._keys_crypto = None
        if crypto is self._keys_crypto:
            # Within one builder (one datagrams_to_send call) a CryptoPair's sending keys only
            # change through the update just above, so the last packet's keys are still good.
            keys = <_SendKeys>self._keys
            key_phase = self._keys_phase
        else:
            send = crypto.send
            keys = _send_keys(send)
            key_phase = send.key_phase
            self._keys_crypto = crypto
            self._keys = keys
            self._keys_phase = key_phase

        p = m.base + self._packet_start
        if one_rtt:
            p[0] = (FIXED_BIT | (self._spin_bit << 5) | (key_phase << 2)
                    | (PN_SEND_SIZE - 1))
            cid_len = PyBytes_GET_SIZE(self._peer_cid)
            memcpy(p + 1, PyBytes_AS_STRING(self._peer_cid), cid_len)
            p += 1 + cid_len
        else:
            length = packet_size - self._header_size + PN_SEND_SIZE + self._tag_size
            p[0] = <uint8_t>_encode_long_first_byte(self._version, self._packet_type,
                                                    PN_SEND_SIZE - 1)
            version = <uint32_t>self._version
            p[1] = <uint8_t>(version >> 24)
            p[2] = <uint8_t>(version >> 16)
            p[3] = <uint8_t>(version >> 8)
            p[4] = <uint8_t>version
            p += 5
            cid_len = PyBytes_GET_SIZE(self._peer_cid)
            p[0] = <uint8_t>cid_len
            memcpy(p + 1, PyBytes_AS_STRING(self._peer_cid), cid_len)
            p += 1 + cid_len
            cid_len = PyBytes_GET_SIZE(self._host_cid)
            p[0] = <uint8_t>cid_len
            memcpy(p + 1, PyBytes_AS_STRING(self._host_cid), cid_len)
            p += 1 + cid_len
            if self._packet_type is _INITIAL:
                token_len = PyBytes_GET_SIZE(self._peer_token)
                p = _put_varint(p, token_len)
                memcpy(p, PyBytes_AS_STRING(self._peer_token), token_len)
                p += token_len
            # the length as a 2-byte varint
            p[0] = <uint8_t>((length >> 8) | 0x40)
            p[1] = <uint8_t>length
            p += 2
        p[0] = <uint8_t>(self._packet_number >> 8)
        p[1] = <uint8_t>self._packet_number

        if self._tag_size != TAG_SIZE:
            raise ValueError("only 16-byte AEAD tags are supported")
        if m.pos + TAG_SIZE > m.end:
            raise BufferWriteError("Write out of bounds")
        p = m.base + self._packet_start
        keys.seal(p, self._header_size, packet_size - self._header_size,
                  <uint64_t>self._packet_number)
        m.pos = p + packet_size + TAG_SIZE
        sent_bytes = packet_size + TAG_SIZE

        packet_type = self._packet_type
        if packet_type is _INITIAL:
            epoch = _EPOCH_INITIAL
        elif packet_type is _HANDSHAKE:
            epoch = _EPOCH_HANDSHAKE
        else:
            epoch = _EPOCH_ONE_RTT
        handlers = self._packet_handlers
        if handlers is None:
            handlers = []
        self._packets.append(_sent_packet(
            epoch, self._pkt_in_flight, self._pkt_ack_eliciting, self._pkt_crypto,
            self._packet_number, packet_type, sent_bytes, handlers, self._packet_frames))
        if self._pkt_in_flight:
            self._datagram_flight_bytes += sent_bytes
        self._packet_number += 1
        self._packet_type = None
        self._packet_crypto = None
        self.quic_logger_frames = None
        # Short header packets cannot be followed by another packet in the datagram.
        if one_rtt:
            self._flush_current_datagram()
        return 0

    cdef int _flush_current_datagram(self) except -1:
        cdef fp_quic_buffer *m = self._mem
        cdef Py_ssize_t datagram_bytes = m.pos - m.base
        cdef int64_t extra
        if datagram_bytes:
            if self._datagram_needs_padding:
                # Bytes after the last packet: not PADDING frames, so neither in flight nor
                # congestion controlled (RFC 9002 section 2), but they count for
                # anti-amplification.
                extra = self._buffer_capacity - datagram_bytes
                if extra > 0:
                    if m.pos + extra > m.end:
                        raise BufferWriteError("Write out of bounds")
                    memset(m.pos, 0, extra)
                    m.pos += extra
                    datagram_bytes += extra
            self._datagrams.append(PyBytes_FromStringAndSize(<char *>m.base, datagram_bytes))
            self._flight_bytes += self._datagram_flight_bytes
            self._total_bytes += datagram_bytes
            self._datagram_init = True
            m.pos = m.base
        return 0
