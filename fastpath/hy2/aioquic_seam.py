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
"""
from __future__ import annotations

import os

import aioquic.quic.connection as _connection
from aioquic.quic.packet_builder import QuicPacketBuilder as AioquicPacketBuilder

ENV = "FASTPATH_QUIC_BUILDER"


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
