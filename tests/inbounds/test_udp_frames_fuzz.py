"""The in-stream UDP framings (``udp_frames``) and the VMess per-datagram chunks under
hypothesis: hostile bytes raise ValueError or wait for more, never anything else, and what a
reader keeps stays under one frame; real frames come back whole at any cut of the stream; a
flipped byte in a sealed VMess datagram is refused."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from fastpath.hy2.udp_relay import join_address, split_address
from fastpath.inbounds.udp_frames import (Datagrams, LengthPackets, MuxFrames, TrojanPackets,
                                          decode_packetaddr, encode_packetaddr, is_packetaddr,
                                          mux_new)
from fastpath.inbounds.vmess_chunks import ChunkError, VmessChunks

# Largest a reader may hold between feeds: one unfinished frame (64 KiB payload + header).
HELD = 65535 + 2 + 512 + 2
ip_hosts = st.one_of(st.just("127.0.0.1"), st.just("::1"), st.ip_addresses().map(str))
hosts = st.one_of(ip_hosts, st.from_regex(r"[a-z]{1,20}(\.[a-z]{2,5}){0,3}", fullmatch=True))
addresses = st.builds(join_address, hosts, st.integers(0, 65535))
payloads = st.binary(min_size=1, max_size=3000)
readers = st.sampled_from([TrojanPackets, LengthPackets, lambda: LengthPackets(packetaddr=True),
                           MuxFrames])


def cuts(data: bytes, sizes: list[int]):
    at = 0
    for n in sizes:
        yield data[at:at + n]
        at += n
    yield data[at:]


@settings(max_examples=400, deadline=None)
@given(readers, st.lists(st.binary(max_size=300), max_size=8))
def test_hostile_bytes_raise_value_error_or_wait(make, pieces):
    reader = make()
    try:
        for piece in pieces:
            for session, address, payload in reader.feed(piece):
                assert isinstance(session, int)
                if address is not None:
                    split_address(address)
                assert payload is None or isinstance(payload, bytes)
    except ValueError:
        return
    assert len(reader.buf) <= HELD


@settings(max_examples=100, deadline=None)
@given(readers, st.binary(min_size=1, max_size=8))
def test_a_huge_declared_length_is_held_to_one_frame(make, start):
    """A frame claiming 65 535 bytes then streaming junk: the reader holds at most one frame
    and goes on parsing (or refuses), it never grows with the stream."""
    reader = make()
    try:
        reader.feed(start + b"\xff\xff")
        for _ in range(20):
            reader.feed(os.urandom(8192))
            assert len(reader.buf) <= HELD
    except ValueError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(addresses, payloads), min_size=1, max_size=6),
       st.lists(st.integers(0, 600), max_size=12))
def test_trojan_frames_come_back_at_any_cut(datagrams, sizes):
    stream = b"".join(TrojanPackets.wrap(0, a, p) for a, p in datagrams)
    reader, got = TrojanPackets(), []
    for piece in cuts(stream, sizes):
        got += reader.feed(piece)
    assert [(_norm(a), p) for _s, a, p in got] == [(_norm(a), p) for a, p in datagrams]
    assert not reader.buf


def _norm(address: str):
    """An address as a comparable value (an IP written any way is the same IP)."""
    import ipaddress
    host, port = split_address(address)
    try:
        return ipaddress.ip_address(host), port
    except ValueError:
        return host, port


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.builds(join_address, ip_hosts, st.integers(0, 65535)), payloads),
                min_size=1, max_size=6),
       st.booleans(), st.lists(st.integers(0, 600), max_size=12))
def test_vless_length_frames_come_back_at_any_cut(datagrams, packetaddr, sizes):
    writer = LengthPackets(packetaddr=packetaddr)
    stream = b"".join(writer.wrap(0, a, p) for a, p in datagrams)
    reader, got = LengthPackets(packetaddr=packetaddr), []
    for piece in cuts(stream, sizes):
        got += reader.feed(piece)
    want = [(0, _norm(a) if packetaddr else None, p) for a, p in datagrams]
    assert [(s, a and _norm(a), p) for s, a, p in got] == want




@settings(max_examples=200, deadline=None)
@given(st.integers(0, 65535), addresses, st.lists(st.tuples(st.one_of(st.none(), addresses), payloads),
                                                 min_size=1, max_size=5),
       st.lists(st.integers(0, 600), max_size=12))
def test_mux_udp_sessions_come_back_at_any_cut(session, first, datagrams, sizes):
    stream = mux_new(session, first, datagrams[0][1])
    for address, payload in datagrams[1:]:
        # keep frames: with their own address (XUDP) or none (the session's)
        stream += MuxFrames.wrap(session, address, payload) if address else (
            bytes([0, 4]) + session.to_bytes(2, "big") + bytes([2, 1])
            + len(payload).to_bytes(2, "big") + payload)
    stream += MuxFrames.end(session)
    reader, got = MuxFrames(), []
    for piece in cuts(stream, sizes):
        got += reader.feed(piece)
    want = [(session, _norm(first), datagrams[0][1])]
    want += [(session, _norm(a) if a else _norm(first), p) for a, p in datagrams[1:]]
    want.append((session, None, None))
    assert [(s, a and _norm(a), p) for s, a, p in got] == want
    assert not reader.target and not reader.buf


def test_mux_refuses_tcp_and_sessions_past_the_limit_and_ignores_keepalives():
    from fastpath.inbounds.udp_frames import MAX_SESSIONS
    reader = MuxFrames()
    frames = mux_new(1, "127.0.0.1:80", b"", network=1)
    frames += bytes([0, 4, 0, 9, 4, 0])                          # keep-alive
    for s in range(2, MAX_SESSIONS + 3):
        frames += mux_new(s, "127.0.0.1:53", b"q")
    got = reader.feed(frames)
    assert len(got) == MAX_SESSIONS
    assert reader.refused == [1, MAX_SESSIONS + 2]
    # a keep frame of a refused session is dropped, not an error
    assert reader.feed(MuxFrames.wrap(1, "127.0.0.1:80", b"late")) == []
    with pytest.raises(ValueError):
        MuxFrames().feed(bytes([0, 4, 0, 1, 9, 0]))              # status 9
    with pytest.raises(ValueError):
        MuxFrames().feed(bytes([0x10, 0, 0, 1, 1, 0]))           # metadata too long


@given(st.builds(join_address, ip_hosts, st.integers(0, 65535)), st.binary(max_size=100))
def test_packetaddr_round_trip(address, payload):
    got, rest = decode_packetaddr(encode_packetaddr(address, payload))
    assert (_norm(got), rest) == (_norm(address), payload)


@given(st.binary(max_size=40))
def test_packetaddr_on_random_bytes(data):
    try:
        address, payload = decode_packetaddr(data)
    except ValueError:
        return
    split_address(address)
    assert len(payload) <= len(data)


def test_packetaddr_name_and_datagram_units():
    assert is_packetaddr("sp.packet-addr.v2fly.arpa:0")
    assert not is_packetaddr("example.com:53") and not is_packetaddr(None)
    assert Datagrams().feed(b"abc") == [(0, None, b"abc")]
    with pytest.raises(ValueError):
        Datagrams(packetaddr=True).feed(b"\x03abc")


SECURITIES = [(3, 0x05, 16), (3, 0x1D, 16), (4, 0x0D, 32), (5, 0x01, 16), (3, 0x15, 16)]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(SECURITIES), st.lists(st.binary(min_size=1, max_size=9000), min_size=1,
                                             max_size=5),
       st.lists(st.integers(0, 5000), max_size=10))
def test_vmess_datagrams_keep_their_boundaries_at_any_cut(security, datagrams, sizes):
    sec, option, key_size = security
    key, iv, length_key = os.urandom(key_size), os.urandom(16), os.urandom(key_size)
    sealer = VmessChunks(sec, option, key, iv, seal=True, length_key=length_key, length_iv=iv)
    opener = VmessChunks(sec, option, key, iv, seal=False, length_key=length_key, length_iv=iv)
    stream = b"".join(sealer.seal_packet(d) for d in datagrams)
    got = []
    for piece in cuts(stream, sizes):
        got += opener.feed_packets(piece)
    assert got == datagrams


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(SECURITIES[:3]), st.binary(min_size=1, max_size=2000), st.data())
def test_a_flipped_byte_in_a_sealed_datagram_is_refused(security, datagram, data):
    sec, option, key_size = security
    # fixed keys: the sealed size (padding from the IV's SHAKE stream) must not vary per run
    key, iv, length_key = bytes(range(key_size)), bytes(range(16, 32)), bytes(range(1, key_size + 1))
    sealer = VmessChunks(sec, option, key, iv, seal=True, length_key=length_key, length_iv=iv)
    opener = VmessChunks(sec, option, key, iv, seal=False, length_key=length_key, length_iv=iv)
    raw = bytearray(sealer.seal_packet(datagram))
    sealed = (18 if option & 0x10 else 2) + len(datagram) + 16     # the padding after is not
    at = data.draw(st.integers(0, sealed - 1))                       # authenticated: skipped
    raw[at] ^= 1 << data.draw(st.integers(0, 7))
    try:
        got = opener.feed_packets(bytes(raw))
    except ChunkError:
        return
    assert got != [datagram]          # a masked length may only make it wait for more


def test_a_datagram_too_big_for_one_chunk_is_refused_and_an_empty_one_makes_none():
    sealer = VmessChunks(3, 0x05, bytes(16), bytes(16), seal=True)
    with pytest.raises(ValueError):
        sealer.seal_packet(bytes(65500))
    assert sealer.seal_packet(b"") == b""
