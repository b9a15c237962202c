"""Viewer counts with real players: a continuous (TS) stream counts one client per connection,
an HLS stream one per session, and a stream's totals are the sums of its clients' figures.

Three players on one host with one user agent (two ffmpeg, one curl) are three TS clients: a
household's three TVs on one channel are three connections against an account's limit (the
issue's node showed one).  A TS viewer's ``segments_served`` is 0 (a continuous stream has no
segments; m3u-proxy counts only HLS segments), and the stream's ``total_segments_served`` is
the sum of its clients' (the issue's node reported 0 for the stream and 229 for its client).
"""
from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from urllib.parse import urljoin

import pytest

from tests.stream_proxy.conftest import media_node
from tests.stream_proxy.viewers import wait_until

pytestmark = pytest.mark.integration

AGENT = "LivingRoom/1.0"


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    # Two workers: the three connections may land on either; a long stall timeout lets the
    # origin hold still while the totals are compared.
    with media_node(tmp_path_factory.mktemp("counts"), workers=2,
                    media={"stallTimeout": "60s", "clientTimeout": "3s"}) as n:
        yield n


def _players(url: str) -> list[subprocess.Popen]:
    if shutil.which("curl") is None or shutil.which("ffmpeg") is None:
        raise RuntimeError("curl and ffmpeg are needed for the viewer-count test")
    ffmpeg = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-user_agent", AGENT, "-i", url,
              "-c", "copy", "-f", "null", "-"]
    curl = ["curl", "-s", "-o", "/dev/null", "-A", AGENT, url]
    return [subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for cmd in (ffmpeg, ffmpeg, curl)]


def _settled(relay, sid: str) -> dict:
    """``/stats`` once the stream's bytes have stopped moving (two reads 0.5 s apart agree)."""
    def read():
        stats = relay.get("/stats").json()
        return stats, next(s for s in stats["streams"] if s["stream_id"] == sid)["total_bytes_served"]
    _, before = read()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        time.sleep(0.5)
        stats, now = read()
        if now == before:
            return stats
        before = now
    raise AssertionError("the stream's bytes kept moving while its origin held still")


def test_three_ts_players_on_one_host_are_three_clients_and_totals_add_up(relay, origin):
    path = "/household.ts"
    sid = relay.post("/streams", {"url": origin.base + path,
                                  "metadata": {"playlist_uuid": "acct-H"}}).json()["stream_id"]
    players = _players(f"{relay.media_url}/stream/{sid}")
    try:
        wait_until(lambda: relay.get(f"/streams/{sid}").json()["client_count"] == 3, timeout=20,
                   what="three connected viewers")
        listed = relay.get(f"/streams/{sid}").json()
        assert listed["stream"]["client_count"] == 3
        ids = {c["client_id"] for c in listed["clients"]}
        assert len(ids) == 3, listed
        assert {c["ip_address"] for c in listed["clients"]} == {"127.0.0.1"}
        assert {c["user_agent"] for c in listed["clients"]} == {AGENT}
        by_account = relay.get("/streams/by-metadata?field=playlist_uuid&value=acct-H").json()
        assert by_account["total_clients"] == 3
        wait_until(lambda: all(c["bytes_served"] > 50_000 for c in
                               relay.get(f"/streams/{sid}").json()["clients"]),
                   timeout=20, what="every viewer served")

        origin.paused.add(path)
        stats = _settled(relay, sid)
        stream = next(s for s in stats["streams"] if s["stream_id"] == sid)
        mine = [c for c in stats["clients"] if c["stream_id"] == sid]
        assert len(mine) == 3 and stream["client_count"] == 3
        assert stats["total_clients"] == len(stats["clients"])
        assert stream["total_bytes_served"] == sum(c["bytes_served"] for c in mine) > 0
        assert all(c["segments_served"] == 0 for c in mine), mine
        assert stream["total_segments_served"] == sum(c["segments_served"] for c in mine) == 0
        assert stats["total_bytes_served"] == sum(s["total_bytes_served"] for s in stats["streams"])

        # One player leaves: two clients remain, each still its own.
        players[2].terminate()
        wait_until(lambda: relay.get(f"/streams/{sid}").json()["client_count"] == 2, timeout=15,
                   what="the curl viewer gone")
        left = {c["client_id"] for c in relay.get(f"/streams/{sid}").json()["clients"]
                if c["is_connected"]}
        assert len(left) == 2 and left < ids
    finally:
        origin.paused.discard(path)
        for p in players:
            p.kill()
            p.wait(10)
        relay.request("DELETE", f"/streams/{sid}")


def test_hls_counts_one_client_per_session_and_totals_add_up(relay, origin):
    """Two HLS players (one host, two user agents) fetching playlist and segments over several
    requests each are two clients; segments and bytes of the stream are their sums."""
    sid = relay.post("/streams", {"url": origin.base + "/hls/index.m3u8"}).json()["stream_id"]
    playlist_url = f"{relay.media_url}/hls/{sid}/playlist.m3u8"
    fetched = {}
    for agent in ("PlayerA/1", "PlayerB/2"):
        def get(url, agent=agent):
            req = urllib.request.Request(url, headers={"User-Agent": agent})
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.read()
        text = get(playlist_url).decode()
        uris = [u for u in text.splitlines() if u and not u.startswith("#")][:3]
        for u in uris:
            assert get(urljoin(playlist_url, u))[:1] == b"\x47"
        fetched[agent] = len(uris)
    try:
        clients = wait_until(lambda: (lambda cs: cs if len(cs) == 2 and all(
            c["segments_served"] == fetched[c["user_agent"]] for c in cs) else None)(
            [c for c in relay.get(f"/streams/{sid}").json()["clients"]]),
            what="two HLS clients with their segments")
        stats = relay.get("/stats").json()
        stream = next(s for s in stats["streams"] if s["stream_id"] == sid)
        mine = [c for c in stats["clients"] if c["stream_id"] == sid]
        assert {c["client_id"] for c in mine} == {c["client_id"] for c in clients}
        assert stream["total_segments_served"] == sum(c["segments_served"] for c in mine) == 6
        # Playlists are not counted as served bytes, for the stream or its clients alike.
        assert stream["total_bytes_served"] == sum(c["bytes_served"] for c in mine) > 0
    finally:
        relay.request("DELETE", f"/streams/{sid}")
