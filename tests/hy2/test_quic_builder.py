"""fastpath's compiled QUIC packet builder against aioquic's: same inputs, same keys, same packet
numbers -> byte-identical datagrams and equivalent sent-packet records.  Random sequences
(hypothesis) and the edge cases by name; a real aioquic connection pair over memory with ours
installed at the end."""
from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.logger import QuicLogger
from aioquic.quic.packet import QuicFrameType, QuicPacketType, QuicProtocolVersion
from aioquic.quic.packet_builder import QuicPacketBuilder as AioquicBuilder
from aioquic.quic.packet_builder import QuicPacketBuilderStop, QuicSentPacket
from aioquic.tls import CipherSuite, Epoch

from fastpath.hy2.quic import aioquic_seam
from fastpath.hy2.quic.quic_builder import QuicPacketBuilder as OurBuilder, SentPacket

INITIAL, HANDSHAKE, ZERO_RTT, ONE_RTT = (QuicPacketType.INITIAL, QuicPacketType.HANDSHAKE,
                                         QuicPacketType.ZERO_RTT, QuicPacketType.ONE_RTT)
SUITES = [CipherSuite.AES_128_GCM_SHA256, CipherSuite.AES_256_GCM_SHA384,
          CipherSuite.CHACHA20_POLY1305_SHA256]
FRAME_TYPES = [QuicFrameType.PADDING, QuicFrameType.PING, QuicFrameType.ACK,
               QuicFrameType.ACK_ECN, QuicFrameType.CRYPTO, QuicFrameType.STREAM_BASE, 0x0F,
               QuicFrameType.MAX_DATA, QuicFrameType.PATH_CHALLENGE,
               QuicFrameType.PATH_RESPONSE, QuicFrameType.TRANSPORT_CLOSE,
               QuicFrameType.APPLICATION_CLOSE, QuicFrameType.HANDSHAKE_DONE,
               QuicFrameType.DATAGRAM_WITH_LENGTH, 0xAF, 0x4000]


def on_delivery(*args):  # a handler object both builders must record as given
    pass


def make_cryptos(seed: bytes, version: int, suite: CipherSuite) -> dict:
    """One CryptoPair per packet type, keyed from ``seed`` so two calls give equal keys."""
    initial = CryptoPair()
    initial.setup_initial(cid=hashlib.sha256(seed).digest()[:8], is_client=True,
                          version=version)
    cryptos = {INITIAL: initial}
    for label, ptype in ((b"hs", HANDSHAKE), (b"0rtt", ZERO_RTT), (b"1rtt", ONE_RTT)):
        pair = CryptoPair()
        secret = hashlib.sha384(seed + label).digest()[:48 if suite ==
                                                        CipherSuite.AES_256_GCM_SHA384 else 32]
        pair.send.setup(cipher_suite=suite, secret=secret, version=version)
        pair.recv.setup(cipher_suite=suite, secret=secret[::-1], version=version)
        cryptos[ptype] = pair
    return cryptos


def record(packet: QuicSentPacket) -> dict:
    return {f.name: getattr(packet, f.name) for f in dataclasses.fields(QuicSentPacket)}


class Twin:
    """Both builders fed the same calls; every observable result compared as it happens."""

    def __init__(self, *, seed=b"k", version=QuicProtocolVersion.VERSION_1,
                 suite=CipherSuite.AES_128_GCM_SHA256, logger=False, **kwargs):
        self.cryptos = [make_cryptos(seed, version, suite) for _ in range(2)]
        self.builders = []
        for cls in (AioquicBuilder, OurBuilder):
            trace = QuicLogger().start_trace(is_client=True, odcid=b"x") if logger else None
            self.builders.append(cls(version=version, quic_logger=trace, **kwargs))
        self.has_packet = False
        self.sent_datagrams = self.sent_packets = 0

    def both(self, fn):
        results = []
        for builder, cryptos in zip(self.builders, self.cryptos):
            try:
                results.append(("ok", fn(builder, cryptos)))
            except QuicPacketBuilderStop:
                results.append(("stop", None))
        assert results[0] == results[1], results
        self.check_state()
        return results[0]

    def check_state(self):
        a, b = self.builders
        for name in ("packet_number", "max_flight_bytes", "max_total_bytes"):
            assert getattr(a, name) == getattr(b, name), name
        if self.has_packet:
            for name in ("packet_is_empty", "remaining_buffer_space", "remaining_flight_space"):
                assert getattr(a, name) == getattr(b, name), name
            assert a.quic_logger_frames == b.quic_logger_frames

    def set_limits(self, flight, total):
        for builder in self.builders:
            builder.max_flight_bytes = flight
            builder.max_total_bytes = total
        self.check_state()

    def start_packet(self, ptype):
        self.has_packet = False
        status, _ = self.both(lambda b, c: b.start_packet(ptype, c[ptype]))
        self.has_packet = status == "ok"
        self.check_state()
        return status

    def frame(self, ftype, capacity, size, fill=0x5A, handler=False):
        if not self.has_packet:
            return None
        kwargs = {"handler": on_delivery, "handler_args": (ftype, size)} if handler else {}

        def write(builder, _):
            buf = builder.start_frame(ftype, capacity=capacity, **kwargs)
            buf.push_bytes(bytes([fill]) * size)
            return buf.tell()

        return self.both(write)[0]

    def update_key(self):
        for cryptos in self.cryptos:
            cryptos[ONE_RTT].update_key()

    def flush(self):
        (da, pa), (db, pb) = (b.flush() for b in self.builders)
        self.has_packet = False
        self.sent_datagrams += len(db)
        self.sent_packets += len(pb)
        assert [len(d) for d in da] == [len(d) for d in db]
        assert da == db
        assert [record(p) for p in pa] == [record(p) for p in pb]
        assert all(type(p) is SentPacket for p in pb)
        self.check_state()
        return db, pb


frame_step = st.tuples(st.just("frame"), st.sampled_from(FRAME_TYPES),
                       st.one_of(st.integers(1, 64), st.integers(1, 1500)),
                       st.one_of(st.integers(0, 64), st.integers(0, 1500)), st.booleans())
packet_group = st.tuples(
    st.tuples(st.just("packet"), st.sampled_from([INITIAL, HANDSHAKE, ZERO_RTT, ONE_RTT,
                                                  ONE_RTT, ONE_RTT])),
    st.lists(frame_step, min_size=1, max_size=5))
steps = st.lists(st.one_of(
    packet_group, packet_group, packet_group,
    st.tuples(st.tuples(st.just("flush")), st.just([])),
    st.tuples(st.tuples(st.just("update_key")), st.just([])),
), min_size=1, max_size=16).map(lambda groups: [step for head, frames in groups for step in [head, *frames]])
limit = st.one_of(st.none(), st.none(), st.integers(-200, 9000))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.binary(min_size=1, max_size=8),
    version=st.sampled_from([QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2]),
    suite=st.sampled_from(SUITES),
    is_client=st.booleans(),
    host_cid=st.binary(max_size=20), peer_cid=st.binary(max_size=20),
    peer_token=st.binary(max_size=80),
    max_datagram_size=st.sampled_from([1200, 1252, 1350, 1452, 1500]),
    packet_number=st.integers(0, 2**40),
    spin_bit=st.booleans(), logger=st.booleans(),
    flight=limit, total=limit,
    plan=steps,
)
def test_random_sequences_are_identical(seed, version, suite, is_client, host_cid, peer_cid,
                                        peer_token, max_datagram_size, packet_number,
                                        spin_bit, logger, flight, total, plan):
    twin = Twin(seed=seed, version=version, suite=suite, logger=logger, is_client=is_client,
                host_cid=host_cid, peer_cid=peer_cid, peer_token=peer_token,
                max_datagram_size=max_datagram_size, packet_number=packet_number,
                spin_bit=spin_bit)
    twin.set_limits(flight, total)
    for step in plan:
        if step[0] == "packet":
            twin.start_packet(step[1])
        elif step[0] == "frame":
            _, ftype, capacity, size, handler = step
            if not twin.has_packet:
                continue
            # A frame writer writes at most what it asked room for, within the packet.
            room = twin.builders[0].remaining_buffer_space
            twin.frame(ftype, capacity, max(0, min(size, capacity, room - 8)), handler=handler)
        elif step[0] == "flush":
            twin.flush()
        else:
            twin.update_key()
    twin.flush()
    event(f"datagrams: {min(twin.sent_datagrams, 5)}+ / packets: {min(twin.sent_packets, 5)}+")


def one_rtt_twin(**kwargs):
    base = dict(is_client=False, host_cid=b"\x01" * 8, peer_cid=b"\x02" * 8,
                max_datagram_size=1252, packet_number=7)
    base.update(kwargs)
    return Twin(**base)


def test_empty_packet_sends_nothing():
    twin = one_rtt_twin()
    assert twin.start_packet(ONE_RTT) == "ok"
    datagrams, packets = twin.flush()
    assert datagrams == [] and packets == []
    assert twin.builders[1].packet_number == 7


def test_frame_exactly_filling_the_packet():
    twin = one_rtt_twin()
    twin.start_packet(ONE_RTT)
    room = twin.builders[1].remaining_buffer_space
    twin.frame(QuicFrameType.STREAM_BASE, room, room - 1)
    assert twin.builders[1].remaining_buffer_space == 0
    datagrams, packets = twin.flush()
    assert [len(d) for d in datagrams] == [1252]
    assert packets[0].sent_bytes == 1252 and packets[0].in_flight


def test_a_frame_one_byte_too_big_stops_and_writes_nothing():
    twin = one_rtt_twin()
    twin.start_packet(ONE_RTT)
    room = twin.builders[1].remaining_buffer_space
    assert twin.frame(QuicFrameType.STREAM_BASE, room + 1, 0) == "stop"
    assert twin.builders[1].packet_is_empty


def test_max_total_bytes_hit():
    twin = one_rtt_twin()
    twin.set_limits(None, 1252 + 300)
    twin.start_packet(ONE_RTT)
    twin.frame(QuicFrameType.STREAM_BASE, 1000, 1000)
    twin.start_packet(ONE_RTT)           # second datagram: what the first left of the total
    first = 11 + 1 + 1000 + 16
    assert twin.builders[1].remaining_buffer_space == 1252 + 300 - first - 11 - 16
    assert twin.frame(QuicFrameType.STREAM_BASE, 1000, 10) == "stop"
    twin.frame(QuicFrameType.STREAM_BASE, 400, 400)
    datagrams, _ = twin.flush()
    assert sum(map(len, datagrams)) <= 1252 + 300
    twin.set_limits(None, 10)
    assert twin.start_packet(ONE_RTT) == "stop"


def test_max_flight_bytes_limits_in_flight_frames_only():
    twin = one_rtt_twin()
    twin.set_limits(100, None)
    twin.start_packet(ONE_RTT)
    assert twin.frame(QuicFrameType.STREAM_BASE, 200, 0) == "stop"
    assert twin.frame(QuicFrameType.ACK, 200, 200) is not None   # ACKs are not in flight
    _, packets = twin.flush()
    assert not packets[0].in_flight and not packets[0].is_ack_eliciting


def test_client_initial_is_padded_to_1200():
    twin = Twin(is_client=True, host_cid=b"\x03" * 8, peer_cid=b"\x04" * 8,
                peer_token=b"t" * 20, max_datagram_size=1200)
    twin.start_packet(INITIAL)
    twin.frame(QuicFrameType.CRYPTO, 300, 300)
    datagrams, packets = twin.flush()
    assert [len(d) for d in datagrams] == [1200]
    assert packets[0].is_crypto_packet and packets[0].sent_bytes < 1200


def test_coalesced_initial_handshake_one_rtt():
    twin = one_rtt_twin(max_datagram_size=1400)
    twin.start_packet(INITIAL)
    twin.frame(QuicFrameType.CRYPTO, 100, 100)
    twin.start_packet(HANDSHAKE)
    twin.frame(QuicFrameType.CRYPTO, 200, 200)
    twin.start_packet(ONE_RTT)
    twin.frame(QuicFrameType.HANDSHAKE_DONE, 1, 0)
    twin.frame(QuicFrameType.STREAM_BASE, 50, 50)
    datagrams, packets = twin.flush()
    assert len(datagrams) == 1
    assert [p.packet_type for p in packets] == [INITIAL, HANDSHAKE, ONE_RTT]
    # the server's ack-eliciting Initial pads the short header packet up to the datagram size
    assert len(datagrams[0]) == 1400


def test_path_challenge_pads_the_datagram():
    twin = one_rtt_twin()
    twin.start_packet(ONE_RTT)
    twin.frame(QuicFrameType.PATH_CHALLENGE, 9, 8)
    datagrams, _ = twin.flush()
    assert [len(d) for d in datagrams] == [1252]


def test_key_update_flips_the_key_phase_and_the_peer_decrypts():
    twin = one_rtt_twin(peer_cid=b"")
    ours = twin.cryptos[1][ONE_RTT]
    # the peer receives with our sending keys and follows our key updates (aioquic's code)
    peer = CryptoPair()
    peer.recv.setup(cipher_suite=ours.send.cipher_suite, secret=ours.send.secret,
                    version=ours.send.version)
    peer.send.setup(cipher_suite=ours.send.cipher_suite, secret=ours.recv.secret,
                    version=ours.send.version)
    for round_ in range(4):
        twin.start_packet(ONE_RTT)
        twin.frame(QuicFrameType.STREAM_BASE, 40, 40, fill=round_)
        datagrams, _ = twin.flush()
        header, payload, pn = peer.decrypt_packet(datagrams[0], 1, 7 + round_)
        assert (header[0] >> 2) & 1 == round_ % 2
        assert pn == 7 + round_ and payload.startswith(bytes([0x08]) + bytes([round_]) * 40)
        twin.update_key()


def test_chacha20_header_protection():
    twin = one_rtt_twin(suite=CipherSuite.CHACHA20_POLY1305_SHA256)
    for _ in range(3):
        twin.start_packet(ONE_RTT)
        twin.frame(QuicFrameType.PING, 1, 0)
    twin.flush()


def test_interface_matches_aioquic():
    import inspect

    for name, member in inspect.getmembers(AioquicBuilder):
        if not name.startswith("_"):
            assert hasattr(OurBuilder, name), name
    builder = OurBuilder(host_cid=b"", peer_cid=b"", version=1, is_client=False,
                         max_datagram_size=1200)
    for name in ("max_flight_bytes", "max_total_bytes", "quic_logger_frames"):
        assert getattr(builder, name) is None


def exchange(client: QuicConnection, server: QuicConnection, now: float) -> int:
    """Moves datagrams both ways until neither side has any; returns how many moved."""
    moved = 0
    while True:
        sent = 0
        for src, dst, addr in ((client, server, ("1.2.3.4", 1)), (server, client,
                                                                   ("5.6.7.8", 2))):
            for data, _ in src.datagrams_to_send(now):
                dst.receive_datagram(data, addr, now)
                sent += 1
        moved += sent
        if not sent:
            return moved


@pytest.mark.parametrize("choice", ["fastpath", "aioquic"])
def test_real_connections_transfer_with_the_installed_builder(tls_files, choice):
    cert, key = tls_files
    previous = aioquic_seam.installed()
    aioquic_seam.install(choice)
    try:
        assert aioquic_seam.installed() == choice
        client = QuicConnection(configuration=QuicConfiguration(is_client=True,
                                                                alpn_protocols=["h3"],
                                                                verify_mode=0))
        server_cfg = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
        server_cfg.load_cert_chain(cert, key)
        server = QuicConnection(configuration=server_cfg,
                                original_destination_connection_id=client.original_destination_connection_id)
        now = 1.0
        client.connect(("5.6.7.8", 2), now)
        exchange(client, server, now)
        assert client._handshake_complete and server._handshake_complete
        payload = hashlib.sha256(b"seed").digest() * 8192          # 256 KiB
        stream_id = client.get_next_available_stream_id()
        client.send_stream_data(stream_id, payload, end_stream=True)
        got = bytearray()
        for _ in range(2000):
            now += 0.01
            client.request_key_update() if _ == 5 else None
            exchange(client, server, now)
            event = server.next_event()
            while event is not None:
                if hasattr(event, "data") and getattr(event, "stream_id", None) == stream_id:
                    got += event.data
                event = server.next_event()
            if len(got) == len(payload):
                break
        assert bytes(got) == payload
        assert server._cryptos[Epoch.ONE_RTT].recv.key_phase == 1  # the key update went through
    finally:
        aioquic_seam.install(previous)


def test_keys_first_seen_after_a_key_update_still_match():
    """A peer-initiated key update before our first 1-RTT packet: the header protection key
    can no longer be derived from the context's secret, and still both builders agree."""
    twin = one_rtt_twin()
    for cryptos in twin.cryptos:
        cryptos[ONE_RTT]._update_key("remote_update")
    for size in (10, 500):
        twin.start_packet(ONE_RTT)
        twin.frame(QuicFrameType.STREAM_BASE, size, size)
    twin.flush()
