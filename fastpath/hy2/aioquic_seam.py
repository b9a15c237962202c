"""The one place where fastpath reaches into aioquic's internals for its compiled QUIC path.

Why a seam: aioquic's QuicConnection builds every datagram with the ``QuicPacketBuilder`` name
of its own module (``aioquic.quic.connection``), and that per-packet Python is most of a
Hysteria 2 worker's time at data rate (issue 12).  fastpath replaces that name with its compiled
builder (``fastpath.hy2.quic_builder``), which relies on aioquic internals:

- the memory layout of aioquic's C ``Buffer`` (checked by ``quic_builder.layout_ok()``),
- ``CryptoPair._update_key_requested`` / ``_update_key`` and the ``CryptoContext`` fields
  ``aead``, ``hp``, ``secret``, ``cipher_suite``, ``version``, ``key_phase``,
- ``aioquic.quic.crypto.CIPHER_SUITES`` and ``derive_key_iv_hp``,
- the ``QuicSentPacket`` fields and the ``QuicPacketBuilder`` interface the connection calls.

``tests/hy2/test_aioquic_seam.py`` fails loudly when an aioquic release changes any of these;
pyproject.toml pins aioquic to the tested range.

``FASTPATH_QUIC_BUILDER=aioquic`` keeps aioquic's own builder (for comparisons, or to rule the
compiled one out when chasing a bug); anything else, or nothing, installs ours.

The compiled loss recovery and ACK path (``fastpath.hy2.quic_recovery``, congestion control in
``fastpath.hy2.quic_cc``) come in through two more names, switched by
``FASTPATH_QUIC_RECOVERY=aioquic`` (aioquic's own) the same way:

- ``aioquic.quic.connection.QuicPacketRecovery``, the name the connection constructs its
  recovery with (keyword arguments ``congestion_control_algorithm``, ``initial_rtt``,
  ``max_datagram_size``, ``peer_completed_address_validation``, ``send_probe``, ``logger``,
  ``quic_logger``); a connection with a qlog trace, or an algorithm ours does not have, gets
  aioquic's;
- ``QuicConnection._handle_ack_frame``, which the connection's frame table binds at
  construction; it relies on ``_remote_ack_delay_exponent``, ``_quic_logger``, ``_spaces``,
  ``_loss`` and the ``QuicReceiveContext`` fields ``epoch``, ``time``, ``quic_logger_frames``.

The compiled 1-RTT receive path (``fastpath.hy2.quic_receive``) replaces
``QuicConnection.receive_datagram`` and hands every datagram it does not take to aioquic's; it
reads the connection's ``_state``, ``_quic_logger``, ``_network_paths``, ``host_cid``,
``_configuration.connection_id_length``, ``_cryptos``, ``_spaces``, ``_close_at``,
``_close_pending``, ``_is_client``, ``_peer_cid``, ``_spin_bit``/``_spin_highest_pn``,
``_ack_delay``, ``_idle_timeout()``, ``_ack_eliciting_sent_since_receipt``, the frame table
``_QuicConnection__frame_handlers``, and the packet space's receive fields.
``FASTPATH_QUIC_RECEIVE=aioquic`` keeps aioquic's.
"""
from __future__ import annotations

import os

import aioquic.quic.connection as _connection
from aioquic.quic.packet_builder import QuicPacketBuilder as AioquicPacketBuilder
from aioquic.quic.recovery import QuicPacketRecovery as AioquicPacketRecovery

ENV = "FASTPATH_QUIC_BUILDER"
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
    (``fastpath.hy2.quic_connection``).  Raises RuntimeError when the installed aioquic does
    not have the Buffer layout the compiled builder writes through, rather than corrupt packets.
    """
    choice = choice or chosen_builder()
    if choice == "aioquic":
        _connection.QuicPacketBuilder = AioquicPacketBuilder
        return choice
    from fastpath.hy2 import quic_builder

    if not quic_builder.layout_ok():
        raise RuntimeError(
            "aioquic's Buffer layout is not the one fastpath.hy2.quic_builder was written for; "
            f"set {ENV}=aioquic or install the aioquic version pinned in pyproject.toml")
    _connection.QuicPacketBuilder = quic_builder.QuicPacketBuilder
    return "fastpath"


def installed() -> str:
    """Which builder aioquic's connections use now."""
    return "aioquic" if _connection.QuicPacketBuilder is AioquicPacketBuilder else "fastpath"


def chosen_recovery() -> str:
    """``"aioquic"`` or ``"fastpath"``: what ``FASTPATH_QUIC_RECOVERY`` asks for."""
    return "aioquic" if os.environ.get(RECOVERY_ENV, "").strip().lower() == "aioquic" \
        else "fastpath"


def make_recovery(*, congestion_control_algorithm: str = "reno", quic_logger=None, **kwargs):
    """The recovery a new connection gets: the compiled one, unless the connection keeps a qlog
    trace (ours writes no recovery events) or asks for an algorithm ours lacks.
    ``FASTPATH_QUIC_CC=cubic`` (or ``reno``) picks the controller of every connection that is
    not switched to Brutal."""
    from fastpath.hy2 import quic_cc, quic_recovery

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
    from fastpath.hy2 import quic_receive, quic_recovery

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
    from fastpath.hy2 import quic_recovery

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
    from fastpath.hy2 import quic_receive

    _connection.QuicConnection.receive_datagram = quic_receive.receive_datagram
    return "fastpath"


def installed_receive() -> str:
    return "aioquic" if _connection.QuicConnection.receive_datagram is AIOQUIC_RECEIVE_DATAGRAM \
        else "fastpath"
