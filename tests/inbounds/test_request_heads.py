"""The compiled request-head parsers (``fastpath/inbounds/request_heads.pyx``) against the
pure-Python parsers they replaced (``tests/oracles/request_heads.py``) under hypothesis: on
arbitrary bytes, and on real SOCKS5, VLESS and Trojan heads cut anywhere and with bytes
overwritten, both give the same answer or raise the same error with the same message."""
from __future__ import annotations

import struct

from hypothesis import given, settings, strategies as st

from fastpath.inbounds import request_heads as compiled
from tests.oracles import request_heads as oracle

# Domain names as a peer may send them: ASCII, ``xn--`` labels (valid and not), any bytes.
domains = st.one_of(
    st.from_regex(rb"[a-zA-Z0-9.-]{1,40}", fullmatch=True),
    st.from_regex(rb"([a-z0-9]{1,10}\.)?(xn|XN)--[a-z0-9-]{0,20}(\.[a-z]{2,4})?", fullmatch=True),
    st.sampled_from([b"xn--bcher-kva.example", b"xn--", b"a.xn--zz", b"\xc3\xa9t\xc3\xa9.fr",
                     b"a..b", b".", b"x" * 64 + b".com", b"\x00"]),
    st.text(min_size=1, max_size=20).map(lambda s: s.encode("utf-8")[:255]),
    st.binary(min_size=0, max_size=255),
)
ports = st.integers(0, 65535)


def address_type_and_body(draw, v4: int, domain: int, v6: int) -> tuple[int, bytes]:
    """An address type (the protocol's three, or any byte) and the address bytes after it."""
    atyp = draw(st.sampled_from([v4, domain, v6, draw(st.integers(0, 255))]))
    if atyp == domain:
        name = draw(domains)
        return atyp, bytes([len(name)]) + name
    return atyp, draw(st.binary(min_size=16, max_size=16))[:4 if atyp == v4 else 16]


@st.composite
def socks_addresses(draw) -> bytes:
    """ATYP (1 v4, 3 domain, 4 v6, or any byte), address, port."""
    atyp, body = address_type_and_body(draw, 1, 3, 4)
    return bytes([atyp]) + body + struct.pack(">H", draw(ports))


@st.composite
def port_first_addresses(draw) -> bytes:
    """Port, ATYP (1 v4, 2 domain, 3 v6, or any byte), address: VLESS's (and VMess's) form."""
    atyp, body = address_type_and_body(draw, 1, 2, 3)
    return struct.pack(">HB", draw(ports), atyp) + body


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@st.composite
def addons(draw) -> bytes:
    """The VLESS addons protobuf: flow strings, other fields, varints, or junk."""
    field = st.one_of(
        st.tuples(st.just(0x0A), st.sampled_from([b"xtls-rprx-vision", b"", b"\xff\xfe"])).map(
            lambda kv: bytes([kv[0]]) + varint(len(kv[1])) + kv[1]),
        st.tuples(st.integers(0, 31), st.binary(max_size=20)).map(
            lambda kv: bytes([kv[0] << 3 | 2]) + varint(len(kv[1])) + kv[1]),
        st.integers(0, 2 ** 40).map(lambda v: bytes([2 << 3]) + varint(v)),
        st.binary(min_size=1, max_size=6),
    )
    return b"".join(draw(st.lists(field, max_size=4)))[:255]


@st.composite
def vless_heads(draw) -> bytes:
    extra = draw(addons())
    command = draw(st.sampled_from([1, 2, 3, draw(st.integers(0, 255))]))
    return (bytes([0]) + draw(st.binary(min_size=16, max_size=16)) + bytes([len(extra)]) + extra
            + bytes([command]) + draw(port_first_addresses()) + draw(st.binary(max_size=8)))


@st.composite
def trojan_heads(draw) -> bytes:
    user = draw(st.binary(min_size=56, max_size=56))
    command = draw(st.sampled_from([1, 3, draw(st.integers(0, 255))]))
    return (user + b"\r\n" + bytes([command]) + draw(socks_addresses()) + b"\r\n"
            + draw(st.binary(max_size=8)))


@st.composite
def damaged(draw, heads) -> bytes:
    """A head cut anywhere and with a few bytes overwritten (or left whole)."""
    head = bytearray(draw(heads))
    for _ in range(draw(st.integers(0, 3))):
        if head:
            head[draw(st.integers(0, len(head) - 1))] = draw(st.integers(0, 255))
    return bytes(head[:draw(st.integers(0, len(head)))])


def outcome(parse, *args):
    """What a parser made of the bytes: its answer, or its error's type and message."""
    try:
        return "answer", parse(*args)
    except Exception as exc:     # the comparison is the point: any error must match
        return "error", type(exc), str(exc)


def agree(name: str, *args) -> tuple:
    mine, theirs = outcome(getattr(compiled, name), *args), outcome(getattr(oracle, name), *args)
    assert mine == theirs, (args, mine, theirs)
    return mine


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.binary(max_size=300), damaged(socks_addresses())), st.integers(0, 4))
def test_socks_addresses_agree(data, offset):
    data = bytes(offset) + data
    agree("socks_address", data, offset)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.binary(max_size=300), damaged(port_first_addresses())), st.integers(0, 4))
def test_port_first_addresses_agree(data, offset):
    agree("vless_address", bytes(offset) + data, offset)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.binary(max_size=400), damaged(vless_heads())))
def test_vless_requests_agree(data):
    agree("vless_request", data)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.binary(max_size=400), damaged(trojan_heads())))
def test_trojan_requests_agree(data):
    agree("trojan_request", data)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=80), st.from_regex(rb"[0-9a-fA-F]{0,70}", fullmatch=True)))
def test_the_trojan_hash_prefix_check_agrees(prefix):
    from fastpath.inbounds.trojan import _could_be_hash
    assert _could_be_hash(prefix) == oracle.could_be_hash(prefix)


@settings(max_examples=300, deadline=None)
@given(vless_heads())
def test_whole_heads_get_answers_not_only_errors(head):
    """The generators reach the answers too (else agreement would only be on errors): a whole
    head of a known command and address type parses to what was written."""
    kind, *found = outcome(compiled.vless_request, head)
    n = head[17]
    command = head[18 + n]
    if kind == "answer" and command in (1, 2):
        uuid, _flow, got_command, address, end = found[0]
        assert (uuid, got_command) == (head[1:17], command)
        assert address.rsplit(":", 1)[1] == str(struct.unpack_from(">H", head, 19 + n)[0])
        assert end <= len(head)


def test_answers_are_reached():
    heads = [
        b"\x05" * 56 + b"\r\n\x01\x03\x0bexample.com\x01\xbb\r\nGET",
        b"\x05" * 56 + b"\r\n\x03\x04" + bytes(15) + b"\x01\x00\x35\r\n",
    ]
    assert agree("trojan_request", heads[0]) == ("answer", (b"\x05" * 56, 1, "example.com:443", 76))
    assert agree("trojan_request", heads[1]) == ("answer", (b"\x05" * 56, 3, "[::1]:53", 80))
    vless = (b"\x00" + bytes(range(16)) + b"\x12\x0a\x10xtls-rprx-vision\x01\x01\xbb\x02"
             b"\x10xn--bcher-kva.de")
    assert agree("vless_request", vless) == (
        "answer", (bytes(range(16)), "xtls-rprx-vision", 1, "bücher.de:443", len(vless)))
    assert agree("vless_request", vless[:-1]) == ("answer", None)
    assert agree("socks_address", b"\x01\x7f\x00\x00\x01\x00\x50") == (
        "answer", ("127.0.0.1:80", 7))


def test_the_inbounds_use_the_compiled_parsers():
    """The protocol modules parse with the compiled functions (no Python copy left behind)."""
    from fastpath.inbounds import trojan, vless_header
    from fastpath.proxy import socks5
    assert socks5.decode_address is compiled.socks_address
    assert vless_header.decode_address is compiled.vless_address
    assert trojan.parse_request is compiled.trojan_request
    request, used = vless_header.parse_request(bytearray(b"\x00" + bytes(16) + b"\x00\x03x"))
    assert (request.command, request.address, used) == (3, None, 19)
