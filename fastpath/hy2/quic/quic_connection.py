"""aioquic's QuicConnection with the three guards Hysteria 2 needs on top of it.

- DATAGRAM frames: aioquic queues any size and a frame larger than one packet blocks the queue
  for good; ``queue_datagram`` checks the size against the room one packet has and the peer's
  advertised ``max_datagram_frame_size``, and bounds the queue.  Both ends advertise 1200, as
  the reference does: quic-go builds of the 2.6 line size fragments from the path MTU when the
  limit is larger and then drop the frames that do not fit a packet.
- Send side back-pressure: ``send_stream_data`` buffers without limit, so callers watch
  ``unsent_bytes`` and pause their source; ``send_window`` says how far ahead is useful.
- Receive side back-pressure: aioquic doubles a stream's credit whenever half is used, so a
  slow consumer could be sent unbounded data.  Here the credit is a sliding window over what was
  delivered, and ``hold_credit`` freezes it while the consumer (a TCP socket) is full.
"""
from __future__ import annotations

import os

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import MAX_STREAM_DATA_FRAME_CAPACITY, QuicConnection
from aioquic.quic.packet import QuicFrameType

from fastpath.hy2.quic import aioquic_seam
from fastpath.hy2.quic.server_transport_params import (ACTIVE_CONNECTION_ID_LIMIT, UNI_STREAMS,
                                                  server_transport_parameters)
from fastpath.hy2.quic.stateless_reset import apply_tokens

aioquic_seam.install()  # the compiled packet builder, unless FASTPATH_QUIC_BUILDER=aioquic
aioquic_seam.install_send_path()  # the compiled send path, unless FASTPATH_QUIC_SENDPATH=aioquic
from fastpath.hy2.quic import send_path  # noqa: E402
aioquic_seam.install_recovery()  # compiled recovery + ACK path, unless FASTPATH_QUIC_RECOVERY=aioquic
aioquic_seam.install_receive()   # compiled 1-RTT receive path, unless FASTPATH_QUIC_RECEIVE=aioquic

# FASTPATH_QUIC_PUMPSINK=0: STREAM bytes reach relay pumps through aioquic's events only.
PUMP_SINK = os.environ.get("FASTPATH_QUIC_PUMPSINK", "1") != "0"

# Which connections acknowledge as quic-go does (Hy2QuicConnection.eager_ack): "all" (the
# default: the server's and the client's), "client" (fastpath client and the node's exit
# peers only) or "none" (aioquic's delayed ACKs everywhere); the last two for same-run
# comparisons.  The server's too: in the helper's runs an eager server took the official
# client's upload from 97-108 to 124 MB/s; on a quiet machine (bench/RESULTS.md, end of stop 28)
# the official client through an eager server moved 0.64x / 0.93x of sing-box down / up against
# 0.57x / 0.90x for the tree before, five rounds each -- within the rounds' spread, not worse.
EAGER_ACK_CHOICES = ("all", "client", "none")
EAGER_ACK = os.environ.get("FASTPATH_QUIC_EAGER_ACK", "all")
if EAGER_ACK not in EAGER_ACK_CHOICES:
    raise ValueError(f"FASTPATH_QUIC_EAGER_ACK must be one of {', '.join(EAGER_ACK_CHOICES)}; "
                     f"got {EAGER_ACK!r}")


# An eager receiver that reads its datagrams in batches (the client's recvmmsg/GRO loop,
# quic_receive.receive_batch) sends the ACK due after every this many datagrams of a batch,
# not only at its end; FASTPATH_QUIC_ACK_SPLIT=0: once per batch.
ACK_SPLIT = int(os.environ.get("FASTPATH_QUIC_ACK_SPLIT", "16"))
if ACK_SPLIT < 0:
    raise ValueError(f"FASTPATH_QUIC_ACK_SPLIT must be 0 or more; got {ACK_SPLIT}")


def eager_ack_for(is_client: bool, choice: str | None = None) -> bool:
    """Whether a connection of this side acknowledges eagerly under ``choice`` (default: the
    FASTPATH_QUIC_EAGER_ACK setting)."""
    choice = choice or EAGER_ACK
    return choice == "all" or (choice == "client" and is_client)

# 1-RTT packet overhead around a DATAGRAM frame: first byte, 2-byte packet number, 16-byte
# AEAD tag, frame type and a 2-byte length (the connection ID is added per connection).
DATAGRAM_OVERHEAD = 1 + 2 + 16 + 1 + 2
MAX_QUEUED_DATAGRAMS = 512
# The max_datagram_frame_size we advertise (client and server), the reference's value.
RECEIVE_DATAGRAM_LIMIT = 1200
# DATAGRAM frame type and a 2-byte length: what the peer's frame-size limit includes.
DATAGRAM_FRAME_HEADER = 1 + 2


def quic_configuration(*, is_client: bool, quic_settings, **kwargs) -> QuicConfiguration:
    """A QuicConfiguration with Hysteria 2's transport: ALPN h3, datagrams accepted, the
    configured windows and idle timeout."""
    return QuicConfiguration(
        is_client=is_client,
        alpn_protocols=["h3"],
        max_datagram_frame_size=RECEIVE_DATAGRAM_LIMIT,
        idle_timeout=quic_settings.max_idle_timeout,
        max_stream_data=quic_settings.init_stream_window,
        max_data=quic_settings.init_conn_window,
        **kwargs,
    )


class Hy2QuicConnection(QuicConnection):
    # Called by the compiled receive path with each DATAGRAM payload and the time
    # (fastpath.hy2.quic.quic_receive): True when it took the payload, else aioquic's event is made.
    datagram_sink = None
    # The glue's {stream id: RelayPump}: the compiled receive path hands a pump the bytes of
    # an in-order STREAM frame itself, without aioquic's event (fastpath.hy2.quic.quic_receive).
    stream_pumps = None
    # Acknowledge at once on the second ack-eliciting packet since the last ACK and on a
    # packet out of order, as quic-go does, instead of aioquic's 1 ms delay after the first
    # (the compiled receive path reads it once per connection: quic_receive._schedule_ack).
    # Why: with aioquic's rule our client sent the server one ACK per 46 packets of a
    # download, 1 ms after the packets (the official client: one per 22, 0.18 ms), and the
    # server, fed few late ACKs, sent in bursts and spent 2.5x the CPU per byte it spends on
    # the official client (issue 12).
    eager_ack = False

    def __init__(self, *, configuration: QuicConfiguration, stream_window: int | None = None,
                 max_incoming_streams: int | None = None,
                 initial_streams: tuple[int, int] | None = None,
                 reset_key: bytes | None = None, **kwargs) -> None:
        # Server: stateless-reset tokens derived from the node's key (fastpath.hy2.quic.stateless_reset)
        # so a restarted worker can still end this connection for its client.
        self._reset_key = None if configuration.is_client else reset_key
        # Server: told every connection ID of ours as soon as it exists, before any is sent to
        # the peer (aioquic's ConnectionIdIssued event comes only after the frame went out, and
        # a Go client moves to a new ID at once, so its next packets would find no route).
        self.on_host_cids = None
        super().__init__(configuration=configuration, **kwargs)
        self.eager_ack = eager_ack_for(configuration.is_client)
        if self._reset_key:
            apply_tokens(self._reset_key, self._host_cids)
        if not configuration.is_client:
            # The reference server's limits (fastpath.hy2.quic.server_transport_params).
            self._local_active_connection_id_limit = ACTIVE_CONNECTION_ID_LIMIT
            limit = self._local_max_streams_uni
            limit.value = limit.sent = UNI_STREAMS
        if initial_streams:
            # The (bidirectional, unidirectional) stream limits advertised in the handshake.
            for limit, value in zip((self._local_max_streams_bidi, self._local_max_streams_uni),
                                    initial_streams):
                limit.value = limit.sent = value
        if configuration.is_client and len(self._peer_cid.cid) < 8:
            # aioquic sizes the first destination ID like our own; with a zero-length own ID
            # that would be empty, and a server must drop an Initial whose ID is under 8 bytes.
            self._peer_cid.cid = os.urandom(8)
            self._original_destination_connection_id = self._peer_cid.cid
        self._stream_window = stream_window or configuration.max_stream_data
        self._held: set[int] = set()
        if max_incoming_streams:
            limit = self._local_max_streams_bidi
            limit.value = limit.sent = max_incoming_streams

    def _serialize_transport_parameters(self) -> bytes:
        if self._is_client:
            return super()._serialize_transport_parameters()
        return server_transport_parameters(self)

    def _replenish_connection_ids(self) -> None:
        # A zero-length connection ID (what recent reference clients use) cannot have
        # alternatives: announcing more would be a protocol violation.
        if self._configuration.connection_id_length:
            super()._replenish_connection_ids()
            if self._reset_key:
                apply_tokens(self._reset_key, self._host_cids)
            if self.on_host_cids is not None:
                self.on_host_cids([record.cid for record in self._host_cids])

    # -- datagrams --------------------------------------------------------------------------
    def datagram_room(self) -> int:
        """Largest DATAGRAM payload that fits in one packet to the peer now and in the frame
        size the peer advertised (none advertised: only the packet bounds it, as recent
        reference clients accept DATAGRAMs without announcing a limit)."""
        room = self._max_datagram_size - DATAGRAM_OVERHEAD - len(self._peer_cid.cid)
        limit = self._remote_max_datagram_frame_size
        if limit is not None and limit - DATAGRAM_FRAME_HEADER < room:
            room = limit - DATAGRAM_FRAME_HEADER
        return room if room > 0 else 0

    def queue_datagram(self, data: bytes) -> bool:
        """Queue one DATAGRAM frame; False (dropped) if it would not fit in a packet or the
        queue is full, as an unreliable datagram may be."""
        if len(data) > self.datagram_room() or len(self._datagrams_pending) >= MAX_QUEUED_DATAGRAMS:
            return False
        self._datagrams_pending.append(data)
        return True

    # -- streams ----------------------------------------------------------------------------
    def unsent_bytes(self, stream_id: int) -> int:
        """Bytes written to a stream and not yet acknowledged by the peer."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return sender._buffer_stop - sender._buffer_start

    def send_window(self, stream_id: int) -> int:
        """The peer's flow-control window for what we send on a stream: the credit its
        transport parameters give a stream of this kind when it opens
        (initial_max_stream_data_bidi_local for a stream the peer opened, _bidi_remote for one
        we opened, RFC 9000 section 18.2).  A sender that keeps no more than this unacknowledged
        reads its source no further ahead of the peer than the peer lets it send anyway."""
        if stream_id & 2:
            return self._remote_max_stream_data_uni
        if bool(stream_id & 1) == (not self._is_client):       # we opened it
            return self._remote_max_stream_data_bidi_remote
        return self._remote_max_stream_data_bidi_local

    def hold_credit(self, stream_id: int, hold: bool) -> None:
        """Stop (or resume) granting the peer more credit on a stream."""
        if hold:
            self._held.add(stream_id)
        else:
            self._held.discard(stream_id)

    # -- the send side: compiled unless FASTPATH_QUIC_SENDPATH=aioquic (aioquic_seam) ----------
    def _write_application(self, builder, network_path, now) -> None:
        if aioquic_seam.send_path_on:
            send_path.write_application(self, builder, network_path, now)
        else:
            super()._write_application(builder, network_path, now)

    def _flush_builder(self, builder, network_path, peer_cid, now):
        if aioquic_seam.send_path_on:
            return send_path.flush_builder(self, builder, network_path, peer_cid, now)
        return super()._flush_builder(builder, network_path, peer_cid, now)

    # (fastpath.hy2.quic.send_path._write_limits applies the same window policy in C)
    def _write_stream_limits(self, builder, space, stream) -> None:
        held = self._held
        if stream.max_stream_data_local and (not held or stream.stream_id not in held):
            delivered = stream.receiver.highest_offset
            if delivered + self._stream_window // 2 > stream.max_stream_data_local:
                stream.max_stream_data_local = delivered + self._stream_window
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(QuicFrameType.MAX_STREAM_DATA,
                                      capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                                      handler=self._on_max_stream_data_delivery,
                                      handler_args=(stream,))
            buf.push_uint_var(stream.stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local


# -- stream ends, as both sides close a proxy stream ----------------------------------------------
def finish_stream(quic, stream_id: int, error_code: int) -> None:
    """Our side is done: FIN ours and STOP_SENDING theirs (no half-close, as the reference).
    Either may fail when the stream is already gone, which is fine."""
    try:
        quic.send_stream_data(stream_id, b"", end_stream=True)
    except Exception:
        pass
    try:
        quic.stop_stream(stream_id, error_code)
    except Exception:
        pass


def abort_stream(quic, stream_id: int, error_code: int) -> None:
    """Close both directions abruptly: RESET_STREAM ours, STOP_SENDING theirs."""
    for op in (quic.reset_stream, quic.stop_stream):
        try:
            op(stream_id, error_code)
        except Exception:
            pass


class QuicGlue:
    """What the server's and the client's per-connection glue share: sending the datagrams
    aioquic has ready and keeping one event-loop timer at aioquic's next deadline.

    Subclasses set ``quic`` and ``loop``, an empty list ``unflushed`` and define
    ``process_events(now)``, which ends with ``flush_pumps()``.
    """

    timer = None
    timer_at = None

    # -- relay pumps: their QUIC -> TCP bytes are written once per batch ---------------------
    def attach_pumps(self) -> None:
        """Lets the compiled receive path hand in-order stream bytes to ``self.pumps``
        directly (``Hy2QuicConnection.stream_pumps``), unless FASTPATH_QUIC_PUMPSINK=0."""
        if PUMP_SINK:
            self.quic.stream_pumps = self.pumps

    def pump_pending(self, pump) -> None:
        """A pump kept bytes for its TCP socket (``RelayPump.from_quic``)."""
        self.unflushed.append(pump)

    def flush_pumps(self) -> None:
        """Every pump that kept bytes since the last call writes them, one write each."""
        pumps = self.unflushed
        if pumps:
            self.unflushed = []
            for pump in pumps:
                pump.flush()

    def send_datagrams(self, endpoint) -> None:
        datagrams = self.quic.datagrams_to_send(self.loop.time())
        if datagrams:
            endpoint.send(datagrams)
        timer_at = self.quic.get_timer()
        if timer_at != self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if timer_at is not None:
                self.timer = self.loop.call_at(timer_at, self._on_timer)
            self.timer_at = timer_at

    def _on_timer(self) -> None:
        self.timer = None
        self.timer_at = None
        now = self.loop.time()
        self.quic.handle_timer(now)
        self.process_events(now)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
