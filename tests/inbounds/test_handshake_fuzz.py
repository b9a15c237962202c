"""The SOCKS5 and HTTP proxy handshakes under hostile bytes: no exception escapes, nothing
hangs, and a connection is opened only for a well-formed request that passed the auth."""
from __future__ import annotations

import asyncio

from hypothesis import given, settings, strategies as st

from fastpath.proxy.credentials import fixed_credentials
from fastpath.proxy.http import HttpProxyHandshake
from fastpath.proxy.socks5 import Socks5Handshake
from fastpath.mesh.paths import split_address
from tests.inbounds.peers import RecordingWriter


class Socks(Socks5Handshake):
    asks_credentials = True

    def __init__(self):
        self.opened = []
        self.check_credentials = fixed_credentials("u", "p")

    async def _connect(self, reader, writer, address, identity):
        split_address(address)                 # well formed, or this raises
        assert identity == "u"
        self.opened.append(address)


class Http(HttpProxyHandshake):
    asks_credentials = True

    def __init__(self):
        self.opened = []
        self.check_credentials = fixed_credentials("u", "p")

    async def _open_and_splice(self, reader, writer, address, identity, *, answer=b"", prefix=b""):
        split_address(address)
        assert identity == "u"
        self.opened.append(address)


def drive(handler, data: bytes) -> RecordingWriter:
    async def main():
        reader = asyncio.StreamReader(limit=64 * 1024)
        reader.feed_data(data)
        reader.feed_eof()
        writer = RecordingWriter()
        await asyncio.wait_for(handler._handle(reader, writer), 5)
        return writer
    return asyncio.run(main())


GOOD_SOCKS = b"\x05\x01\x02" + b"\x01\x01u\x01p" + b"\x05\x01\x00\x03\x09localhost\x00\x50"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_socks5_random_bytes(data):
    handler = Socks()
    drive(handler, data)
    assert not handler.opened or data.startswith(b"\x05")


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(GOOD_SOCKS)), st.binary(max_size=40))
def test_socks5_truncated_and_mangled_requests(cut, tail):
    handler = Socks()
    drive(handler, GOOD_SOCKS[:cut] + tail)
    if cut < len(GOOD_SOCKS):
        # Only a request that reached its last byte may open; what it opens is well formed.
        assert all(split_address(a) for a in handler.opened)


def test_socks5_good_request_opens_once():
    handler = Socks()
    drive(handler, GOOD_SOCKS)
    assert handler.opened == ["localhost:80"]


HEAD = st.lists(st.sampled_from([b"CONNECT ", b"GET ", b"http://", b"h:1", b" HTTP/1.1", b"\r\n",
                                 b"Proxy-Authorization: Basic dTpw", b"Host: x", b":", b"\xff",
                                 b"Basic ", b"=="]), max_size=30).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(HEAD, st.binary(max_size=300)).map(lambda b: b + b"\r\n\r\n"))
def test_http_proxy_random_heads(head):
    handler = Http()
    writer = drive(handler, head)
    if not handler.opened:
        assert writer.out.startswith(b"HTTP/1.1 4") or writer.out == b""


def test_http_proxy_good_requests_open():
    auth = b"Proxy-Authorization: Basic dTpw\r\n"
    handler = Http()
    drive(handler, b"CONNECT example.test:443 HTTP/1.1\r\n" + auth + b"\r\n")
    drive(handler, b"GET http://example.test/x HTTP/1.1\r\n" + auth + b"\r\n")
    assert handler.opened == ["example.test:443", "example.test:80"]
