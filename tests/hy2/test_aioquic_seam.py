"""The aioquic internals that fastpath.hy2.aioquic_seam and the compiled packet builder rely on.

Each test names one assumption; when an aioquic release breaks it, this fails here, loudly,
before any packet is built wrong.  pyproject.toml pins aioquic to the range tested."""
from __future__ import annotations

import dataclasses
import inspect
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import aioquic.quic.connection as connection_module
from aioquic import _crypto
from aioquic.buffer import Buffer
from aioquic.quic import crypto as crypto_module
from aioquic.quic import packet_builder
from aioquic.tls import CipherSuite

from fastpath.hy2 import aioquic_seam, quic_builder

ROOT = Path(__file__).resolve().parents[2]


def test_aioquic_version_is_the_pinned_one():
    pin = re.search(r'"aioquic([^"]*)"', (ROOT / "pyproject.toml").read_text()).group(1)
    low, high = re.fullmatch(r">=([\d.]+),<([\d.]+)", pin).groups()
    installed = tuple(int(x) for x in metadata.version("aioquic").split(".")[:3])
    assert tuple(int(x) for x in low.split(".")) <= installed < tuple(
        int(x) for x in high.split(".")), (metadata.version("aioquic"), pin)


def test_the_connection_builds_through_its_module_global():
    assert connection_module.QuicPacketBuilder in (packet_builder.QuicPacketBuilder,
                                                   quic_builder.QuicPacketBuilder)
    source = inspect.getsource(connection_module.QuicConnection)
    # datagrams_to_send and the probing path both build through the module-level name
    assert source.count("QuicPacketBuilder(") == 2
    assert connection_module.QuicPacketBuilderStop is packet_builder.QuicPacketBuilderStop


def test_builder_interface_is_the_one_ours_offers():
    cls = packet_builder.QuicPacketBuilder
    public = sorted(n for n, _ in inspect.getmembers(cls) if not n.startswith("_"))
    assert public == ["flush", "packet_is_empty", "packet_number", "remaining_buffer_space",
                      "remaining_flight_space", "start_frame", "start_packet"]
    for name in public:
        assert hasattr(quic_builder.QuicPacketBuilder, name)
    assert list(inspect.signature(cls.__init__).parameters) == [
        "self", "host_cid", "peer_cid", "version", "is_client", "max_datagram_size",
        "packet_number", "peer_token", "quic_logger", "spin_bit"]
    assert list(inspect.signature(cls.start_frame).parameters) == [
        "self", "frame_type", "capacity", "handler", "handler_args"]
    assert list(inspect.signature(cls.start_packet).parameters) == [
        "self", "packet_type", "crypto"]
    # attributes the connection sets or reads on a fresh builder
    builder = cls(host_cid=b"", peer_cid=b"", version=1, is_client=True, max_datagram_size=1200)
    for name in ("max_flight_bytes", "max_total_bytes", "quic_logger_frames"):
        assert getattr(builder, name) is None
    assert packet_builder.PACKET_NUMBER_SEND_SIZE == 2


def test_sent_packet_record_fields():
    assert [f.name for f in dataclasses.fields(packet_builder.QuicSentPacket)] == [
        "epoch", "in_flight", "is_ack_eliciting", "is_crypto_packet", "packet_number",
        "packet_type", "sent_time", "sent_bytes", "delivery_handlers", "quic_logger_frames"]


def test_crypto_internals():
    pair = crypto_module.CryptoPair()
    pair.setup_initial(cid=b"12345678", is_client=True, version=1)
    assert pair.aead_tag_size == 16
    assert pair._update_key_requested is False
    assert list(inspect.signature(pair._update_key).parameters) == ["trigger"]
    for name in ("aead", "hp", "secret", "cipher_suite", "version", "key_phase"):
        assert hasattr(pair.send, name), name
    assert isinstance(pair.send.aead, _crypto.AEAD)
    assert len(pair.send.hp._mask(bytes(16))) >= 5
    assert set(crypto_module.CIPHER_SUITES) >= {CipherSuite.AES_128_GCM_SHA256,
                                                 CipherSuite.AES_256_GCM_SHA384,
                                                 CipherSuite.CHACHA20_POLY1305_SHA256}
    assert list(inspect.signature(crypto_module.derive_key_iv_hp).parameters) == [
        "cipher_suite", "secret", "version"]
    # a key update replaces the AEAD and keeps the header protection object
    hp, aead = pair.send.hp, pair.send.aead
    pair.update_key()
    pair.encrypt_packet(b"\x40" + bytes(2), bytes(20), 0)
    assert pair.send.hp is hp and pair.send.aead is not aead and pair.send.key_phase == 1


def test_buffer_layout():
    assert quic_builder.layout_ok()
    assert Buffer(capacity=4).capacity == 4


def run_python(code: str, **env) -> str:
    full = {**os.environ, **env}
    if "FASTPATH_QUIC_BUILDER" not in env:
        full.pop("FASTPATH_QUIC_BUILDER", None)
    return subprocess.run([sys.executable, "-c", code], env=full, cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_importing_fastpaths_quic_code_installs_ours_unless_told_otherwise():
    code = ("import fastpath.hy2.quic_connection, aioquic.quic.connection as c;"
            "from fastpath.hy2 import aioquic_seam;"
            "print(aioquic_seam.installed(), c.QuicPacketBuilder.__module__)")
    assert run_python(code) == "fastpath fastpath.hy2.quic_builder"
    assert run_python(code, FASTPATH_QUIC_BUILDER="aioquic") == \
        "aioquic aioquic.quic.packet_builder"
    assert run_python(code, FASTPATH_QUIC_BUILDER="ours") == "fastpath fastpath.hy2.quic_builder"


def test_install_is_reversible():
    before = aioquic_seam.installed()
    try:
        assert aioquic_seam.install("aioquic") == "aioquic"
        assert connection_module.QuicPacketBuilder is packet_builder.QuicPacketBuilder
        assert aioquic_seam.install("fastpath") == "fastpath"
        assert connection_module.QuicPacketBuilder is quic_builder.QuicPacketBuilder
    finally:
        aioquic_seam.install(before)
