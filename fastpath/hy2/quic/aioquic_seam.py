"""The one place where fastpath reaches into aioquic's internals for its compiled QUIC path.

Why a seam: aioquic's QuicConnection builds every datagram with the ``QuicPacketBuilder`` name
of its own module (``aioquic.quic.connection``), and that per-packet Python is most of a
Hysteria 2 worker's time at data rate (issue 12).  fastpath replaces that name with its compiled
builder (``fastpath.hy2.quic.quic_builder``), which relies on aioquic internals:

- the memory layout of aioquic's C ``Buffer`` (checked by ``quic_builder.layout_ok()``),
- ``CryptoPair._update_key_requested`` / ``_update_key`` and the ``CryptoContext`` fields
  ``aead``, ``hp``, ``secret``, ``cipher_suite``, ``version``, ``key_phase``,
- ``aioquic.quic.crypto.CIPHER_SUITES`` and ``derive_key_iv_hp`` (used by the key setup
  both the builder and the receive path share, ``fastpath/hy2/quic/packet_protection.pxd``),
- the ``QuicSentPacket`` fields and the ``QuicPacketBuilder`` interface the connection calls.

``tests/hy2/test_aioquic_seam.py`` fails loudly when an aioquic release changes any of these;
pyproject.toml pins aioquic to the tested range.

``FASTPATH_QUIC_BUILDER=aioquic`` keeps aioquic's own builder (for comparisons, or to rule the
compiled one out when chasing a bug); anything else, or nothing, installs ours.

The compiled send path (``fastpath.hy2.quic.stream_send``, ``fastpath.hy2.quic.send_path``) replaces, for
Hysteria 2 connections, aioquic's stream sender and the data-rate part of its 1-RTT write loop.
It relies on:

- the ``QuicStream`` name of ``aioquic.quic.connection`` (every stream is made through it;
  fastpath's subclass gives streams with an ID the compiled ``StreamSendBuffer``), the
  ``QuicStream`` fields ``sender``, ``receiver``, ``stream_id``, ``is_blocked``,
  ``max_stream_data_local``, ``max_stream_data_local_sent``, ``max_stream_data_remote`` and
  the receiver's ``highest_offset``, ``stop_pending``, ``is_finished``, ``_stop_error_code``,
  ``on_stop_sending_delivery`` (STOP_SENDING is written by the compiled loop), and the
  discarding of finished streams (``_streams``, the ``Limit`` ``frame_type`` of
  ``_local_max_streams_bidi`` / ``_uni`` and aioquic's MAX_STREAMS batching rule);
- the stream-sender interface the connection and recovery call (``write``, ``get_frame``,
  ``on_data_delivery``, ``reset``, ``get_reset_frame``, ``on_reset_delivery`` and the fields
  ``buffer_is_empty``, ``highest_offset``, ``is_finished``, ``reset_pending``, ``next_offset``);
- ``QuicConnection._write_application`` and ``_flush_builder`` (their signatures; the
  compiled versions hand the call back to them when something unusual is pending) and the
  connection fields they read: ``_cryptos``, ``_crypto_streams``, ``_spaces`` (``ack_at``,
  ``ack_queue``, ``largest_received_time``, ``largest_received_packet``), ``_loss``
  (``_pacer.next_send_time``/``update_after_send``, ``on_packet_sent``), ``_pacing_at``,
  ``_handshake_complete``, ``_handshake_done_pending``, ``_probe_pending``, ``_ping_pending``,
  ``_host_cids`` (``was_sent``), ``_retire_connection_ids``, ``_streams_blocked_pending``,
  ``_local_max_data`` / ``_local_max_streams_bidi`` / ``_local_max_streams_uni`` (``Limit``:
  ``value``, ``sent``, ``used``), ``_streams``, ``_streams_queue``, ``_datagrams_pending``,
  ``_remote_max_data``, ``_remote_max_data_used``, ``_local_ack_delay_exponent``,
  ``_quic_logger``, ``_packet_number``, ``_ack_eliciting_sent_since_receipt``, ``_close_at``,
  ``_idle_timeout()``, ``_is_client``, ``_discard_epoch``, and the delivery handlers
  ``_on_ack_delivery``, ``_on_ping_delivery``, ``_on_connection_limit_delivery``,
  ``_on_max_stream_data_delivery``; the network path's ``is_validated``,
  ``local_challenge_sent``, ``remote_challenges``, ``addr``, ``bytes_sent``;
- for the relay pump's read-ahead bound (``Hy2QuicConnection.send_window``): the peer's
  transport parameters as ``_remote_max_stream_data_bidi_local``, ``_bidi_remote``, ``_uni``;
- ``RangeSet``'s private list of ``range`` objects (``_RangeSet__ranges``; any other ack queue
  type is read through its sequence interface).

``FASTPATH_QUIC_SENDPATH=aioquic`` keeps aioquic's stream sender and write loop; the compiled
write loop also needs the compiled builder (with ``FASTPATH_QUIC_BUILDER=aioquic`` it hands
every call to aioquic's loop).
The compiled loss recovery and ACK path (``fastpath.hy2.quic.quic_recovery``, congestion control in
``fastpath.hy2.quic.quic_cc``) come in through two more names, switched by
``FASTPATH_QUIC_RECOVERY=aioquic`` (aioquic's own) the same way:

- ``aioquic.quic.connection.QuicPacketRecovery``, the name the connection constructs its
  recovery with (keyword arguments ``congestion_control_algorithm``, ``initial_rtt``,
  ``max_datagram_size``, ``peer_completed_address_validation``, ``send_probe``, ``logger``,
  ``quic_logger``); a connection with a qlog trace, or an algorithm ours does not have, gets
  aioquic's;
- ``QuicConnection._handle_ack_frame``, which the connection's frame table binds at
  construction; it relies on ``_remote_ack_delay_exponent``, ``_quic_logger``, ``_spaces``,
  ``_loss`` and the ``QuicReceiveContext`` fields ``epoch``, ``time``, ``quic_logger_frames``.

The compiled 1-RTT receive path (``fastpath.hy2.quic.quic_receive``) replaces
``QuicConnection.receive_datagram`` and hands every datagram it does not take to aioquic's; it
reads the connection's ``_state``, ``_quic_logger``, ``_network_paths``, ``host_cid``,
``_configuration.connection_id_length``, ``_cryptos``, ``_spaces``, ``_close_at``,
``_close_pending``, ``_is_client``, ``_peer_cid``, ``_spin_bit``/``_spin_highest_pn``,
``_ack_delay``, ``_idle_timeout()``, ``_ack_eliciting_sent_since_receipt``, the frame table
``_QuicConnection__frame_handlers``, and the packet space's receive fields.
``FASTPATH_QUIC_RECEIVE=aioquic`` keeps aioquic's.
The compiled UDP pumps (``fastpath.hy2.server.udp_pump``, ``fastpath.hy2.client.client_udp_pump``) append
DATAGRAM payloads to the connection's ``_datagrams_pending`` directly.

Outside the compiled modules, aioquic's private state is read and written in two Python modules
(``tests/hy2/test_aioquic_seam.py`` checks that no other does):

- this one, whose named functions at the end are what the rest of fastpath calls
  (``recovery``, ``congestion_control``, ``replace_congestion_control`` (``_loss``, ``_cc``,
  ``_pacer``), ``smoothed_rtt`` / ``smoothed_rtt_ms`` (``_rtt_initialized``,
  ``_rtt_smoothed``), ``max_datagram_size``, ``handshake_complete``, ``is_terminated``
  (``_state``), ``streams``, ``peer_reset_token`` (``_peer_cid``), ``peer_certificate`` (the
  TLS context's ``_peer_certificate``) and ``local_parameters`` (``_local_max_*``,
  ``_configuration``, ``_host_cids``, ``_original_destination_connection_id``,
  ``_local_active_connection_id_limit``, ``_local_initial_source_connection_id``,
  ``_retry_source_connection_id``));
- ``fastpath.hy2.quic.quic_connection``, the ``QuicConnection`` subclass, which overrides
  ``_serialize_transport_parameters``, ``_replenish_connection_ids``, ``_write_application``,
  ``_flush_builder`` and ``_write_stream_limits`` and reads ``_peer_cid``,
  ``_max_datagram_size``, ``_remote_max_datagram_frame_size``, the sender's
  ``_buffer_start`` / ``_buffer_stop`` and the fields above.

Besides, ``fastpath.hy2.wire.h3_compat`` subclasses aioquic's ``H3Connection`` and overrides its
``_validate_settings``, ``_get_local_settings``, ``_create_uni_stream`` and its ``_encoder`` /
``_decoder``; the test checks those too.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import aioquic.quic.connection as _connection
import aioquic.quic.stream as _stream
from aioquic.quic.packet_builder import QuicPacketBuilder as AioquicPacketBuilder
from aioquic.quic.recovery import QuicPacketRecovery as AioquicPacketRecovery

ENV = "FASTPATH_QUIC_BUILDER"
SEND_ENV = "FASTPATH_QUIC_SENDPATH"
AioquicQuicStream = _connection.QuicStream
_QuicStreamReceiver = _stream.QuicStreamReceiver
_StreamSendBuffer = None        # fastpath.hy2.quic.stream_send's, once install_send_path ran
# Whether Hy2QuicConnection writes through fastpath.hy2.quic.send_path (set by install_send_path).
send_path_on = False
RECOVERY_ENV = "FASTPATH_QUIC_RECOVERY"
RECEIVE_ENV = "FASTPATH_QUIC_RECEIVE"
CC_ENV = "FASTPATH_QUIC_CC"   # reno (default, aioquic's) or cubic: the compiled recovery's controller
AIOQUIC_HANDLE_ACK_FRAME = _connection.QuicConnection._handle_ack_frame
AIOQUIC_RECEIVE_DATAGRAM = _connection.QuicConnection.receive_datagram


def chosen_builder() -> str:
    """``"aioquic"`` or ``"fastpath"``: what ``FASTPATH_QUIC_BUILDER`` asks for."""
    return "aioquic" if os.environ.get(ENV, "").strip().lower() == "aioquic" else "fastpath"


def install(choice: str | None = None) -> str:
    """Points aioquic's connection module at the chosen packet builder; returns the choice.

    Idempotent; called once when fastpath's QUIC code is imported
    (``fastpath.hy2.quic.quic_connection``).  Raises RuntimeError when the installed aioquic does
    not have the Buffer layout the compiled builder writes through, rather than corrupt packets.
    """
    choice = choice or chosen_builder()
    if choice == "aioquic":
        _connection.QuicPacketBuilder = AioquicPacketBuilder
        return choice
    from fastpath.hy2.quic import quic_builder

    if not quic_builder.layout_ok():
        raise RuntimeError(
            "aioquic's Buffer layout is not the one fastpath.hy2.quic.quic_builder was written for; "
            f"set {ENV}=aioquic or install the aioquic version pinned in pyproject.toml")
    _connection.QuicPacketBuilder = quic_builder.QuicPacketBuilder
    return "fastpath"


def installed() -> str:
    """Which builder aioquic's connections use now."""
    return "aioquic" if _connection.QuicPacketBuilder is AioquicPacketBuilder else "fastpath"


# -- the compiled send path ----------------------------------------------------------------------
def chosen_send_path() -> str:
    """``"aioquic"`` or ``"fastpath"``: what ``FASTPATH_QUIC_SENDPATH`` asks for."""
    return "aioquic" if os.environ.get(SEND_ENV, "").strip().lower() == "aioquic" else "fastpath"


class CompiledSenderStream(AioquicQuicStream):
    """aioquic's QuicStream whose send half is fastpath's compiled ``StreamSendBuffer``
    (the crypto streams, made without an ID, keep aioquic's sender).

    A stream with an ID sets aioquic's fields itself rather than through aioquic's
    ``__init__``, which would build a Python sender only to be replaced: one stream per
    proxied connection, so this is on the short-connection path.
    ``tests/hy2/test_aioquic_seam.py`` checks that the fields are aioquic's."""

    def __init__(self, stream_id=None, max_stream_data_local=0, max_stream_data_remote=0,
                 readable=True, writable=True):
        if stream_id is None:
            super().__init__(stream_id=stream_id, max_stream_data_local=max_stream_data_local,
                             max_stream_data_remote=max_stream_data_remote, readable=readable,
                             writable=writable)
            return
        self.is_blocked = False
        self.max_stream_data_local = max_stream_data_local
        self.max_stream_data_local_sent = max_stream_data_local
        self.max_stream_data_remote = max_stream_data_remote
        self.receiver = _QuicStreamReceiver(stream_id=stream_id, readable=readable)
        self.sender = (_StreamSendBuffer or _stream_send_buffer())(stream_id, writable)
        self.stream_id = stream_id


def _stream_send_buffer():
    global _StreamSendBuffer
    from fastpath.hy2.quic.stream_send import StreamSendBuffer
    _StreamSendBuffer = StreamSendBuffer
    return StreamSendBuffer


def install_send_path(choice: str | None = None) -> str:
    """Makes aioquic's connections create streams with the compiled sender and Hysteria 2
    connections write 1-RTT packets through ``fastpath.hy2.quic.send_path`` (or undoes both);
    returns the choice.  Idempotent; called with ``install``."""
    global send_path_on
    choice = choice or chosen_send_path()
    if choice == "aioquic":
        _connection.QuicStream = AioquicQuicStream
        send_path_on = False
        return choice
    from fastpath.hy2.quic import send_path  # noqa: F401  (compiled; fails here if not built)
    _stream_send_buffer()
    _connection.QuicStream = CompiledSenderStream
    send_path_on = True
    return "fastpath"


def installed_send_path() -> str:
    return "fastpath" if send_path_on and _connection.QuicStream is CompiledSenderStream \
        else "aioquic"
def chosen_recovery() -> str:
    """``"aioquic"`` or ``"fastpath"``: what ``FASTPATH_QUIC_RECOVERY`` asks for."""
    return "aioquic" if os.environ.get(RECOVERY_ENV, "").strip().lower() == "aioquic" \
        else "fastpath"


def make_recovery(*, congestion_control_algorithm: str = "reno", quic_logger=None, **kwargs):
    """The recovery a new connection gets: the compiled one, unless the connection keeps a qlog
    trace (ours writes no recovery events) or asks for an algorithm ours lacks.
    ``FASTPATH_QUIC_CC=cubic`` (or ``reno``) picks the controller of every connection that is
    not switched to Brutal."""
    from fastpath.hy2.quic import quic_cc, quic_recovery

    override = os.environ.get(CC_ENV, "").strip().lower()
    if override in ("reno", "cubic"):
        congestion_control_algorithm = override
    if quic_logger is not None or congestion_control_algorithm not in quic_cc.NAMES:
        return AioquicPacketRecovery(congestion_control_algorithm=congestion_control_algorithm,
                                     quic_logger=quic_logger, **kwargs)
    return quic_recovery.QuicPacketRecovery(
        congestion_control_algorithm=congestion_control_algorithm, **kwargs)


def install_recovery(choice: str | None = None) -> str:
    """Points aioquic's connection at the chosen recovery and ACK frame handler (new
    connections only); returns the choice."""
    from fastpath.hy2.quic import quic_receive, quic_recovery

    choice = choice or chosen_recovery()
    if choice == "aioquic":
        _connection.QuicPacketRecovery = AioquicPacketRecovery
        _connection.QuicConnection._handle_ack_frame = AIOQUIC_HANDLE_ACK_FRAME
        quic_receive.set_direct_ack(False)
        return choice
    _connection.QuicPacketRecovery = make_recovery
    _connection.QuicConnection._handle_ack_frame = quic_recovery.handle_ack_frame
    quic_receive.set_direct_ack(True)
    return "fastpath"


def installed_recovery() -> str:
    """Which recovery new aioquic connections get now."""
    return "fastpath" if _connection.QuicPacketRecovery is make_recovery else "aioquic"


def is_compiled_recovery(recovery) -> bool:
    from fastpath.hy2.quic import quic_recovery

    return isinstance(recovery, quic_recovery.QuicPacketRecovery)


def chosen_receive() -> str:
    """``"aioquic"`` or ``"fastpath"``: what ``FASTPATH_QUIC_RECEIVE`` asks for."""
    return "aioquic" if os.environ.get(RECEIVE_ENV, "").strip().lower() == "aioquic" \
        else "fastpath"


def install_receive(choice: str | None = None) -> str:
    """Points aioquic's connections at the chosen ``receive_datagram``; returns the choice."""
    choice = choice or chosen_receive()
    if choice == "aioquic":
        _connection.QuicConnection.receive_datagram = AIOQUIC_RECEIVE_DATAGRAM
        return choice
    from fastpath.hy2.quic import quic_receive

    _connection.QuicConnection.receive_datagram = quic_receive.receive_datagram
    return "fastpath"


def installed_receive() -> str:
    return "aioquic" if _connection.QuicConnection.receive_datagram is AIOQUIC_RECEIVE_DATAGRAM \
        else "fastpath"


# -- named reads and writes for the rest of fastpath ----------------------------------------------
# Everything outside this module and fastpath.hy2.quic.quic_connection reaches aioquic's private
# state through these, so an aioquic release that renames one breaks here (and in
# tests/hy2/test_aioquic_seam.py), not in the server, the client or the mesh.
def recovery(quic):
    """The connection's loss recovery: aioquic's ``QuicPacketRecovery`` or the compiled one."""
    return quic._loss


def congestion_control(quic):
    """The controller the connection's recovery sends under (``algorithm`` names the compiled
    one's; aioquic's are its classes, or ``fastpath.hy2.quic.brutal``'s)."""
    return quic._loss._cc


def replace_congestion_control(recovery, controller, pacer) -> None:
    """Makes aioquic's (Python) recovery send under ``controller``, paced by ``pacer``."""
    recovery._cc = controller
    recovery._pacer = pacer


def smoothed_rtt(recovery) -> float:
    """The recovery's smoothed RTT in seconds (0 before the first sample)."""
    return recovery._rtt_smoothed


def smoothed_rtt_ms(quic) -> float | None:
    """The connection's smoothed RTT in milliseconds, None before the first RTT sample."""
    loss = quic._loss
    if not loss._rtt_initialized:
        return None
    return round(loss._rtt_smoothed * 1000, 2)


def max_datagram_size(quic) -> int:
    """The UDP payload size the connection builds packets to."""
    return quic._max_datagram_size


def handshake_complete(quic) -> bool:
    return quic._handshake_complete


def is_terminated(quic) -> bool:
    """The connection reached aioquic's final state (it may not have said so in an event)."""
    return quic._state is _connection.QuicConnectionState.TERMINATED


def streams(quic) -> dict:
    """aioquic's live streams of the connection, by stream ID (read only: aioquic discards the
    finished ones itself)."""
    return quic._streams


def peer_reset_token(quic) -> bytes | None:
    """The stateless-reset token the peer gave with the connection ID we send to."""
    return quic._peer_cid.stateless_reset_token


def peer_certificate(quic):
    """The peer's leaf certificate (``cryptography`` x509), None before the TLS handshake
    received it."""
    tls = getattr(quic, "tls", None)       # aioquic makes it when the connection starts
    return None if tls is None else tls._peer_certificate


class LocalParameters(NamedTuple):
    """What a connection enforces on its peer, as its transport parameters advertise it."""
    max_stream_data_bidi_local: int
    max_stream_data_bidi_remote: int
    max_stream_data_uni: int
    max_data: int
    max_streams_bidi: int
    max_streams_uni: int
    idle_timeout: float
    stateless_reset_token: bytes
    original_destination_connection_id: bytes | None
    active_connection_id_limit: int
    initial_source_connection_id: bytes | None
    retry_source_connection_id: bytes | None
    max_datagram_frame_size: int | None


def local_parameters(quic) -> LocalParameters:
    """The connection's own limits and IDs, read from aioquic's state so that what is
    advertised is what it enforces (``fastpath.hy2.quic.server_transport_params``)."""
    return LocalParameters(
        quic._local_max_stream_data_bidi_local, quic._local_max_stream_data_bidi_remote,
        quic._local_max_stream_data_uni, quic._local_max_data.value,
        quic._local_max_streams_bidi.value, quic._local_max_streams_uni.value,
        quic._configuration.idle_timeout, quic._host_cids[0].stateless_reset_token,
        quic._original_destination_connection_id, quic._local_active_connection_id_limit,
        quic._local_initial_source_connection_id, quic._retry_source_connection_id,
        quic._configuration.max_datagram_frame_size)
