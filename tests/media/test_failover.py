"""Failover with real origin processes: the primary is killed mid-stream, viewers stay connected
and move to the backup within 3 s, a webhook says so; manual switch; return to the primary."""
from __future__ import annotations

import time

import pytest
from fastpath.media.ts_packets import scan_packets

from fastpath.shm import KIND_MEDIA_STREAM
from fastpath.store import StateStore, media_store
from tests.media.support import (
    LiveReader,
    OriginProcess,
    add_webhook,
    command,
    media_get,
    media_node,
    register,
)
from tests.media.test_live import slots, wait_until


@pytest.fixture
def origins(media_dir):
    """A primary and a backup origin, killed after the test (a test may kill one itself)."""
    primary = OriginProcess(media_dir).start()
    backup = OriginProcess(media_dir).start()
    try:
        yield primary, backup
    finally:
        primary.kill()
        backup.kill()


def stream_slot(node, sid):
    found = [s for s in slots(node, KIND_MEDIA_STREAM) if s["key"] == sid]
    return found[0] if found else None


def test_killing_the_primary_moves_every_viewer_to_the_backup(tmp_path, origins, hooks):
    primary, backup = origins
    with media_node(tmp_path, {"returnToPrimary": False}) as node:
        add_webhook(node, hooks.url, ["failover_triggered", "stream_started"])
        sid = register(node, primary.base + "/live/stream.ts",
                       failover_urls=[backup.base + "/live/stream.ts"])
        viewers = [LiveReader(node.media_port, f"/stream/{sid}") for _ in range(5)]
        wait_until(lambda: all(len(v.body) > 100_000 for v in viewers))
        hooks.wait_for("stream_started")
        assert backup.stats()["live_connections"] == 0
        killed_at = time.monotonic()
        primary.kill()
        wait_until(lambda: backup.stats()["live_connections"] == 1, 5)
        time.sleep(2.5)
        for v in viewers:
            assert not v.closed, "viewers stay connected through the switch"
            gap = v.max_gap(killed_at - 0.5)
            assert gap < 3.0, f"gap of {gap:.2f}s"
            print(f"failover gap {gap:.3f}s")
            assert any(t > killed_at + 1.0 for t, _ in v.times), "bytes keep coming after the switch"
            assert scan_packets(bytes(v.body))[1] > 1000
            # HTTP/1.1 viewers get a chunked body; its framing survives the switch.
            assert v.chunked and v.framing_error is None
        event = hooks.wait_for("failover_triggered")[0]
        assert event["stream_id"] == sid
        assert event["data"]["to_url"] == backup.base + "/live/stream.ts"
        # m3u-proxy's keys: index into failover_urls, old/new URL, attempt, viewers.
        assert event["data"]["new_url"] == backup.base + "/live/stream.ts"
        assert event["data"]["old_url"] == primary.base + "/live/stream.ts"
        assert event["data"]["failover_index"] == 0 and event["data"]["url_index"] == 1
        assert event["data"]["attempt_number"] == 1 and event["data"]["client_count"] == 5
        assert set(event) == {"event_id", "event_type", "stream_id", "timestamp", "data"}
        st = stream_slot(node, sid)
        assert st["extra"][0] == 1 and st["extra"][1] >= 1 and st["extra"][2] > 0
        assert st["text_b"] == backup.base + "/live/stream.ts"
        assert st["rx_packets"] >= 1
        stored = media_store.get_stream(StateStore(node.data_dir / "state.db"), sid)
        assert stored.failover_index == 1 and stored.failover_attempts >= 1
        for v in viewers:
            v.close()


def test_manual_failover_and_return_to_the_recovered_primary(tmp_path, origins, hooks):
    primary, backup = origins
    with media_node(tmp_path, {"primaryRecheck": "1s"}) as node:
        add_webhook(node, hooks.url, ["failover_triggered"])
        sid = register(node, primary.base + "/live/stream.ts",
                       failover_urls=[backup.base + "/live/stream.ts"], strict_live_ts=True)
        viewer = LiveReader(node.media_port, f"/stream/{sid}")
        wait_until(lambda: len(viewer.body) > 50_000)
        # The control face writes the index, then tells the workers.
        media_store.record_failover(StateStore(node.data_dir / "state.db"), sid, 1)
        result = command(node, "media_failover", {"stream_id": sid, "index": 1})
        assert result == [{"active_clients": 1}]
        wait_until(lambda: backup.stats()["live_connections"] == 1, 5)
        assert hooks.wait_for("failover_triggered")[0]["data"]["reason"] == "manual failover"
        # On the backup, the primary is probed and taken back (returnToPrimary, 1 s here).
        connections = primary.stats()["live_connections"]
        wait_until(lambda: primary.stats()["live_connections"] >= connections + 2, 8)
        wait_until(lambda: stream_slot(node, sid)["extra"][0] == 0, 5)
        assert not viewer.closed
        size = len(viewer.body)
        wait_until(lambda: len(viewer.body) > size + 50_000, 5)
        viewer.close()


def test_hls_playlist_fails_over_to_the_backup(tmp_path, origins, hooks):
    primary, backup = origins
    with media_node(tmp_path) as node:
        add_webhook(node, hooks.url, ["failover_triggered"])
        sid = register(node, primary.base + "/hls/master.m3u8",
                       failover_urls=[backup.base + "/hls/master.m3u8"])
        master = media_get(node, f"/hls/{sid}/playlist.m3u8").text
        variant = next(u for u in master.splitlines() if u.startswith("playlist.m3u8"))
        assert media_get(node, f"/hls/{sid}/{variant}").status == 200
        primary.kill()
        time.sleep(1.2)       # the cached media playlist expires (target duration 1 s)
        # The viewer's variant reference names the primary; it is served from the backup.
        r = media_get(node, f"/hls/{sid}/{variant}")
        assert r.status == 200, r.body
        seg = next(u for u in r.text.splitlines() if u.startswith("segment"))
        assert media_get(node, f"/hls/{sid}/{seg}").status == 200
        assert backup.stats()["requests"].get("/hls/playlist.m3u8", 0) >= 1
        data = hooks.wait_for("failover_triggered")[0]["data"]
        assert data["failover_index"] == 0 and data["url_index"] == 1


def test_a_stalled_primary_is_left_within_the_stall_timeout(tmp_path, origins):
    primary, backup = origins
    with media_node(tmp_path, {"returnToPrimary": False, "stallTimeout": "1s"}) as node:
        sid = register(node, primary.base + "/live/stream.ts?stall=2",
                       failover_urls=[backup.base + "/live/stream.ts"])
        viewer = LiveReader(node.media_port, f"/stream/{sid}")
        wait_until(lambda: backup.stats()["live_connections"] == 1, 8)
        time.sleep(1.5)
        assert not viewer.closed
        first = viewer.times[0][0]
        gap = viewer.max_gap(first)
        assert gap < 3.0, f"gap of {gap:.2f}s"
        assert primary.stats()["live_connections"] == 1
        viewer.close()


@pytest.mark.parametrize("sticky", [True, False])
def test_sticky_sessions_keep_the_redirect_target(tmp_path, media_dir, sticky):
    with OriginProcess(media_dir) as origin, media_node(tmp_path) as node:
        sid = register(node, origin.base + "/redirect/stream.ts", sticky=sticky)
        viewer = LiveReader(node.media_port, f"/stream/{sid}")
        wait_until(lambda: len(viewer.body) > 20_000)
        # Reconnect the upstream (a switch to the URL it is on).
        assert command(node, "media_failover", {"stream_id": sid, "index": 0}) == [{"active_clients": 1}]
        wait_until(lambda: origin.stats()["live_connections"] == 2, 5)
        requests = origin.stats()["requests"]
        # Sticky: the second connection went straight to the final URL, not through the redirect.
        assert requests["/redirect/stream.ts"] == (1 if sticky else 2)
        assert not viewer.closed
        viewer.close()


# -- every URL failed (issue 13) ------------------------------------------------------------------
def _raw_get(port: int, path: str, timeout: float = 20) -> tuple[bytes, float]:
    """GET ``path``; everything the node sent until it closed, and how long that took."""
    import socket
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.settimeout(timeout)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = b""
        while True:
            data = s.recv(65536)
            if not data:
                break
            got += data
    return got, time.monotonic() - started


class SilentOrigin:
    """Accepts TCP connections and never answers (a hung origin)."""

    def __init__(self):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def _warning_for(node, sid) -> str:
    lines = [line for line in node.log().splitlines()
             if "WARNING" in line and f"stream {sid}: every upstream URL failed" in line]
    assert len(lines) == 1, node.log()[-3000:]
    return lines[0]


def test_a_stream_whose_every_url_is_refused_answers_503_before_any_byte(tmp_path):
    """Nothing listens on either URL: the viewer gets a 503 naming the failure (not a 200 and
    then silence), at once; one WARNING names the stream and each URL's error."""
    from tests.support.node import free_tcp_port
    dead = [f"http://127.0.0.1:{free_tcp_port()}/live/a.ts", f"http://127.0.0.1:{free_tcp_port()}/live/b.ts"]
    with media_node(tmp_path) as node:
        sid = register(node, dead[0], failover_urls=[dead[1]])
        got, elapsed = _raw_get(node.media_port, f"/stream/{sid}")
        assert got.startswith(b"HTTP/1.1 503 "), got[:200]
        assert b"every upstream URL failed" in got and b"200 OK" not in got
        assert elapsed < 3, elapsed
        wait_until(lambda: "every upstream URL failed" in node.log(), 5)
        line = _warning_for(node, sid)
        for url in dead:
            assert f"{url}: connect: " in line, line


def test_hung_origins_are_answered_within_the_timeouts(tmp_path):
    """Both origins accept and never answer: each attempt ends at ``connectTimeout`` (1 s here,
    to keep the test short), so the viewer's 503 comes after about 2 s, never a silent 200."""
    a, b = SilentOrigin(), SilentOrigin()
    try:
        with media_node(tmp_path, {"connectTimeout": "1s", "stallTimeout": "1s"}) as node:
            urls = [f"http://127.0.0.1:{a.port}/x.ts", f"http://127.0.0.1:{b.port}/y.ts"]
            sid = register(node, urls[0], failover_urls=[urls[1]])
            got, elapsed = _raw_get(node.media_port, f"/stream/{sid}")
            assert got.startswith(b"HTTP/1.1 503 "), got[:200]
            assert 1.5 < elapsed < 2 * 1 + 2.5, elapsed
            wait_until(lambda: "every upstream URL failed" in node.log(), 5)
            line = _warning_for(node, sid)
            assert all(u in line for u in urls), line
    finally:
        a.close()
        b.close()


def test_viewers_of_a_stream_whose_origins_all_die_are_closed(tmp_path, origins):
    """Watching, then both origins die: the viewers' connections end (EOF) within the time the
    node needs to try each URL once, instead of staying open with no bytes; a viewer that comes
    while the stream is down gets a 503; one WARNING for the outage."""
    primary, backup = origins
    with media_node(tmp_path, {"returnToPrimary": False, "connectTimeout": "1s"}) as node:
        sid = register(node, primary.base + "/live/stream.ts",
                       failover_urls=[backup.base + "/live/stream.ts"])
        viewers = [LiveReader(node.media_port, f"/stream/{sid}") for _ in range(3)]
        wait_until(lambda: all(len(v.body) > 50_000 for v in viewers), 15)
        assert all(v.head.startswith(b"HTTP/1.1 200") for v in viewers)
        killed_at = time.monotonic()
        primary.kill()
        backup.kill()
        wait_until(lambda: all(v.closed for v in viewers), 10)
        closed_after = time.monotonic() - killed_at
        assert closed_after < 1 + 1 + 2 + 3, closed_after   # stall 1 s + 2 refused connects
        got, _ = _raw_get(node.media_port, f"/stream/{sid}")
        assert got.startswith(b"HTTP/1.1 503 "), got[:200]
        line = _warning_for(node, sid)
        assert primary.base in line and backup.base in line and "3 viewer(s)" in line, line
        for v in viewers:
            v.close()


def test_a_parked_viewer_gets_the_stream_when_it_starts(tmp_path, media_dir):
    """The head waits for the first bytes: a viewer that came first still gets a 200 and the
    stream when the origin answers (a slow origin is not a failure)."""
    with OriginProcess(media_dir) as origin, media_node(tmp_path) as node:
        sid = register(node, origin.base + "/live/stream.ts")
        viewer = LiveReader(node.media_port, f"/stream/{sid}")
        wait_until(lambda: len(viewer.body) > 50_000, 15)
        viewer.close()
        assert viewer.head.startswith(b"HTTP/1.1 200")
        assert scan_packets(bytes(viewer.body))[1] > 100
