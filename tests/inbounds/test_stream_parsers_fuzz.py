"""The VLESS and VMess header parsers, the VMess chunk codec and the WebSocket frame reader
under hypothesis: hostile bytes raise ValueError or ask for more, never anything else; real
heads parse at any cut; sealed streams open whatever the read sizes; a flipped byte is refused."""
from __future__ import annotations

import os
import struct
import time
import uuid

import pytest
from hypothesis import given, settings, strategies as st

from fastpath.mesh.paths import split_address
from fastpath.inbounds.vless_header import encode_port_address, encode_request as vless_request
from fastpath.inbounds.vless_header import parse_request as parse_vless
from fastpath.inbounds.vmess_chunks import ChunkError, VmessChunks
from fastpath.inbounds.vmess_header import (VmessError, VmessUsers, chacha_key, cmd_key, kdf,
                                            encode_request as vmess_request,
                                            parse_request as parse_vmess)
from fastpath.inbounds.ws_frames import WsClosed, WsError, WsReader, WsWriter, pong
from tests.inbounds.peers import RecordingWriter

USER = uuid.uuid4().bytes
USERS = VmessUsers([("u", cmd_key(USER))])
hosts = st.one_of(st.just("127.0.0.1"), st.just("::1"),
                  st.from_regex(r"[a-z]{1,20}(\.[a-z]{2,5}){0,3}", fullmatch=True))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_vless_parser_on_random_bytes(data):
    try:
        found = parse_vless(data)
    except ValueError:
        return
    if found is not None:
        request, used = found
        assert used <= len(data)
        if request.address is not None:
            split_address(request.address)


@settings(max_examples=200, deadline=None)
@given(hosts, st.integers(0, 65535), st.sampled_from(["", "xtls-rprx-vision"]),
       st.integers(min_value=0, max_value=80))
def test_a_vless_head_parses_at_every_cut(host, port, flow, cut):
    from fastpath.mesh.paths import join_address
    head = vless_request(USER, join_address(host, port), flow=flow)
    cut = min(cut, len(head) - 1)
    assert parse_vless(head[:cut]) is None
    request, used = parse_vless(head + b"data")
    assert (request.uuid, request.flow, used) == (USER, flow, len(head))
    assert split_address(request.address) == (host, port)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_vmess_parser_on_random_bytes(data):
    try:
        assert parse_vmess(data, USERS, lambda a: False) is None
    except VmessError:
        pass


@settings(max_examples=100, deadline=None)
@given(hosts, st.integers(0, 65535), st.sampled_from([3, 4, 5]), st.integers(0, 31),
       st.binary(max_size=15), st.integers(min_value=0, max_value=300))
def test_a_vmess_head_parses_at_every_cut_and_a_flip_is_refused(host, port, security, option,
                                                                padding, flip):
    head = vmess_request(USER, encode_port_address(host, port), security=security, option=option,
                         body_key=os.urandom(16), body_iv=os.urandom(16), padding=padding)
    seen: set = set()

    def remember(auth_id):
        known = auth_id in seen
        seen.add(auth_id)
        return known
    for cut in (0, 10, 33, 42, len(head) - 1):
        assert parse_vmess(head[:cut], USERS, remember) is None
    request, used = parse_vmess(head + b"rest", USERS, remember)
    assert used == len(head) and split_address(request.address) == (host, port)
    assert (request.security, request.option) == (security, option)
    with pytest.raises(VmessError, match="replayed"):
        parse_vmess(head, USERS, remember)
    broken = bytearray(head)
    broken[flip % len(head)] ^= 0x01
    with pytest.raises(VmessError):
        parse_vmess(bytes(broken), USERS, lambda a: False)


def test_a_stale_vmess_timestamp_is_refused():
    head = vmess_request(USER, encode_port_address("127.0.0.1", 80), security=3, option=5,
                         body_key=b"k" * 16, body_iv=b"i" * 16, now=time.time() - 300)
    with pytest.raises(VmessError, match="window"):
        parse_vmess(head, USERS, lambda a: False)


def _pair(security: int, option: int):
    key, iv = os.urandom(16), os.urandom(16)
    body = chacha_key(key) if security == 4 else key
    length_key = None
    if option & 0x10 and security != 5:
        length_key = kdf(key, b"auth_len")[:16]
        length_key = chacha_key(length_key) if security == 4 else length_key
    make = lambda seal: VmessChunks(security, option | 1, body, iv, seal=seal,
                                    length_key=length_key, length_iv=iv)
    return make(True), make(False)


@settings(max_examples=120, deadline=None)
@given(st.sampled_from([3, 4, 5]), st.sampled_from([0, 4, 8, 12, 16, 24, 28]),
       st.lists(st.binary(max_size=40000), max_size=4),
       st.lists(st.integers(min_value=1, max_value=9000), max_size=20))
def test_vmess_chunks_open_whatever_the_read_sizes(security, option, pieces, cuts):
    sealer, opener = _pair(security, option)
    wire = b"".join(sealer.seal(p) for p in pieces)
    out, i = [], 0
    for cut in cuts + [len(wire)]:
        out.append(opener.feed(wire[i:i + cut]))
        i += cut
    assert b"".join(out) == b"".join(pieces)


@settings(max_examples=120, deadline=None)
@given(st.sampled_from([3, 4]), st.sampled_from([4, 12, 16, 28]), st.binary(min_size=1, max_size=500),
       st.integers(min_value=0))
def test_a_flipped_chunk_byte_is_refused(security, option, data, flip):
    sealer, opener = _pair(security, option)
    wire = bytearray(sealer.seal(data))
    wire[flip % len(wire)] ^= 0x20
    # A flipped length (not authenticated without that option) makes the opener wait for a
    # longer chunk: bytes after it complete any length, and then the seal does not hold.
    with pytest.raises(ChunkError):
        opener.feed(bytes(wire) + bytes(70000))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(min_value=1, max_value=500), max_size=10))
def test_ws_reader_on_random_bytes(data, cuts):
    reader, i = WsReader(), 0
    try:
        for cut in cuts + [len(data)]:
            reader.feed(data[i:i + cut])
            i += cut
    except WsError:
        pass


def _client_frame(payload: bytes, opcode: int = 2, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=70000), max_size=4), st.booleans(),
       st.lists(st.integers(min_value=1, max_value=20000), max_size=10))
def test_ws_frames_come_out_whole_at_any_cut(payloads, with_ping, cuts):
    wire = b""
    for p in payloads:
        wire += _client_frame(p)
        if with_ping:
            wire += _client_frame(b"ping", opcode=9)
    reader, out, i = WsReader(), [], 0
    pings = []
    reader.on_ping = pings.append
    for cut in cuts + [len(wire)]:
        out.append(reader.feed(wire[i:i + cut]))
        i += cut
    assert b"".join(out) == b"".join(payloads)
    assert pings == ([b"ping"] * len(payloads) if with_ping else [])


def test_pong_echoes_the_ping():
    assert pong(b"abc") == b"\x8a\x03abc" and pong(b"") == b"\x8a\x00"
    with pytest.raises(WsError):
        pong(b"x" * 126)


def test_ws_close_unmasked_and_writer_frames():
    with pytest.raises(WsClosed):
        WsReader().feed(_client_frame(b"", opcode=8))
    with pytest.raises(WsError, match="not masked"):
        WsReader().feed(b"\x82\x03abc")
    for n in (0, 125, 126, 65535, 65536):
        frame = WsWriter().seal(b"z" * n)
        assert frame[0] == 0x82 and frame.endswith(b"z" * n)
        assert len(frame) == n + (2 if n < 126 else 4 if n < 65536 else 10)


# -- the WebSocket upgrade ---------------------------------------------------------------------

def _accept(raw: bytes, path: str = "/ws", host: str | None = "h.example"):
    import asyncio
    from fastpath.inbounds import ws_transport

    async def run():
        reader = asyncio.StreamReader(limit=64 * 1024)
        reader.feed_data(raw)
        reader.feed_eof()
        writer = RecordingWriter()
        early = await ws_transport.accept(reader, writer, path=path, host=host, tag="t")
        return early, writer
    return asyncio.run(run())


UPGRADE = (b"GET /ws?ed=2048 HTTP/1.1\r\nHost: h.example:443\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n")


def test_the_upgrade_answers_101_and_early_data_comes_back():
    import base64
    early, writer = _accept(UPGRADE + b"\r\n")
    assert early == b"" and writer.out.startswith(b"HTTP/1.1 101")
    data = base64.urlsafe_b64encode(b"\x00first bytes").rstrip(b"=")
    early, writer = _accept(UPGRADE + b"Sec-WebSocket-Protocol: " + data + b"\r\n\r\n")
    assert early == b"\x00first bytes" and b"Sec-WebSocket-Protocol: " + data in writer.out


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_hostile_upgrade_requests_get_an_answer_or_a_close(noise, as_headers):
    raw = (UPGRADE + noise + b"\r\n\r\n") if as_headers else noise
    early, writer = _accept(raw)
    if early is None:
        assert writer.closed
    else:
        assert writer.out.startswith(b"HTTP/1.1 101") and not writer.closed
