"""fastpath's compiled 1-RTT receive path (quic_receive.pyx) against aioquic's.

- Opening packets: for random payloads, packet numbers and all three cipher suites, the plain
  header, payload and packet number equal aioquic's ``decrypt_packet`` (hypothesis); packet
  number decoding equals aioquic's.
- Real connections in memory: streams both ways with losses, duplicates, reordering and a key
  update arrive SHA-256 equal, most datagrams through the fast path, the rest through aioquic's;
  a duplicate is ignored; reserved bits close with PROTOCOL_VIOLATION and an unknown frame type
  with FRAME_ENCODING_ERROR, as aioquic does.
"""
from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicErrorCode, decode_packet_number
from aioquic.tls import CipherSuite, Epoch

import fastpath.hy2.quic.quic_connection  # noqa: F401  (installs the compiled paths)
from fastpath.hy2.quic import aioquic_seam, quic_receive
from tests.hy2.reference_codecs import varint_encode as varint
from tests.hy2.test_quic_recovery import server_for

SUITES = [CipherSuite.AES_128_GCM_SHA256, CipherSuite.AES_256_GCM_SHA384,
          CipherSuite.CHACHA20_POLY1305_SHA256]


def pair(tls_files, suite=None):
    assert aioquic_seam.installed_receive() == "fastpath"
    ccfg = QuicConfiguration(is_client=True, alpn_protocols=["h3"], verify_mode=0)
    if suite is not None:
        ccfg.cipher_suites = [suite]
    client = QuicConnection(configuration=ccfg)
    server = server_for(client, tls_files)
    client.connect(("5.6.7.8", 2), 1.0)
    exchange(client, server, 1.0)
    assert client._handshake_complete and server._handshake_complete
    return client, server


def exchange(client, server, now, mangle=None):
    while True:
        sent = 0
        for src, dst, addr in ((client, server, ("1.2.3.4", 1)),
                               (server, client, ("5.6.7.8", 2))):
            out = [d for d, _ in src.datagrams_to_send(now)]
            if mangle is not None:
                out = mangle(out)
            for data in out:
                dst.receive_datagram(data, addr, now)
                sent += 1
        if not sent:
            return


def seal(client, payload: bytes, first: int = 0x41, pn=None):
    if pn is None:
        pn = client._packet_number
        client._packet_number += 1
    header = bytes([first]) + client._peer_cid.cid + (pn & 0xFFFF).to_bytes(2, "big")
    return client._cryptos[Epoch.ONE_RTT].encrypt_packet(header, payload, pn)


@pytest.mark.parametrize("suite", SUITES)
def test_open_matches_aioquics_decrypt(tls_files, suite):
    client, server = pair(tls_files, suite)
    assert server.tls.key_schedule.cipher_suite == suite

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(payload=st.binary(min_size=4, max_size=1300), step=st.integers(0, 300))
    def check(payload, step):
        pn = client._packet_number + step
        client._packet_number = pn + 1
        packet = seal(client, payload, pn=pn)
        ours = quic_receive.open_packet(server, packet)
        recv = server._cryptos[Epoch.ONE_RTT].recv
        expected = server._spaces[Epoch.ONE_RTT].expected_packet_number
        header, plain, number, _ = recv.decrypt_packet(packet, 1 + len(server.host_cid),
                                                       expected)
        assert ours == (header, plain, number)
        assert plain == payload
        # a flipped bit anywhere fails the tag: the fast path hands the packet to aioquic
        bad = bytearray(packet)
        bad[len(bad) // 2] ^= 0x01
        assert quic_receive.open_packet(server, bytes(bad)) is None
    check()


@given(truncated=st.integers(0, 0xFFFFFFFF), bits=st.sampled_from([8, 16, 24, 32]),
       expected=st.integers(0, 2**40))
def test_packet_number_decoding_matches_aioquic(truncated, bits, expected):
    truncated &= (1 << bits) - 1
    assert quic_receive.decode_packet_number(truncated, bits, expected) == \
        decode_packet_number(truncated, bits, expected)


@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 600)), max_size=300),
       start=st.lists(st.integers(0, 400), max_size=40))
def test_packet_number_window_answers_as_aioquics(ops, start):
    """The compiled duplicate window against aioquic's: the same answers for every packet
    number after every add, also when taken over from aioquic's state mid-connection."""
    from aioquic.quic.recovery import QuicPacketNumberWindow
    theirs = QuicPacketNumberWindow()
    for pn in start:
        theirs.add(pn)
    ours = quic_receive.PacketNumberWindow(theirs._lower, theirs._received)
    for is_add, pn in ops:
        if is_add:
            theirs.add(pn)
            ours.add(pn)
        else:
            assert (pn in ours) == (pn in theirs), pn
    assert [pn in ours for pn in range(0, 800)] == [pn in theirs for pn in range(0, 800)]


def run_transfer(client, server, size: int, mangle=None, key_update_at=None):
    """A stream each way of ``size`` bytes; returns what each side received."""
    up = hashlib.sha256(b"up").digest() * (size // 32)
    down = hashlib.sha256(b"down").digest() * (size // 32)
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, up, end_stream=True)
    got = {"server": bytearray(), "client": bytearray()}
    replied = False
    now = 2.0
    for i in range(20000):
        now += 0.002
        if key_update_at is not None and i == key_update_at:
            client.request_key_update()
        exchange(client, server, now, mangle)
        for conn in (client, server):
            t = conn.get_timer()
            if t is not None and t <= now:
                conn.handle_timer(now)
        for name, conn in (("server", server), ("client", client)):
            ev = conn.next_event()
            while ev is not None:
                if getattr(ev, "stream_id", None) == sid and hasattr(ev, "data"):
                    got[name] += ev.data
                ev = conn.next_event()
        if not replied and len(got["server"]) == len(up):
            server.send_stream_data(sid, down, end_stream=True)
            replied = True
        if len(got["server"]) == len(up) and len(got["client"]) == len(down):
            break
    assert hashlib.sha256(got["server"]).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got["client"]).digest() == hashlib.sha256(down).digest()


def lossy(seed: int, drop=0.05, dup=0.03, swap=0.1):
    rnd = random.Random(seed)

    def mangle(datagrams):
        out = []
        for d in datagrams:
            r = rnd.random()
            if r < drop:
                continue
            out.append(d)
            if r < drop + dup:
                out.append(d)
        for i in range(len(out) - 1):
            if rnd.random() < swap:
                out[i], out[i + 1] = out[i + 1], out[i]
        return out
    return mangle


@pytest.mark.parametrize("seed", [1, 2])
def test_transfers_both_ways_under_loss_duplicates_reordering_and_a_key_update(tls_files, seed):
    client, server = pair(tls_files)
    before = quic_receive.stats()
    run_transfer(client, server, 512 << 10, mangle=lossy(seed), key_update_at=40)
    fast = quic_receive.stats()["fast"] - before["fast"]
    fallback = quic_receive.stats()["fallback"] - before["fallback"]
    assert fast > 500 and fallback < fast / 5, (fast, fallback)
    assert server._cryptos[Epoch.ONE_RTT].recv.key_phase == 1     # the update went through


def test_a_duplicate_is_ignored(tls_files):
    client, server = pair(tls_files)
    sid = client.get_next_available_stream_id()
    packet = seal(client, bytes([0x08 | 0x02]) + bytes([sid]) + bytes([5]) + b"hello" + bytes(20))
    server.receive_datagram(packet, ("1.2.3.4", 1), 2.0)
    ack_queue = list(server._spaces[Epoch.ONE_RTT].ack_queue)
    events = []
    ev = server.next_event()
    while ev is not None:
        events.append(ev)
        ev = server.next_event()
    assert any(getattr(e, "data", None) == b"hello" for e in events)
    server.receive_datagram(packet, ("1.2.3.4", 1), 2.1)
    assert server.next_event() is None
    assert list(server._spaces[Epoch.ONE_RTT].ack_queue) == ack_queue
    assert server._spaces[Epoch.ONE_RTT].ack_at is not None


def test_reserved_bits_close_with_protocol_violation(tls_files):
    client, server = pair(tls_files)
    server.receive_datagram(seal(client, b"\x01" + bytes(20), first=0x41 | 0x08),
                            ("1.2.3.4", 1), 2.0)
    assert server._close_event.error_code == QuicErrorCode.PROTOCOL_VIOLATION


def test_unknown_frame_type_closes_with_frame_encoding_error(tls_files):
    client, server = pair(tls_files)
    server.receive_datagram(seal(client, bytes(20) + b"\x40\x99"), ("1.2.3.4", 1), 2.0)
    assert server._close_event.error_code == QuicErrorCode.FRAME_ENCODING_ERROR


def test_a_packet_from_another_address_goes_to_aioquic(tls_files):
    client, server = pair(tls_files)
    before = quic_receive.stats()
    server.receive_datagram(seal(client, b"\x01" + bytes(20)), ("9.9.9.9", 9), 2.0)
    assert quic_receive.stats()["fallback"] == before["fallback"] + 1
    assert len(server._network_paths) == 2          # aioquic's migration handling ran


# -- STREAM frames: the compiled in-order path against aioquic's handler --------------------------
CONTENT = hashlib.sha256(b"content").digest() * 4096          # 128 KiB of stream bytes


def stream_frame(sid, offset, length, fin, with_len, with_off=True):
    ftype = 0x08 | (4 if with_off else 0) | (2 if with_len else 0) | (1 if fin else 0)
    data = (CONTENT[offset:offset + length] if offset + length <= len(CONTENT)
            else bytes(length))
    return (bytes(24) + varint(ftype) + varint(sid) + (varint(offset) if with_off else b"")
            + (varint(length) if with_len else b"") + data)


def server_state(server):
    events = []
    ev = server.next_event()
    while ev is not None:
        events.append((type(ev).__name__, getattr(ev, "stream_id", None),
                       getattr(ev, "data", None), getattr(ev, "end_stream", None)))
        ev = server.next_event()
    streams = {sid: (s.receiver.highest_offset, s.receiver._buffer_start,
                     s.receiver.is_finished, s.receiver._final_size, bytes(s.receiver._buffer))
               for sid, s in server._streams.items()}
    close = server._close_event.error_code if server._close_event else None
    return events, streams, server._local_max_data.used, close


frames = st.tuples(st.sampled_from([0, 0, 0, 4, 2, 3]), st.integers(0, 4000),
                   st.integers(0, 1100), st.booleans(), st.booleans(), st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(st.lists(st.one_of(frames, st.tuples(st.just("next"), st.integers(1, 1100))),
                min_size=1, max_size=30))
def test_stream_frames_as_aioquic_handles_them(tls_files, steps):
    """The same STREAM frames to a server on the compiled path and one on aioquic's: the same
    events, receiver state, connection credit used and closing error."""
    conns = [pair(tls_files), pair(tls_files)]
    receive = [quic_receive.receive_datagram, aioquic_seam.AIOQUIC_RECEIVE_DATAGRAM]
    next_offset = 0
    for step in steps:
        if step[0] == "next":            # the next in-order piece of stream 0, the common case
            payload = stream_frame(0, next_offset, step[1], False, True)
            next_offset += step[1]
        else:
            sid, offset, length, fin, with_len, with_off = step
            payload = stream_frame(sid, offset if with_off else 0, length, fin, with_len,
                                   with_off)
        states = []
        for (client, server), fn in zip(conns, receive):
            fn(server, seal(client, payload), ("1.2.3.4", 1), 3.0)
            states.append(server_state(server))
        assert states[0] == states[1]
        if states[0][3] is not None:
            break


def test_stream_frame_beyond_the_stream_limit_is_a_flow_control_error(tls_files):
    client, server = pair(tls_files)
    limit = server._local_max_stream_data_bidi_remote
    server.receive_datagram(seal(client, stream_frame(0, limit, 10, False, True)),
                            ("1.2.3.4", 1), 2.0)
    assert server._close_event.error_code == QuicErrorCode.FLOW_CONTROL_ERROR


def test_stream_frame_on_our_own_unidirectional_stream_is_a_state_error(tls_files):
    client, server = pair(tls_files)
    sid = server.get_next_available_stream_id(is_unidirectional=True)
    server.send_stream_data(sid, b"x")
    server.receive_datagram(seal(client, stream_frame(sid, 0, 10, False, True)),
                            ("1.2.3.4", 1), 2.0)
    assert server._close_event.error_code == QuicErrorCode.STREAM_STATE_ERROR


def test_stream_frame_offset_past_2_62_is_a_frame_encoding_error(tls_files):
    client, server = pair(tls_files)
    payload = bytes(24) + varint(0x0E) + varint(0) + varint(2**62 - 5) + varint(10) + bytes(10)
    server.receive_datagram(seal(client, payload), ("1.2.3.4", 1), 2.0)
    assert server._close_event.error_code == QuicErrorCode.FRAME_ENCODING_ERROR
