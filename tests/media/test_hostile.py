"""Hostile and malformed requests on the data-plane port of a real node: a clear 4xx and a
closed connection, never a 500, and the node keeps serving."""
from __future__ import annotations

import json
import socket

import pytest

from tests.media.support import OriginProcess, media_get, media_node, register


@pytest.fixture(scope="module")
def node(tmp_path_factory, media_dir):
    with OriginProcess(media_dir) as origin, \
            media_node(tmp_path_factory.mktemp("node")) as n:
        n.sid = register(n, origin.base + "/live/stream.ts")
        n.hls = register(n, origin.base + "/hls/playlist.m3u8")
        yield n


def exchange(node, raw: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", node.media_port), timeout=timeout) as s:
        s.sendall(raw)
        out = b""
        while True:
            try:
                data = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                break
            out += data
        return out


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


@pytest.mark.parametrize("raw,status", [
    (b"\x00\x01\x02\xff\r\n\r\n", 400),
    (b"GET /stream/x HTTP/2.0\r\n\r\n", 505),
    (b"GET /stream/x FTP/1.0\r\n\r\n", 400),
    (b"GET  /stream/x HTTP/1.1\r\n\r\n", 400),
    (b"G(T /stream/x HTTP/1.1\r\n\r\n", 400),
    (b"GET stream HTTP/1.1\r\n\r\n", 400),
    (b"GET /a\x7fb HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 150 + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
    (b"POST /stream/x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 413),
    (b"GET /stream/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 413),
    (b"DELETE /stream/x HTTP/1.1\r\nConnection: close\r\n\r\n", 405),
])
def test_malformed_requests_get_a_clear_4xx(node, raw, status):
    response = exchange(node, raw)
    assert status_of(response) == status, response[:200]
    assert body_of(response)["message"]


def test_paths_that_are_not_streams(node):
    for path in (f"/stream/{node.sid}/../../etc/passwd", "/stream/%2e%2e%2fetc%2fpasswd",
                 f"/hls/{node.hls}/../playlist.m3u8", f"/hls/{node.hls}/segment.exe",
                 "/stream/" + "a" * 500, f"/hls/{node.sid}/playlist.m3u8"):
        r = media_get(node, path)
        assert r.status in (400, 404), (path, r.status)


def test_segment_refs_cannot_make_the_node_an_open_proxy(node):
    for ref in ("http://127.0.0.1:1/", "file:///etc/passwd", "a.b", "....", "x" * 9000,
                "Cmh0dHA6Ly8xMjcuMC4wLjE.AAAAAAAAAAAAAAAAAAAAAA"):
        r = media_get(node, f"/hls/{node.hls}/segment.ts?r={ref}")
        assert r.status in (403, 414, 400), (ref[:20], r.status)


def test_absolute_form_and_pipelined_requests(node):
    raw = (f"GET http://elsewhere/hls/{node.hls}/nothing HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode()
    response = exchange(node, raw)
    assert response.startswith(b"HTTP/1.1 404")
    assert b"HTTP/1.1 200 OK" in response and b'"status": "healthy"' in response


def test_a_viewer_that_sends_garbage_after_its_request_is_still_served(node):
    with socket.create_connection(("127.0.0.1", node.media_port), timeout=5) as s:
        s.sendall(f"GET /stream/{node.sid} HTTP/1.1\r\n\r\n".encode() + b"\xff" * 100_000)
        data = b""
        while len(data) < 100_000:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and len(data) >= 100_000


def test_the_node_still_serves_after_all_that(node):
    assert media_get(node, "/health").json()["status"] == "healthy"
    r = media_get(node, f"/hls/{node.hls}/playlist.m3u8")
    assert r.status == 200


def test_a_full_counter_shard_answers_503_not_500(tmp_path, media_dir):
    node = media_node(tmp_path)
    node.config["counters"]["slotsPerShard"] = 64       # room for only a few dozen viewers
    with OriginProcess(media_dir) as origin, node:
        sid = register(node, origin.base + "/hls/playlist.m3u8")
        statuses = [media_get(node, f"/hls/{sid}/playlist.m3u8",
                              headers={"User-Agent": f"viewer-{i}"}).status for i in range(80)]
        assert statuses[0] == 200 and 503 in statuses
        assert set(statuses) == {200, 503}
        assert media_get(node, "/health").status == 200
