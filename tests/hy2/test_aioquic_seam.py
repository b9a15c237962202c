"""The aioquic internals that fastpath.hy2.quic.aioquic_seam and the compiled packet builder rely on.

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

from fastpath.hy2.quic import aioquic_seam, quic_builder

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
    # the compiled builder's SentPacket carries every one of them, with aioquic's defaults
    from fastpath.hy2.quic.quic_builder import SentPacket
    cls = packet_builder.QuicSentPacket
    theirs = cls(epoch=1, in_flight=True, is_ack_eliciting=False, is_crypto_packet=False,
                 packet_number=7, packet_type=None)
    ours = SentPacket(epoch=1, in_flight=True, is_ack_eliciting=False, is_crypto_packet=False,
                      packet_number=7, packet_type=None)
    for f in dataclasses.fields(cls):
        assert getattr(ours, f.name) == getattr(theirs, f.name), f.name
    ours.sent_time = 1.5                       # what aioquic's connection sets
    ours.delivery_handlers.append((print, ()))
    assert ours.sent_time == 1.5 and len(ours.delivery_handlers) == 1


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
    for name in ("FASTPATH_QUIC_BUILDER", "FASTPATH_QUIC_SENDPATH"):
        if name not in env:
            full.pop(name, None)
    return subprocess.run([sys.executable, "-c", code], env=full, cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_importing_fastpaths_quic_code_installs_ours_unless_told_otherwise():
    code = ("import fastpath.hy2.quic.quic_connection, aioquic.quic.connection as c;"
            "from fastpath.hy2.quic import aioquic_seam;"
            "print(aioquic_seam.installed(), c.QuicPacketBuilder.__module__)")
    assert run_python(code) == "fastpath fastpath.hy2.quic.quic_builder"
    assert run_python(code, FASTPATH_QUIC_BUILDER="aioquic") == \
        "aioquic aioquic.quic.packet_builder"
    assert run_python(code, FASTPATH_QUIC_BUILDER="ours") == "fastpath fastpath.hy2.quic.quic_builder"


def test_install_is_reversible():
    before = aioquic_seam.installed()
    try:
        assert aioquic_seam.install("aioquic") == "aioquic"
        assert connection_module.QuicPacketBuilder is packet_builder.QuicPacketBuilder
        assert aioquic_seam.install("fastpath") == "fastpath"
        assert connection_module.QuicPacketBuilder is quic_builder.QuicPacketBuilder
    finally:
        aioquic_seam.install(before)


# -- the compiled send path (fastpath.hy2.quic.stream_send, fastpath.hy2.quic.send_path) -------------------
def test_streams_are_made_through_the_module_global():
    from aioquic.quic import stream as stream_module
    assert connection_module.QuicStream in (stream_module.QuicStream,
                                            aioquic_seam.CompiledSenderStream)
    assert aioquic_seam.AioquicQuicStream is stream_module.QuicStream
    source = inspect.getsource(connection_module.QuicConnection)
    # peer-opened streams, our own streams, and the three crypto streams (no ID)
    assert source.count("QuicStream(") == 5
    assert list(inspect.signature(stream_module.QuicStream.__init__).parameters) == [
        "self", "stream_id", "max_stream_data_local", "max_stream_data_remote", "readable",
        "writable"]
    stream = stream_module.QuicStream(stream_id=4, max_stream_data_local=1,
                                      max_stream_data_remote=2)
    for name in ("sender", "receiver", "stream_id", "is_blocked", "max_stream_data_local",
                 "max_stream_data_local_sent", "max_stream_data_remote"):
        assert hasattr(stream, name), name
    for name in ("highest_offset", "stop_pending", "is_finished", "_stop_error_code",
                 "on_stop_sending_delivery"):
        assert hasattr(stream.receiver, name), name
    # the compiled loop writes STOP_SENDING from the receiver's state as get_stop_frame would
    stream.receiver.stop(0x10C)
    assert (stream.receiver.stop_pending, stream.receiver._stop_error_code) == (True, 0x10C)
    assert isinstance(inspect.getattr_static(stream_module.QuicStream, "is_finished"), property)
    # ours sets aioquic's fields without aioquic's __init__: the same fields, the same values
    ours = aioquic_seam.CompiledSenderStream(stream_id=4, max_stream_data_local=1,
                                             max_stream_data_remote=2)
    assert sorted(vars(ours)) == sorted(vars(stream))
    for name, value in vars(stream).items():
        if name not in ("sender", "receiver"):
            assert getattr(ours, name) == value, name
    assert type(ours.receiver) is type(stream.receiver)
    assert sorted(vars(ours.receiver)) == sorted(vars(stream.receiver))


def test_sender_interface_is_the_one_ours_offers():
    from aioquic.quic.stream import QuicStreamSender
    from fastpath.hy2.quic.stream_send import StreamSendBuffer
    public = sorted(n for n, _ in inspect.getmembers(QuicStreamSender) if not n.startswith("_"))
    assert public == ["get_frame", "get_reset_frame", "next_offset", "on_data_delivery",
                      "on_reset_delivery", "reset", "write"]
    theirs = QuicStreamSender(0, True)
    fields = ("buffer_is_empty", "highest_offset", "is_finished", "reset_pending",
              "_buffer_start", "_buffer_stop", "_buffer_fin")
    for name in fields:
        assert hasattr(theirs, name), name
    ours = StreamSendBuffer(0, True)
    for name in public + list(fields):
        assert hasattr(ours, name), name
    assert list(inspect.signature(QuicStreamSender.on_data_delivery).parameters) == [
        "self", "delivery", "start", "stop", "fin"]
    assert list(inspect.signature(QuicStreamSender.get_frame).parameters) == [
        "self", "max_size", "max_offset"]
    assert list(inspect.signature(QuicStreamSender.write).parameters) == [
        "self", "data", "end_stream"]
    assert [m.name for m in packet_builder.QuicDeliveryState] == ["ACKED", "LOST"]


def test_write_loop_and_registration_signatures():
    cls = connection_module.QuicConnection
    assert list(inspect.signature(cls._write_application).parameters) == [
        "self", "builder", "network_path", "now"]
    assert list(inspect.signature(cls._flush_builder).parameters) == [
        "self", "builder", "network_path", "peer_cid", "now"]
    for name, params in (("_on_ack_delivery", ["self", "delivery", "space", "highest_acked"]),
                         ("_on_ping_delivery", ["self", "delivery", "uids"]),
                         ("_on_connection_limit_delivery", ["self", "delivery", "limit"]),
                         ("_on_max_stream_data_delivery", ["self", "delivery", "stream"])):
        assert list(inspect.signature(getattr(cls, name)).parameters) == params, name
    from aioquic.quic import recovery
    assert list(inspect.signature(recovery.QuicPacketRecovery.on_packet_sent).parameters) == [
        "self", "packet", "space"]
    assert list(inspect.signature(recovery.QuicPacketPacer.next_send_time).parameters) == [
        "self", "now"]
    assert list(inspect.signature(recovery.QuicPacketPacer.update_after_send).parameters) == [
        "self", "now"]
    limit = connection_module.Limit(frame_type=0x10, name="max_data", value=5)
    assert (limit.value, limit.sent, limit.used) == (5, 5, 0)
    from aioquic.quic.rangeset import RangeSet
    ranges = RangeSet([range(1, 3)])
    assert ranges._RangeSet__ranges == [range(1, 3)]
    # the frame types the compiled loop writes, and which of them aioquic counts in flight
    from aioquic.quic.packet import (NON_ACK_ELICITING_FRAME_TYPES, NON_IN_FLIGHT_FRAME_TYPES,
                                     QuicFrameType)
    assert (QuicFrameType.PING, QuicFrameType.ACK, QuicFrameType.MAX_DATA,
            QuicFrameType.MAX_STREAM_DATA, QuicFrameType.DATAGRAM_WITH_LENGTH,
            QuicFrameType.STREAM_BASE, QuicFrameType.RESET_STREAM,
            QuicFrameType.STOP_SENDING) == (0x01, 0x02, 0x10, 0x11, 0x31, 0x08, 0x04, 0x05)
    # MAX_STREAMS goes out with the type its Limit carries, past aioquic's batching rule
    source = inspect.getsource(connection_module.QuicConnection._write_connection_limits)
    assert "limit.sent - limit.used >= limit.value - limit.sent" in source
    assert QuicFrameType.ACK in NON_IN_FLIGHT_FRAME_TYPES & NON_ACK_ELICITING_FRAME_TYPES


def test_connection_fields_the_send_path_reads(tmp_path):
    from bench.send_path_micro import handshake, pair
    from fastpath.supervisor.bootstrap import ensure_certificate
    cert, key = map(str, ensure_certificate(tmp_path))
    client, server = pair(cert, key)
    handshake(client, server, 1.0)
    for name in ("_cryptos", "_crypto_streams", "_spaces", "_loss", "_pacing_at",
                 "_handshake_complete", "_handshake_done_pending", "_probe_pending",
                 "_ping_pending", "_host_cids", "_retire_connection_ids",
                 "_streams_blocked_pending", "_local_max_data", "_local_max_streams_bidi",
                 "_local_max_streams_uni", "_streams", "_streams_queue", "_datagrams_pending",
                 "_remote_max_data", "_remote_max_data_used", "_local_ack_delay_exponent",
                 "_quic_logger", "_packet_number", "_ack_eliciting_sent_since_receipt",
                 "_close_at", "_idle_timeout", "_is_client", "_discard_epoch",
                 "_network_paths", "_remote_max_stream_data_bidi_local",
                 "_remote_max_stream_data_bidi_remote", "_remote_max_stream_data_uni"):
        assert hasattr(server, name), name
    # the peer's initial stream windows, as the client advertised them (8 MiB in the pair)
    assert server.send_window(0) == client._local_max_stream_data_bidi_local == 8 << 20
    from aioquic.tls import Epoch
    space = server._spaces[Epoch.ONE_RTT]
    for name in ("ack_at", "ack_queue", "largest_received_time", "largest_received_packet"):
        assert hasattr(space, name), name
    assert hasattr(server._loss, "_pacer") and hasattr(server._loss, "on_packet_sent")
    path = server._network_paths[0]
    for name in ("is_validated", "local_challenge_sent", "remote_challenges", "addr",
                 "bytes_sent"):
        assert hasattr(path, name), name
    assert all(hasattr(cid, "was_sent") for cid in server._host_cids)
    assert server._crypto_streams[Epoch.ONE_RTT].sender.buffer_is_empty


def test_importing_fastpaths_quic_code_installs_the_send_path_unless_told_otherwise():
    code = ("import fastpath.hy2.quic.quic_connection, aioquic.quic.connection as c;"
            "from fastpath.hy2.quic import aioquic_seam;"
            "print(aioquic_seam.installed_send_path(), c.QuicStream.__name__)")
    assert run_python(code) == "fastpath CompiledSenderStream"
    assert run_python(code, FASTPATH_QUIC_SENDPATH="aioquic") == "aioquic QuicStream"


# -- the compiled recovery and ACK path (fastpath.hy2.quic.quic_recovery) ---------------------------
def test_the_connection_makes_its_recovery_through_its_module_global():
    from aioquic.quic import recovery as recovery_module

    assert connection_module.QuicPacketRecovery in (recovery_module.QuicPacketRecovery,
                                                    aioquic_seam.make_recovery)
    source = inspect.getsource(connection_module.QuicConnection.__init__)
    assert source.count("QuicPacketRecovery(") == 1
    call = source[source.index("QuicPacketRecovery("):]
    call = call[:call.index(")")]
    for kw in ("congestion_control_algorithm", "initial_rtt", "max_datagram_size",
               "peer_completed_address_validation", "quic_logger", "send_probe", "logger"):
        assert f"{kw}=" in call, kw
    assert list(inspect.signature(recovery_module.QuicPacketRecovery.__init__).parameters) == [
        "self", "congestion_control_algorithm", "initial_rtt", "max_datagram_size",
        "peer_completed_address_validation", "send_probe", "logger", "quic_logger"]


def test_recovery_interface_is_the_one_ours_offers():
    from aioquic.quic import recovery as recovery_module
    from fastpath.hy2.quic import quic_recovery

    cls = recovery_module.QuicPacketRecovery
    public = sorted(n for n, _ in inspect.getmembers(cls) if not n.startswith("_"))
    assert public == ["bytes_in_flight", "congestion_window", "discard_space",
                      "get_loss_detection_time", "get_probe_timeout", "on_ack_received",
                      "on_loss_detection_timeout", "on_packet_sent", "reschedule_data"]
    for name in public:
        assert hasattr(quic_recovery.QuicPacketRecovery, name), name
    for name, params in (("on_ack_received", ["self", "ack_rangeset", "ack_delay", "now", "space"]),
                         ("on_packet_sent", ["self", "packet", "space"]),
                         ("reschedule_data", ["self", "now", "speed_up_handshake"]),
                         ("get_loss_detection_time", ["self", "amplification_limited"]),
                         ("get_probe_timeout", ["self", "include_max_ack_delay"]),
                         ("on_loss_detection_timeout", ["self", "now"]),
                         ("discard_space", ["self", "space"])):
        assert list(inspect.signature(getattr(cls, name)).parameters) == params, name
    # the connection reaches into these on the recovery and its pacer
    source = inspect.getsource(connection_module.QuicConnection)
    assert "self._loss._pacer.next_send_time(now=now)" in source
    assert "self._loss._pacer.update_after_send(now=now)" in source
    for attr in ("handshake_confirmed", "peer_completed_address_validation", "max_ack_delay",
                 "spaces"):
        assert f"self._loss.{attr}" in source, attr
    used = set(re.findall(r"self\._loss\.(\w+)", source))
    assert used <= {"congestion_window", "bytes_in_flight", "spaces", "get_loss_detection_time",
                    "on_loss_detection_timeout", "get_probe_timeout", "reschedule_data",
                    "handshake_confirmed", "peer_completed_address_validation",
                    "discard_space", "on_packet_sent", "on_ack_received", "max_ack_delay",
                    "_pacer"}, used
    space = recovery_module.QuicPacketSpace(is_application_data=True)
    assert space.is_application_data is True and space.ack_at is None


def test_ack_frame_handler_internals():
    from aioquic.quic.connection import QuicReceiveContext

    source = inspect.getsource(connection_module.QuicConnection.__init__)
    assert "0x02: (self._handle_ack_frame," in source
    assert "0x03: (self._handle_ack_frame," in source
    assert list(inspect.signature(aioquic_seam.AIOQUIC_HANDLE_ACK_FRAME).parameters) == [
        "self", "context", "frame_type", "buf"]
    original = inspect.getsource(aioquic_seam.AIOQUIC_HANDLE_ACK_FRAME)
    for name in ("self._remote_ack_delay_exponent", "self._quic_logger", "self._spaces[context.epoch]",
                 "context.time", "context.quic_logger_frames", "self._loss.on_ack_received",
                 "peer_completed_address_validation"):
        assert name in original, name
    fields = [f.name for f in dataclasses.fields(QuicReceiveContext)]
    assert {"epoch", "time", "quic_logger_frames"} <= set(fields)
    # the frame loop turns a BufferReadError from a handler into FRAME_ENCODING_ERROR
    loop = inspect.getsource(connection_module.QuicConnection._payload_received)
    assert "except BufferReadError" in loop and "FRAME_ENCODING_ERROR" in loop


def test_recovery_env_switch_and_reversible_install():
    code = ("import fastpath.hy2.quic.quic_connection, aioquic.quic.connection as c;"
            "from fastpath.hy2.quic import aioquic_seam;"
            "print(aioquic_seam.installed_recovery(), c.QuicConnection._handle_ack_frame.__module__)")
    assert run_python(code) == "fastpath fastpath.hy2.quic.quic_recovery"
    assert run_python(code, FASTPATH_QUIC_RECOVERY="aioquic") == \
        "aioquic aioquic.quic.connection"
    before = aioquic_seam.installed_recovery()
    try:
        assert aioquic_seam.install_recovery("aioquic") == "aioquic"
        assert connection_module.QuicConnection._handle_ack_frame is \
            aioquic_seam.AIOQUIC_HANDLE_ACK_FRAME
        assert aioquic_seam.install_recovery("fastpath") == "fastpath"
    finally:
        aioquic_seam.install_recovery(before)


def test_a_qlog_connection_keeps_aioquics_recovery():
    from aioquic.quic.logger import QuicLogger
    from aioquic.quic import recovery as recovery_module
    from fastpath.hy2.quic import quic_recovery

    kw = dict(initial_rtt=0.1, max_datagram_size=1200, peer_completed_address_validation=True,
              send_probe=lambda: None)
    trace = QuicLogger().start_trace(is_client=True, odcid=b"x")
    assert type(aioquic_seam.make_recovery(quic_logger=trace, **kw)) is \
        recovery_module.QuicPacketRecovery
    assert type(aioquic_seam.make_recovery(**kw)) is quic_recovery.QuicPacketRecovery
    assert type(aioquic_seam.make_recovery(congestion_control_algorithm="cubic", **kw)) is \
        quic_recovery.QuicPacketRecovery


def test_receive_path_internals():
    """What fastpath.hy2.quic.quic_receive reads and repeats of aioquic's receive_datagram."""
    from aioquic.quic import recovery as recovery_module
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.tls import Epoch
    from fastpath.hy2.quic import quic_receive

    source = inspect.getsource(aioquic_seam.AIOQUIC_RECEIVE_DATAGRAM)
    for name in ("self._state in END_STATES", "self._quic_logger", "self._close_at",
                 "crypto.decrypt_packet(", "packet_number in space.received_packets",
                 "reserved_mask = 0x18", "space.expected_packet_number = packet_number + 1",
                 "self._cryptos[tls.Epoch.ZERO_RTT].recv.teardown()",
                 "self._peer_cid.sequence_number is None", "self._spin_highest_pn",
                 "self._payload_received(", "self._close_at = now + self._idle_timeout()",
                 "self._ack_eliciting_sent_since_receipt = False", "space.ack_queue.add(",
                 "space.received_packets.add(", "len(space.ack_queue) > MAX_ACK_RANGES",
                 "space.ack_at = now + self._ack_delay", "space.largest_received_time = now"):
        assert name in source, name
    # the end states the fast path compares by identity
    from aioquic.quic.connection import END_STATES, QuicConnectionState
    assert END_STATES == {QuicConnectionState.CLOSING, QuicConnectionState.DRAINING,
                          QuicConnectionState.TERMINATED}
    # the Buffer the payload is decrypted into: a positional capacity, its memory at base
    from aioquic.buffer import Buffer
    buf = Buffer(5)
    assert (buf.capacity, buf.tell()) == (5, 0)
    assert recovery_module.MAX_ACK_RANGES == 64
    conn = connection_module.QuicConnection(configuration=QuicConfiguration(is_client=True))
    conn.connect(("127.0.0.1", 9), 0.0)
    for name in ("_state", "_quic_logger", "_network_paths", "host_cid", "_cryptos", "_spaces",
                 "_close_at", "_close_pending", "_is_client", "_peer_cid", "_spin_bit",
                 "_spin_highest_pn", "_ack_delay", "_ack_eliciting_sent_since_receipt",
                 "_QuicConnection__frame_handlers", "_logger"):
        assert hasattr(conn, name), name
    # every frame type is allowed in 1-RTT packets, so the compiled loop skips the epoch check
    assert all(Epoch.ONE_RTT in epochs
               for _, epochs in conn._QuicConnection__frame_handlers.values())
    recv = conn._cryptos[Epoch.ONE_RTT].recv
    for name in ("aead", "hp", "secret", "cipher_suite", "version", "key_phase", "teardown"):
        assert hasattr(recv, name), name
    assert quic_receive.AIOQUIC_RECEIVE_DATAGRAM is aioquic_seam.AIOQUIC_RECEIVE_DATAGRAM
    # the idle timeout the fast path computes inline, and the RangeSet list it appends to
    idle = inspect.getsource(connection_module.QuicConnection._idle_timeout)
    for name in ("self._configuration.idle_timeout", "self._remote_max_idle_timeout",
                 "3 * self._loss.get_probe_timeout()", "min(", "max("):
        assert name in idle, name
    from aioquic.quic.rangeset import RangeSet
    rs = RangeSet()
    rs.add(3)
    rs.add(4)
    rs.add(9)
    assert rs._RangeSet__ranges == [range(3, 5), range(9, 10)]
    assert "self.__ranges" in inspect.getsource(RangeSet.add)
    # the packet-number window the fast path swaps for its own (its state and its size)
    from aioquic.quic.recovery import MAX_ACK_RANGES, QuicPacketNumberWindow
    window = QuicPacketNumberWindow()
    window.add(300)
    assert (window._lower, window._received, window._size) == (300 - 2 * MAX_ACK_RANGES + 1,
                                                                {300}, 2 * MAX_ACK_RANGES)
    assert set(vars(window)) == {"_lower", "_received", "_size"}


def test_receive_env_switch_and_reversible_install():
    code = ("import fastpath.hy2.quic.quic_connection, aioquic.quic.connection as c;"
            "from fastpath.hy2.quic import aioquic_seam;"
            "print(aioquic_seam.installed_receive(), c.QuicConnection.receive_datagram.__module__)")
    assert run_python(code) == "fastpath fastpath.hy2.quic.quic_receive"
    assert run_python(code, FASTPATH_QUIC_RECEIVE="aioquic") == \
        "aioquic aioquic.quic.connection"
    before = aioquic_seam.installed_receive()
    try:
        assert aioquic_seam.install_receive("aioquic") == "aioquic"
        assert aioquic_seam.install_receive("fastpath") == "fastpath"
    finally:
        aioquic_seam.install_receive(before)


# -- the named reads and writes the rest of fastpath goes through ------------------------------
def test_named_reads_on_a_live_connection(tmp_path):
    """Each of aioquic_seam's named functions against a real handshake: what it returns is
    what aioquic holds (and, for the transport parameters, what the peer was told)."""
    from cryptography import x509
    from bench.send_path_micro import handshake, pair
    from fastpath.supervisor.bootstrap import ensure_certificate

    cert, key = map(str, ensure_certificate(tmp_path))
    client, server = pair(cert, key)
    assert not aioquic_seam.handshake_complete(client)
    assert aioquic_seam.peer_certificate(client) is None        # not started: no TLS context
    handshake(client, server, 1.0)
    assert aioquic_seam.handshake_complete(client) and aioquic_seam.handshake_complete(server)
    for quic in (client, server):
        assert aioquic_seam.recovery(quic) is quic._loss
        assert aioquic_seam.congestion_control(quic) is quic._loss._cc
        assert aioquic_seam.max_datagram_size(quic) == quic._max_datagram_size >= 1200
        rtt = aioquic_seam.smoothed_rtt_ms(quic)
        assert rtt == round(aioquic_seam.smoothed_rtt(quic._loss) * 1000, 2) and rtt >= 0
        assert aioquic_seam.streams(quic) is quic._streams
        assert not aioquic_seam.is_terminated(quic)
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, b"x")
    for data, _ in client.datagrams_to_send(1.1):
        server.receive_datagram(data, ("10.0.0.1", 1), 1.1)
    assert sid in aioquic_seam.streams(server)
    # the token the server issued with the connection ID the client sends to
    token = aioquic_seam.peer_reset_token(client)
    assert token == next(c.stateless_reset_token for c in server._host_cids
                         if c.cid == client._peer_cid.cid) and len(token) == 16
    with open(cert, "rb") as f:
        assert aioquic_seam.peer_certificate(client) == x509.load_pem_x509_certificate(f.read())
    own = aioquic_seam.local_parameters(server)
    assert (own.max_data, own.max_streams_bidi, own.max_streams_uni,
            own.max_stream_data_bidi_local, own.max_stream_data_bidi_remote,
            own.max_stream_data_uni, own.max_datagram_frame_size,
            own.active_connection_id_limit) == (
        client._remote_max_data, client._remote_max_streams_bidi, client._remote_max_streams_uni,
        client._remote_max_stream_data_bidi_local, client._remote_max_stream_data_bidi_remote,
        client._remote_max_stream_data_uni, client._remote_max_datagram_frame_size,
        client._remote_active_connection_id_limit)
    assert own.idle_timeout == server._configuration.idle_timeout
    assert own.stateless_reset_token == server._host_cids[0].stateless_reset_token
    assert own.original_destination_connection_id == client.original_destination_connection_id
    assert own.initial_source_connection_id == server._local_initial_source_connection_id
    assert own.retry_source_connection_id is None
    # an ended connection is seen as ended once aioquic's close timer ran
    server.close(error_code=0)
    server.datagrams_to_send(1.2)
    server.handle_timer(server.get_timer())
    assert aioquic_seam.is_terminated(server)


def test_aioquics_recovery_fields_the_seam_changes():
    from aioquic.quic import recovery as recovery_module

    rec = recovery_module.QuicPacketRecovery(
        congestion_control_algorithm="reno", initial_rtt=0.1, max_datagram_size=1200,
        peer_completed_address_validation=True, send_probe=lambda: None)
    assert rec._rtt_initialized is False and aioquic_seam.smoothed_rtt(rec) == 0.0
    assert isinstance(rec._pacer, recovery_module.QuicPacketPacer) and rec._cc is not None
    pacer = recovery_module.QuicPacketPacer(max_datagram_size=1200)
    controller = object()
    aioquic_seam.replace_congestion_control(rec, controller, pacer)
    assert rec._cc is controller and rec._pacer is pacer
    # the compiled recovery offers the same names
    from fastpath.hy2.quic import quic_recovery
    ours = quic_recovery.QuicPacketRecovery(
        congestion_control_algorithm="reno", initial_rtt=0.1, max_datagram_size=1200,
        peer_completed_address_validation=True, send_probe=lambda: None)
    for name in ("_cc", "_pacer", "_rtt_initialized", "_rtt_smoothed"):
        assert hasattr(ours, name), name


def test_the_subclass_overrides_are_aioquics():
    """fastpath.hy2.quic.quic_connection and fastpath.hy2.wire.h3_compat override these private methods:
    an aioquic release that renames one would silently stop calling ours."""
    from aioquic.h3.connection import H3Connection
    from aioquic.quic.configuration import QuicConfiguration

    cls = connection_module.QuicConnection
    for name, params in (("_serialize_transport_parameters", ["self"]),
                         ("_replenish_connection_ids", ["self"]),
                         ("_write_stream_limits", ["self", "builder", "space", "stream"])):
        assert list(inspect.signature(getattr(cls, name)).parameters) == params, name
    for name, params in (("_validate_settings", ["self", "settings"]),
                         ("_get_local_settings", ["self"]),
                         ("_create_uni_stream", ["self", "stream_type", "push_id"])):
        assert list(inspect.signature(getattr(H3Connection, name)).parameters) == params, name
    source = inspect.getsource(H3Connection)
    assert "self._get_local_settings()" in source and "self._validate_settings(" in source
    h3 = H3Connection(connection_module.QuicConnection(
        configuration=QuicConfiguration(is_client=True, alpn_protocols=["h3"])))
    assert hasattr(h3, "_encoder") and hasattr(h3, "_decoder")
    sender = connection_module.QuicStream(stream_id=0).sender
    assert (sender._buffer_start, sender._buffer_stop) == (0, 0)


def _private_names_of_a_connection() -> set[str]:
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic import recovery as recovery_module

    conn = connection_module.QuicConnection(configuration=QuicConfiguration(is_client=True))
    conn.connect(("127.0.0.1", 9), 0.0)
    rec = recovery_module.QuicPacketRecovery(
        congestion_control_algorithm="reno", initial_rtt=0.1, max_datagram_size=1200,
        peer_completed_address_validation=True, send_probe=lambda: None)
    names = set(vars(conn)) | set(vars(rec)) | set(vars(conn.tls))
    names |= {n for n in dir(connection_module.QuicConnection) if not n.startswith("__")}
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_module_outside_the_seam_reaches_into_aioquic():
    """Python modules other than aioquic_seam and quic_connection use the seam's functions
    (the compiled modules named in aioquic_seam's docstring may read aioquic directly)."""
    names = _private_names_of_a_connection()
    assert {"_loss", "_peer_cid", "_handshake_complete", "_streams", "_local_max_data"} <= names
    # ``x._name`` where x is not ``self`` (a subclass's own fields are its own business)
    touch = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(_[a-z]\w*)\b")
    probe = re.compile(r"getattr\([^,]+,\s*[\"'](_[a-z]\w*)[\"']")
    seam = {ROOT / "fastpath/hy2/quic/aioquic_seam.py", ROOT / "fastpath/hy2/quic/quic_connection.py"}
    found = []
    for top in ("fastpath", "control"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if path in seam:
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                hits = [m.group(2) for m in touch.finditer(line)
                        if m.group(1) not in ("self", "cls")]
                hits += [m.group(1) for m in probe.finditer(line)]
                found += [f"{path.relative_to(ROOT)}:{n}: {name}" for name in hits
                          if name in names]
    assert found == []
