"""The compiled Hysteria 2 wire codecs: spec vectors, agreement with the pure-Python reference on
random input, and fuzzing of every parser (never crash, never hang, bounded memory)."""
import hashlib
import random
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the in-place build, with `pytest`

from fastpath._native import load  # noqa: E402

from . import reference_codecs as ref  # noqa: E402

varint = load("fastpath.hy2.wire.varint")
frames = load("fastpath.hy2.wire.frames")
salamander = load("fastpath.hy2.wire.salamander")

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

addresses = st.text(min_size=1, max_size=60)  # at most 240 bytes of UTF-8
long_addresses = st.text(min_size=1, max_size=700).filter(lambda s: len(s.encode("utf-8")) <= 2048)
payloads = st.binary(min_size=1, max_size=3000)
varint_values = st.one_of(st.integers(0, 63), st.integers(0, 16383), st.integers(0, 2**30 - 1),
                          st.integers(0, 2**62 - 1))


def chunked(data, cuts):
    """Split ``data`` at the (sorted, deduplicated) positions in ``cuts``."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points + [len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


# --- spec vectors -----------------------------------------------------------------------------

@pytest.mark.parametrize("hex_bytes, value", [
    ("c2197c5eff14e88c", 151288809941952652),  # RFC 9000 §A.1
    ("9d7f3e7d", 494878333),
    ("7bbd", 15293),
    ("25", 37),
    ("4025", 37),  # non-shortest form is accepted
])
def test_varint_rfc9000_examples(hex_bytes, value):
    assert varint.decode(bytes.fromhex(hex_bytes)) == (value, len(hex_bytes) // 2)


def test_varint_encode_limits():
    assert varint.encode(0) == b"\x00"
    assert varint.encode(0x401) == b"\x44\x01"
    assert varint.encode(2**62 - 1) == b"\xff" * 8
    assert varint.size(2**62 - 1) == 8
    for bad in (-1, 2**62, 2**64):
        with pytest.raises(ValueError):
            varint.encode(bad)


def test_varint_decode_truncated_and_offset():
    with pytest.raises(ValueError):
        varint.decode(b"")
    with pytest.raises(ValueError):
        varint.decode(b"\xc0\x00\x00")
    assert varint.decode(b"\xff\x44\x01", 1) == (0x401, 2)
    with pytest.raises(ValueError):
        varint.decode(b"\x00", 2)


def test_tcp_request_bytes_on_the_wire():
    wire = frames.encode_tcp_request("example.com:80", padding_len=0)
    assert wire == bytes.fromhex("4401") + b"\x0e" + b"example.com:80" + b"\x00"
    assert frames.parse_tcp_request(wire + b"early") == ("example.com:80", len(wire))


def test_tcp_request_default_padding_is_random_64_to_512():
    lengths = set()
    for _ in range(50):
        wire = frames.encode_tcp_request("[::1]:443")
        address, consumed = frames.parse_tcp_request(wire)
        assert address == "[::1]:443" and consumed == len(wire)
        lengths.add(len(wire) - len(frames.encode_tcp_request("[::1]:443", 0)))
    assert len(lengths) > 1
    assert all(64 <= n <= 512 + 1 for n in lengths)  # +1: a 2-byte padding length varint


def test_tcp_response_bytes_on_the_wire():
    assert frames.encode_tcp_response(True, "Connected", 0) == b"\x00\x09Connected\x00"
    assert frames.encode_tcp_response(False, "", 0) == b"\x01\x00\x00"
    assert frames.parse_tcp_response(b"\x00\x09Connected\x00xyz") == (True, "Connected", 12)


def test_udp_message_spec_vector():
    wire = bytes.fromhex("00000001" "0001" "00" "01" "0e" "6578616d706c652e636f6d3a3830"
                         "474554202f6e6f7468696e6720485454502f312e310d0a")
    assert frames.encode_udp_message(1, 1, 0, 1, "example.com:80",
                                     b"GET /nothing HTTP/1.1\r\n") == wire
    msg = frames.parse_udp_message(wire)
    assert (msg.session_id, msg.packet_id, msg.frag_id, msg.frag_count) == (1, 1, 0, 1)
    assert msg.address == "example.com:80"
    assert msg.payload == b"GET /nothing HTTP/1.1\r\n"
    assert msg.encode() == wire
    assert msg == frames.UdpMessage(1, 1, 0, 1, "example.com:80", b"GET /nothing HTTP/1.1\r\n")


def test_salamander_spec_vector():
    s = salamander.Salamander(b"average_password")
    packet = s.obfuscate_with_salt(b"hello world", bytes.fromhex("0001020304050607"))
    assert packet.hex() == "00010203040506071920c7f0d741fb0f250470"
    assert s.deobfuscate(packet) == b"hello world"


def test_salamander_rules():
    with pytest.raises(ValueError):
        salamander.Salamander(b"abc")
    s = salamander.Salamander("pass")  # str is taken as UTF-8
    assert s.deobfuscate(b"") is None
    assert s.deobfuscate(b"12345678") is None
    assert s.deobfuscate(b"123456789") is not None
    a, b = s.obfuscate(b"same payload"), s.obfuscate(b"same payload")
    assert a[:8] != b[:8]  # a fresh salt per packet
    assert s.deobfuscate(a) == s.deobfuscate(b) == b"same payload"
    with pytest.raises(ValueError):
        s.obfuscate_with_salt(b"x", b"short")


@pytest.mark.parametrize("n", [0, 1, 7, 8, 111, 119, 120, 127, 128, 129, 255, 256, 257, 1000])
def test_blake2b_matches_hashlib(n):
    data = bytes(range(256)) * 4
    assert salamander.blake2b_256(data[:n]) == hashlib.blake2b(data[:n], digest_size=32).digest()


def test_fragmentation_rules():
    whole = frames.fragment_udp_message(7, "1.2.3.4:53", b"x" * 100)
    assert len(whole) == 1
    msg = frames.parse_udp_message(whole[0])
    assert (msg.packet_id, msg.frag_id, msg.frag_count) == (0, 0, 1)

    frags = frames.fragment_udp_message(7, "1.2.3.4:53", bytes(3000), max_datagram=1200)
    assert len(frags) == 3 and all(len(f) <= 1200 for f in frags)
    parsed = [frames.parse_udp_message(f) for f in frags]
    assert len({m.packet_id for m in parsed}) == 1 and 1 <= parsed[0].packet_id <= 65535
    assert [(m.frag_id, m.frag_count) for m in parsed] == [(0, 3), (1, 3), (2, 3)]

    exact = 1200 - len(frames.encode_udp_message(7, 0, 0, 1, "1.2.3.4:53", b"x")) + 1
    assert len(frames.fragment_udp_message(7, "1.2.3.4:53", bytes(exact))) == 1
    assert len(frames.fragment_udp_message(7, "1.2.3.4:53", bytes(exact + 1))) == 2

    with pytest.raises(ValueError):  # more than 255 fragments
        frames.fragment_udp_message(7, "1.2.3.4:53", bytes(256 * 100), max_datagram=100)
    with pytest.raises(ValueError):  # the header alone does not fit
        frames.fragment_udp_message(7, "a" * 200, bytes(300), max_datagram=150)
    with pytest.raises(ValueError):
        frames.fragment_udp_message(7, "1.2.3.4:53", b"")


def test_encoders_reject_out_of_range():
    with pytest.raises(ValueError):
        frames.encode_tcp_request("")
    with pytest.raises(ValueError):
        frames.encode_tcp_request("a" * 2049)
    with pytest.raises(ValueError):
        frames.encode_tcp_request("a:1", padding_len=4097)
    with pytest.raises(ValueError):
        frames.encode_tcp_response(True, "m" * 2049)
    with pytest.raises(ValueError):
        frames.encode_udp_message(2**32, 0, 0, 1, "a:1", b"x")
    with pytest.raises(ValueError):
        frames.encode_udp_message(1, -1, 0, 1, "a:1", b"x")
    with pytest.raises(ValueError):
        frames.encode_udp_message(1, 0, 256, 1, "a:1", b"x")
    with pytest.raises(ValueError):
        frames.encode_udp_message(1, 0, 0, 1, "a:1", b"")


@pytest.mark.parametrize("wire, why", [
    (b"\x44\x02\x01a\x00", "frame type"),
    (b"\x44\x01\x00\x00", "empty address"),
    (b"\x44\x01\x48\x01", "address length 2049"),
    (b"\x44\x01\xbf\xff\xff\xff", "address length 2**30-1"),
    (b"\x44\x01\xff\xff\xff\xff\xff\xff\xff\xff", "address length 2**62-1"),
    (b"\x44\x01\x01a\x50\x01", "padding 4097"),
    (b"\x44\x01\x01a\xff\xff\xff\xff\xff\xff\xff\xff", "padding 2**62-1"),
    (b"\x44\x01\x02\xff\xfe\x00", "address not UTF-8"),
])
def test_malformed_request_sets_error(wire, why):
    with pytest.raises(ValueError) as exc:
        frames.parse_tcp_request(wire)
    assert not isinstance(exc.value, frames.Incomplete), why
    p = frames.TcpRequestParser()
    p.feed(wire)
    assert p.error is not None and not p.done, why
    p.feed(b"more bytes")  # ignored, never raises
    assert p.leftover == b""
    q = frames.TcpRequestParser()  # byte by byte: the same verdict
    for i in range(len(wire)):
        q.feed(wire[i:i + 1])
    assert q.error is not None and not q.done


def test_request_parser_incomplete_then_done():
    wire = frames.encode_tcp_request("example.com:443", padding_len=300)
    for cut in range(len(wire)):
        with pytest.raises(frames.Incomplete):
            frames.parse_tcp_request(wire[:cut])
    p = frames.TcpRequestParser()
    p.feed(wire[:10])
    assert not p.done and p.error is None and p.address is None
    p.feed(wire[10:] + b"GET / HTTP/1.1\r\n")
    assert p.done and p.address == "example.com:443" and p.leftover == b"GET / HTTP/1.1\r\n"
    p.feed(b"more")
    assert p.leftover == b"GET / HTTP/1.1\r\nmore"


def test_empty_feeds_change_nothing():
    wire = frames.encode_tcp_request("h:1", padding_len=3)
    p = frames.TcpRequestParser()
    for part in (b"", wire[:2], b"", wire[2:5], b"", wire[5:], b""):
        p.feed(part)
    assert p.done and p.address == "h:1" and p.leftover == b""
    p.feed(bytearray(b"x"))
    p.feed(memoryview(b"y"))
    assert p.leftover == b"xy"


def test_response_parser():
    wire = frames.encode_tcp_response(False, "dial tcp: connection refused", 200)
    p = frames.TcpResponseParser()
    assert p.ok is None
    for i in range(len(wire)):
        p.feed(wire[i:i + 1])
    assert p.done and p.ok is False and p.message == "dial tcp: connection refused"
    p = frames.TcpResponseParser()
    p.feed(b"\x00\x48\x01")  # message of 2049 bytes
    assert p.error is not None


def test_udp_parse_rejects():
    good = frames.encode_udp_message(1, 2, 3, 4, "h:1", b"p")
    assert frames.parse_udp_message(good) is not None
    assert frames.parse_udp_message(good[:-1]) is None  # no payload
    assert frames.parse_udp_message(b"") is None
    assert frames.parse_udp_message(good[:8] + b"\x00h:1p") is None  # empty address
    assert frames.parse_udp_message(good[:8] + b"\x48\x01" + b"a" * 3000) is None  # 2049
    assert frames.parse_udp_message(good[:8] + b"\x02\xff\xfep") is None  # not UTF-8
    assert frames.parse_udp_message(good[:8] + b"\xff" * 8 + b"x" * 100) is None


def test_defragmenter_rules():
    d = frames.Defragmenter()
    M = frames.UdpMessage
    assert d.feed(M(1, 9, 0, 1, "a:1", b"whole")) == b"whole"
    assert d.feed(M(1, 9, 1, 1, "a:1", b"bad id")) is None  # frag id >= count
    assert d.feed(M(1, 9, 0, 0, "a:1", b"no count")) is None
    assert d.feed(M(1, 5, 1, 3, "a:1", b"B")) is None
    assert d.feed(M(1, 5, 1, 3, "a:1", b"B")) is None  # duplicate
    assert d.feed(M(1, 6, 0, 1, "a:1", b"x")) == b"x"  # unfragmented: does not disturb 5
    assert d.feed(M(1, 5, 0, 3, "a:1", b"A")) is None
    assert d.feed(M(1, 5, 2, 3, "a:1", b"C")) == b"ABC"
    assert d.feed(M(1, 5, 2, 3, "a:1", b"C")) is None  # late duplicate of a delivered packet
    assert d.feed(M(1, 7, 0, 2, "a:1", b"X")) is None
    assert d.feed(M(1, 8, 0, 2, "a:1", b"Y")) is None  # new packet id: 7 is abandoned
    assert d.feed(M(1, 7, 1, 2, "a:1", b"x")) is None
    assert d.feed(M(1, 7, 0, 3, "a:1", b"1")) is None  # same id, other count: resets
    assert d.feed(M(1, 7, 1, 3, "a:1", b"2")) is None
    assert d.feed(M(1, 7, 2, 3, "a:1", b"3")) == b"123"
    with pytest.raises(TypeError):
        d.feed(None)


# --- agreement with the reference ---------------------------------------------------------------

@FAST
@given(varint_values)
def test_varint_matches_reference(v):
    assert varint.encode(v) == ref.varint_encode(v)
    assert varint.decode(ref.varint_encode(v)) == (v, len(ref.varint_encode(v)))


@FAST
@given(st.binary(max_size=10), st.integers(0, 10))
def test_varint_decode_random_bytes(data, offset):
    try:
        expected = ref.varint_decode(data, offset)
    except ValueError:
        expected = None
    if offset > len(data):
        with pytest.raises(ValueError):
            varint.decode(data, offset)
        return
    try:
        got = varint.decode(data, offset)
    except ValueError:
        got = None
    assert got == expected


@FAST
@given(long_addresses, st.integers(0, 4096), st.lists(st.integers(0, 10**6), max_size=6),
       st.binary(max_size=50))
def test_tcp_request_matches_reference(address, pad, cuts, early):
    wire = frames.encode_tcp_request(address, pad)
    padding = wire[len(wire) - pad:] if pad else b""
    assert wire == ref.encode_tcp_request(address, padding)
    assert frames.parse_tcp_request(wire + early) == ref.parse_tcp_request(wire + early)
    mine, theirs = frames.TcpRequestParser(), ref.TcpRequestParser()
    for part in chunked(wire + early, cuts):
        mine.feed(part)
        theirs.feed(part)
    assert mine.done and theirs.done and mine.error is None
    assert (mine.address, mine.leftover) == (theirs.address, theirs.leftover) == (address, early)


@FAST
@given(st.booleans(), st.text(max_size=300), st.integers(0, 4096),
       st.lists(st.integers(0, 10**6), max_size=6), st.binary(max_size=50))
def test_tcp_response_matches_reference(ok, message, pad, cuts, early):
    assume(len(message.encode("utf-8")) <= 2048)
    wire = frames.encode_tcp_response(ok, message, pad)
    padding = wire[len(wire) - pad:] if pad else b""
    assert wire == ref.encode_tcp_response(ok, message, padding)
    assert frames.parse_tcp_response(wire + early) == ref.parse_tcp_response(wire + early)
    mine = frames.TcpResponseParser()
    for part in chunked(wire + early, cuts):
        mine.feed(part)
    assert (mine.done, mine.ok, mine.message, mine.leftover) == (True, ok, message, early)


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(0, 65535), st.integers(0, 255),
       st.integers(0, 255), long_addresses, payloads)
def test_udp_message_matches_reference(sid, pid, fid, fcount, address, payload):
    wire = frames.encode_udp_message(sid, pid, fid, fcount, address, payload)
    assert wire == ref.encode_udp_message(sid, pid, fid, fcount, address, payload)
    msg = frames.parse_udp_message(wire)
    assert msg is not None
    assert msg._fields() == ref.parse_udp_message(wire).fields() == (
        sid, pid, fid, fcount, address, payload)
    assert frames.parse_udp_message(bytearray(wire)) == msg
    assert frames.parse_udp_message(memoryview(wire)) == msg


@FAST
@given(st.integers(0, 2**32 - 1), addresses, st.binary(min_size=1, max_size=20000),
       st.integers(60, 1500), st.randoms(use_true_random=False))
def test_fragment_reassemble_roundtrip(sid, address, payload, max_datagram, rnd):
    try:
        expected = ref.fragment_udp_message(sid, address, payload, max_datagram, packet_id=1)
    except ValueError:
        with pytest.raises(ValueError):
            frames.fragment_udp_message(sid, address, payload, max_datagram)
        return
    frags = frames.fragment_udp_message(sid, address, payload, max_datagram)
    assert len(frags) == len(expected)
    assert all(len(f) <= max_datagram for f in frags)
    pid = frames.parse_udp_message(frags[0]).packet_id
    assert frags == ref.fragment_udp_message(sid, address, payload, max_datagram, packet_id=pid)
    # Shuffled, with duplicates: delivered exactly once, whole.
    stream = frags + [rnd.choice(frags) for _ in range(rnd.randint(0, len(frags)))]
    rnd.shuffle(stream)
    mine, theirs = frames.Defragmenter(), ref.Defragmenter()
    delivered = []
    for wire in stream:
        got = mine.feed(frames.parse_udp_message(wire))
        assert got == theirs.feed(ref.parse_udp_message(wire))
        if got is not None:
            delivered.append(got)
    if len(frags) == 1:
        assert delivered == [payload] * stream.count(frags[0])
    else:
        assert delivered == [payload]


messages = st.builds(
    lambda pid, fid, count, payload: (pid, fid, count, payload),
    st.integers(0, 3), st.integers(0, 4), st.integers(0, 4), st.binary(min_size=1, max_size=40))


@FAST
@given(st.lists(messages, max_size=60), st.integers(1, 200))
def test_defragmenter_matches_reference(seq, max_packet):
    mine, theirs = frames.Defragmenter(max_packet), ref.Defragmenter(max_packet)
    for pid, fid, count, payload in seq:
        got = mine.feed(frames.UdpMessage(1, pid, fid, count, "a:1", payload))
        assert got == theirs.feed(ref.UdpMessage(1, pid, fid, count, "a:1", payload))
        assert mine.pending_bytes <= max_packet


@FAST
@given(st.binary(min_size=4, max_size=200), st.binary(min_size=8, max_size=8),
       st.binary(max_size=2000))
def test_salamander_matches_reference(password, salt, payload):
    mine, theirs = salamander.Salamander(password), ref.Salamander(password)
    packet = mine.obfuscate_with_salt(payload, salt)
    assert packet == theirs.obfuscate_with_salt(payload, salt)
    assert mine.deobfuscate(packet) == theirs.deobfuscate(packet)
    if payload:
        assert mine.deobfuscate(packet) == payload
    assert mine.deobfuscate(mine.obfuscate(payload)) == (payload or None)


# --- fuzzing: hostile input -------------------------------------------------------------------

def _feed_all(parser, data, cuts):
    for part in chunked(data, cuts):
        parser.feed(part)  # must never raise on what a peer sends


request_like = st.one_of(
    st.binary(max_size=3000),
    st.binary(max_size=40).map(lambda b: b"\x44\x01" + b),
    st.tuples(st.integers(0, 2**62 - 1), st.integers(0, 2**62 - 1), st.binary(max_size=300))
      .map(lambda t: b"\x44\x01" + ref.varint_encode(t[0]) + t[2][:t[0] % 301]
           + ref.varint_encode(t[1]) + t[2]),
)


@FAST
@given(request_like, st.lists(st.integers(0, 10**6), max_size=8))
def test_fuzz_request_parser_agrees_and_never_raises(data, cuts):
    mine, theirs = frames.TcpRequestParser(), ref.TcpRequestParser()
    _feed_all(mine, data, cuts)
    _feed_all(theirs, data, cuts)
    assert (mine.done, mine.error is None) == (theirs.done, theirs.error is None)
    assert (mine.address, mine.leftover) == (theirs.address, theirs.leftover)
    try:
        expected = ref.parse_tcp_request(data)
    except ref.Incomplete:
        expected = frames.Incomplete
    except ValueError:
        expected = ValueError
    try:
        got = frames.parse_tcp_request(data)
    except frames.Incomplete:
        got = frames.Incomplete
    except ValueError:
        got = ValueError
    assert got == expected


@FAST
@given(st.one_of(st.binary(max_size=3000),
                 st.binary(max_size=30).map(lambda b: b"\x00" + b),
                 st.binary(max_size=30).map(lambda b: b"\x01\xff" + b)),
       st.lists(st.integers(0, 10**6), max_size=8))
def test_fuzz_response_parser_agrees_and_never_raises(data, cuts):
    mine, theirs = frames.TcpResponseParser(), ref.TcpResponseParser()
    _feed_all(mine, data, cuts)
    _feed_all(theirs, data, cuts)
    assert (mine.done, mine.error is None) == (theirs.done, theirs.error is None)
    assert (mine.ok, mine.message, mine.leftover) == (theirs.ok, theirs.message, theirs.leftover)


@FAST
@given(st.one_of(st.binary(max_size=200),
                 st.binary(min_size=8, max_size=8).flatmap(
                     lambda h: st.binary(max_size=100).map(lambda b: h + b)),
                 st.tuples(st.binary(min_size=8, max_size=8), st.integers(0, 2**62 - 1),
                           st.binary(max_size=100))
                   .map(lambda t: t[0] + ref.varint_encode(t[1]) + t[2])))
def test_fuzz_udp_parser_agrees(data):
    mine, theirs = frames.parse_udp_message(data), ref.parse_udp_message(data)
    assert (mine is None) == (theirs is None)
    if mine is not None:
        assert mine._fields() == theirs.fields()


@FAST
@given(st.binary(max_size=100))
def test_fuzz_deobfuscate(data):
    s = salamander.Salamander(b"fuzzing!")
    assert s.deobfuscate(data) == ref.Salamander(b"fuzzing!").deobfuscate(data)


def test_fragment_flood_is_bounded():
    """Hostile fragments (every id and count, huge payloads) never make a session's reassembler
    hold more than its limit, and never deliver a packet that was not completed."""
    rnd = random.Random(1234)
    d = frames.Defragmenter()
    big = bytes(1500)
    for i in range(20000):
        count = rnd.randint(2, 255)
        msg = frames.UdpMessage(1, rnd.choice((1, 2, 3)), rnd.randrange(count), count, "a:1",
                                big[:rnd.randint(1, 1500)])
        d.feed(msg)
        assert d.pending_bytes <= d.max_packet_size
    # One packet of 255 full-size fragments except the last: held, bounded; the abandoned
    # packet's fragments never complete.
    d = frames.Defragmenter()
    for fid in range(254):
        assert d.feed(frames.UdpMessage(1, 77, fid, 255, "a:1", big)) is None
    assert d.pending_bytes == 0  # 254 * 1500 > 65535: abandoned, memory freed
    assert d.feed(frames.UdpMessage(1, 77, 254, 255, "a:1", big)) is None


def test_hostile_request_stream_memory_is_bounded():
    """A peer that trickles a maximal header, or pours megabytes that are all padding, costs at
    most the fixed header buffer: nothing is kept until the request is complete."""
    header = b"\x44\x01" + b"\x48\x00" + b"a" * 2048 + b"\x50\x00"  # 2048-byte address, 4096 pad
    chunks = [header[i:i + 7] for i in range(0, len(header), 7)] + [b"\x00" * 512] * 8
    stream = [b"\x44\x01\x48\x00"] + [b"b" * 64] * 40000  # 2.5 MB after a valid start
    tracemalloc.start()
    try:
        p = frames.TcpRequestParser()
        base = tracemalloc.get_traced_memory()[0]
        for c in chunks:
            p.feed(c)
        assert p.done and p.leftover == b"" and len(p.address) == 2048
        q = frames.TcpRequestParser()
        for c in stream:
            q.feed(c)
        assert q.error is not None  # the address is not followed by a padding length <= 4096
        grown = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024


def test_parser_object_has_fixed_size():
    a, b = frames.TcpRequestParser(), frames.TcpRequestParser()
    b.feed(b"\x44\x01\x48\x00" + b"a" * 2000)
    assert sys.getsizeof(a) == sys.getsizeof(b) < 3 * 1024
