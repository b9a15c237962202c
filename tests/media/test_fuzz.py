"""Property tests of the data plane's wire parsers: the HTTP head parser, the playlist
rewriter and the signed references."""
from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastpath.media.http_io import BadRequest, parse_head
from fastpath.media.playlist import rewrite_playlist
from fastpath.media.refs import BadRef, RefSigner

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
                 min_size=1, max_size=20)


@FUZZ
@given(st.binary(max_size=4096))
def test_head_parser_raises_only_bad_request_on_bytes(data):
    try:
        req = parse_head(data)
    except BadRequest as exc:
        assert 400 <= exc.status < 600 and exc.message
    else:
        assert req.method and req.path is not None


@FUZZ
@given(st.sampled_from(["GET", "HEAD", "POST", "OPTIONS"]),
       st.lists(st.text(alphabet="/abc%20?=&.-~", max_size=12), max_size=5),
       st.lists(st.tuples(_token, st.text(max_size=40)), max_size=20),
       st.sampled_from(["\r\n", "\n"]))
def test_head_parser_on_near_valid_requests(method, path_parts, headers, eol):
    target = "/" + "/".join(path_parts)
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers]
    raw = eol.join(lines).encode("utf-8", "replace")
    try:
        req = parse_head(raw)
    except BadRequest as exc:
        assert exc.status in (400, 414, 431)
        return
    assert req.method == method and req.target == target
    for k, v in headers:
        if "\r" not in v and "\n" not in v:
            assert k.lower() in req.headers


_uri = st.one_of(st.text(alphabet="abcdefghij0123456789./_-?=&%", min_size=1, max_size=30),
                 st.sampled_from(["http://o.example/a.ts", "https://x/y/z.m3u8?t=1", "file:///etc/passwd",
                                  "../../up.ts", "//other.host/seg.ts", "data:text/plain,x"]))
_tag = st.one_of(
    st.builds(lambda d: f"#EXTINF:{d},", st.floats(0, 20, allow_nan=False)),
    st.sampled_from(["#EXT-X-TARGETDURATION:4", "#EXT-X-MEDIA-SEQUENCE:7", "#EXT-X-ENDLIST",
                     "#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"a,b\"", "#EXT-X-VERSION:3", "#", "#EXT"]),
    st.builds(lambda t, u: f'{t}:METHOD=AES-128,URI="{u}",IV=0x1',
              st.sampled_from(["#EXT-X-KEY", "#EXT-X-MAP", "#EXT-X-MEDIA", "#EXT-X-SESSION-KEY"]),
              _uri))
_line = st.one_of(_tag, _uri, st.just(""), st.text(max_size=30))


@FUZZ
@given(st.lists(_line, max_size=40), st.sampled_from(["\n", "\r\n", "\r"]), st.booleans())
def test_rewriter_changes_uris_only(lines, eol, bom):
    text = ("\ufeff" if bom else "") + "#EXTM3U" + eol + eol.join(lines) + eol
    made = []

    def make_ref(kind, url, slot):
        assert url.startswith(("http://", "https://"))
        made.append(url)
        return f"REF{len(made)}"

    out, info = rewrite_playlist(text, "http://origin.example/live/index.m3u8", make_ref)
    # Without a ref maker the text comes back byte for byte.
    assert rewrite_playlist(text, "http://origin.example/live/index.m3u8")[0] == text
    # Same line structure; every changed line differs only where a URI was.
    old_lines = re.split(r"(\r\n|\r|\n)", text)
    new_lines = re.split(r"(\r\n|\r|\n)", out)
    assert len(old_lines) == len(new_lines)
    changed = 0
    for a, b in zip(old_lines, new_lines, strict=True):
        if a != b:
            changed += 1
            assert "REF" in b
            assert not b.startswith("#") or b.split(":", 1)[0] == a.split(":", 1)[0]
    assert changed <= len(made)
    assert "file:" not in "".join(made)
    assert set(info.segments) <= set(made) and set(info.variants) <= set(made)


@FUZZ
@given(st.text(max_size=200))
def test_rewriter_never_raises(text):
    out, _info = rewrite_playlist(text, "http://o/x.m3u8", lambda k, u, s: "R")
    assert isinstance(out, str)


_signer = RefSigner(b"k" * 32)


@FUZZ
@given(st.sampled_from(["http://a/b.ts", "https://h:8443/p/q.m3u8?x=1&y=%20"]),
       st.text(alphabet="vmi0123456789@", max_size=8), _token, st.sampled_from(["p", "s"]))
def test_refs_round_trip_and_bind_stream_and_kind(url, slot, stream_id, kind):
    ref = _signer.make(stream_id, kind, url, slot)
    assert _signer.open(stream_id, kind, ref) == (url, slot)
    for other_stream, other_kind in ((stream_id + "x", kind), (stream_id, "q")):
        try:
            _signer.open(other_stream, other_kind, ref)
        except BadRef:
            pass
        else:
            raise AssertionError("a reference opened for another stream or kind")


@FUZZ
@given(st.text(max_size=300))
def test_refs_reject_anything_not_made_here(ref):
    try:
        _signer.open("s", "s", ref)
    except BadRef:
        return
    raise AssertionError(f"accepted {ref!r}")


@FUZZ
@given(st.binary(min_size=1, max_size=64), st.integers(0, 60))
def test_refs_reject_flipped_bits(payload, pos):
    ref = _signer.make("s", "s", "http://a/" + payload.hex())
    pos = pos % len(ref)
    flipped = ref[:pos] + ("A" if ref[pos] != "A" else "B") + ref[pos + 1:]
    try:
        url, _ = _signer.open("s", "s", flipped)
    except BadRef:
        return
    # base64 padding bits can absorb a change; the decoded URL must then be the same.
    assert url == "http://a/" + payload.hex()
