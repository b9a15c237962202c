"""The compiled pieces on their own: TS chunker, fan-out ring (over real socket pairs) and the
segment cache."""
from __future__ import annotations

import asyncio
import socket

import pytest
from fastpath.media.fanout_ring import BLOCKED, DEAD, LIVE, FanoutRing
from fastpath.media.segment_cache import SegmentCache
from fastpath.media.ts_packets import FLAG_PAT, FLAG_SWITCH, TsChunker
from hypothesis import given, settings
from hypothesis import strategies as st


class Ts(bytes):
    """Test media bytes with a short repr (hypothesis prints its inputs on failure)."""

    def __repr__(self):
        return f"<{len(self)} bytes of TS>"


@pytest.fixture(scope="module")
def ts_bytes(media_dir):
    return Ts((media_dir / "live.ts").read_bytes()[:188 * 1200])


def pid(packet: bytes) -> int:
    return ((packet[1] & 0x1F) << 8) | packet[2]


def aligned(chunk: bytes) -> bool:
    return len(chunk) % 188 == 0 and all(chunk[k] == 0x47 for k in range(0, len(chunk), 188))


def chunks_of(chunker, data, cuts):
    out = []
    pos = 0
    for cut in sorted(cuts) + [len(data)]:
        out += chunker.feed(data[pos:cut])
        pos = cut
    out += chunker.finish()
    return out


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 188 * 1200), max_size=30))
def test_chunker_outputs_whole_packets_and_loses_nothing(ts_bytes, cuts):
    chunker = TsChunker(32768)
    out = chunks_of(chunker, ts_bytes, [c for c in cuts if c < len(ts_bytes)])
    assert chunker.mode == "ts"
    assert b"".join(c for c, _ in out) == ts_bytes
    for chunk, flags in out:
        assert aligned(chunk)
        if flags & FLAG_PAT:
            assert pid(chunk) == 0, "a PAT chunk starts with the PAT"


@settings(max_examples=40, deadline=None)
@given(junk=st.binary(min_size=1, max_size=500), start=st.integers(1, 187 * 50))
def test_chunker_resyncs_after_a_switch_mid_packet(ts_bytes, junk, start):
    chunker = TsChunker(32768)
    chunker.feed(ts_bytes[:50_000])
    chunker.flush()                       # what the relay does before a switch
    chunker.reset(strict=False)
    out = chunker.feed(junk + ts_bytes[start:start + 100_000]) + chunker.finish()
    assert out and out[0][1] & FLAG_SWITCH
    for chunk, _ in out:
        assert aligned(chunk)


def test_strict_mode_resumes_on_a_pat(ts_bytes):
    chunker = TsChunker(32768)
    chunker.feed(ts_bytes[:50_000])
    chunker.flush()
    chunker.reset(strict=True)
    out = chunker.feed(ts_bytes[188 * 7 + 5:]) + chunker.finish()
    assert pid(out[0][0]) == 0, "the first packet after a strict switch is a PAT"


def test_a_playlist_is_recognised():
    chunker = TsChunker(32768)
    chunker.feed(b"#EXTM3U\n#EXT-X-VERSION:3\n")
    assert chunker.mode == "playlist"


def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def drain(sock) -> bytes:
    out = b""
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return out
        if not data:
            return out
        out += data


def test_ring_serves_every_viewer_the_same_bytes_and_skips_a_slow_one(ts_bytes):
    ring = FanoutRing(64, 256 * 1024, None, "skip", 0.0)
    ring.set_aligned(True)
    chunks = [c for c in chunks_of(TsChunker(8 * 188), ts_bytes, [])]
    fast = [pair() for _ in range(3)]
    slow_a, slow_b = pair()
    slow_a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ids = [ring.add_client(a.fileno(), -1, False)[0] for a, _ in fast]
    slow_id, _ = ring.add_client(slow_a.fileno(), -1, False)
    got = [b""] * 3
    blocked = set()
    for chunk, flags in chunks:
        events = ring.push(chunk, flags) or []
        for cid, state in events:
            assert cid == slow_id and state in (BLOCKED, DEAD)
            blocked.add(cid)
        for i, (_, b) in enumerate(fast):
            got[i] += drain(b)
    assert all(g == b"".join(c for c, _ in chunks) for g in got)
    assert slow_id in blocked
    # The slow viewer now reads everything it has; it gets whole packets and is skipped ahead.
    late = drain(slow_b)
    assert ring.resume(slow_id) in (LIVE, BLOCKED)
    late += drain(slow_b)
    assert aligned(late) and ring.skips >= 1
    assert all(ring.client_info(i)["state"] == "live" for i in ids)
    for a, b in [*fast, (slow_a, slow_b)]:
        a.close()
        b.close()


def dechunk(data: bytes) -> tuple[list[bytes], bytes]:
    """Strict HTTP/1.1 chunked decoding: (whole chunks, the undecoded rest); a framing error
    fails the test."""
    chunks, pos = [], 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return chunks, data[pos:]
        size_text = data[pos:end]
        assert size_text and all(c in b"0123456789abcdef" for c in size_text), data[pos:pos + 20]
        size = int(size_text, 16)
        if len(data) < end + 2 + size + 2:
            return chunks, data[pos:]
        assert data[end + 2 + size:end + 4 + size] == b"\r\n", "chunk not followed by CRLF"
        chunks.append(data[end + 2:end + 2 + size])
        pos = end + 4 + size


def test_chunked_viewers_get_each_chunk_framed_and_plain_ones_raw_bytes(ts_bytes):
    ring = FanoutRing(64, 1 << 22, None, "skip", 0.0)
    ring.set_aligned(True)
    chunks = [c for c, _ in chunks_of(TsChunker(8 * 188), ts_bytes, [])][:200]
    (pa, pb), (ca, cb) = pair(), pair()
    plain, _ = ring.add_client(pa.fileno(), -1, False)
    framed, _ = ring.add_client(ca.fileno(), -1, False, True)
    raw, wire = b"", b""
    for chunk in chunks:
        assert not ring.push(chunk)
        raw += drain(pb)
        wire += drain(cb)
    assert raw == b"".join(chunks)
    got, rest = dechunk(wire)
    assert got == chunks and rest == b""
    # Served bytes are the media, not the framing.
    assert ring.clients_sent() == {plain: len(raw), framed: len(raw)}
    assert ring.between_chunks(framed)
    for a, b in ((pa, pb), (ca, cb)):
        a.close()
        b.close()


def test_a_slow_chunked_viewer_is_skipped_by_whole_chunks(ts_bytes):
    """Partial sends resume inside the framing; a skip finishes the HTTP chunk it is in, so
    the decoded stream is whole ring chunks (whole TS packets) with no framing error."""
    ring = FanoutRing(32, 96 * 1024, None, "skip", 0.0)
    ring.set_aligned(True)
    chunks = [c for c, _ in chunks_of(TsChunker(8 * 188), ts_bytes, [])]
    a, b = pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    cid, _ = ring.add_client(a.fileno(), -1, False, True)
    wire = b""
    for i, chunk in enumerate(chunks):
        ring.push(chunk)
        if i % 40 == 39:                       # the player reads now and then
            wire += drain(b)
            ring.resume(cid)
    for _ in range(50):
        wire += drain(b)
        if ring.resume(cid) == LIVE and ring.between_chunks(cid):
            break
    wire += drain(b)
    got, rest = dechunk(wire)
    assert rest == b"" and ring.skips >= 1
    pushed = set(chunks)
    assert got and all(c in pushed for c in got)
    assert all(aligned(c) for c in got)
    assert ring.clients_sent()[cid] == sum(len(c) for c in got)
    a.close()
    b.close()


def test_ring_drop_policy_kills_a_viewer_that_falls_behind(ts_bytes):
    ring = FanoutRing(16, 64 * 1024, None, "drop", 0.0)
    ring.set_aligned(True)
    a, b = pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    cid, _ = ring.add_client(a.fileno(), -1, False)
    states = set()
    for chunk, flags in chunks_of(TsChunker(8 * 188), ts_bytes, []):
        for _, state in ring.push(chunk, flags) or []:
            states.add(state)
    assert ring.resume(cid) == DEAD and ring.drops == 1
    ring.remove_client(cid)
    a.close()
    b.close()


def test_ring_viewer_with_a_closed_socket_is_dead():
    ring = FanoutRing(16, 1 << 20, None, "skip", 0.0)
    a, b = pair()
    cid, state = ring.add_client(a.fileno(), -1, False)
    assert state == LIVE
    b.close()
    events = []
    for _ in range(4):
        events += ring.push(b"\x47" + b"\x00" * 187) or []
    assert (cid, DEAD) in events
    a.close()


def test_segment_cache_coalesces_and_evicts_by_bytes():
    async def main():
        cache = SegmentCache(1000, 600)
        entry, fut = cache.claim("a", 0.0)
        assert entry is None and fut is None          # the first caller fetches
        e2, waiting = cache.claim("a", 0.0)
        assert e2 is None and waiting is not None      # the second waits for that fetch
        cache.complete("a", b"x" * 400, "video/mp2t", 10.0, 0.0)
        assert (await waiting).data == b"x" * 400
        cache.put("b", b"y" * 400, None, 10.0, 0.0)
        assert cache.claim("a", 1.0)[0].meta == "video/mp2t"   # a hit makes "a" recent
        cache.put("c", b"z" * 400, None, 10.0, 0.0)   # 1200 > 1000: the LRU entry ("b") goes
        assert "b" not in cache and "a" in cache and "c" in cache
        cache.put("big", b"w" * 700, None, 10.0, 0.0)  # larger than max_entry: not kept
        assert "big" not in cache and cache.held_bytes == 800
        assert cache.get("a", 11.0) is None            # expired
        _, _ = cache.claim("f", 0.0)
        _, w = cache.claim("f", 0.0)
        cache.fail("f", ValueError("upstream down"))
        with pytest.raises(ValueError):
            await w
        assert cache.pending("f") is None
        assert (cache.hits, cache.coalesced) == (1, 2)
    asyncio.run(main())
