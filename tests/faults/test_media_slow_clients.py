"""The media port drops clients that trickle their request heads (issue 18, item 7): the head
timeout bounds the whole head, not each read.  A live viewer watching meanwhile keeps getting
bytes, and new requests are answered within 1 s."""
from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from tests.faults.slow_clients import SlowClients
from tests.media.origin import make_media
from tests.media.support import LiveReader, OriginProcess, media_get, media_node, register

HEAD_TIMEOUT = 10.0     # HttpServer's default head_timeout


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("needs ffmpeg and ffprobe")
    return make_media(tmp_path_factory.mktemp("media"))


def test_trickling_heads_are_dropped_and_viewers_unaffected(tmp_path, media_dir):
    with OriginProcess(media_dir) as origin, media_node(tmp_path) as node:
        sid = register(node, origin.base + "/live/stream.ts")
        viewer = LiveReader(node.media_port, f"/stream/{sid}")
        try:
            deadline = time.monotonic() + 15
            while not viewer.body and time.monotonic() < deadline:
                time.sleep(0.1)
            assert viewer.body, "the viewer got no bytes before the trickle"

            def probe():
                t0 = time.monotonic()
                status = media_get(node, "/stream/no-such-stream", timeout=3)
                return time.monotonic() - t0, status.status

            started = time.monotonic()
            report, results = asyncio.run(
                SlowClients(node.media_port, 300, path=f"/stream/{sid}").run(HEAD_TIMEOUT + 4, probe))
            assert report.opened == 300, report
            assert report.still_open == 0, f"{report.still_open} trickling connections still open"
            assert max(report.closed_by_server) <= HEAD_TIMEOUT + 3, max(report.closed_by_server)
            assert results and all(r[0] < 1.0 and r[1] == 404 for r in results), results
            assert not viewer.closed
            assert viewer.max_gap(since=started) < 2.0, viewer.max_gap(since=started)
        finally:
            viewer.close()
