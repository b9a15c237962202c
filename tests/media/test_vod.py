"""VOD: HEAD answered from what is known (one upstream request for many HEADs), and a body the
origin breaks off mid-way completed with a Range request to the next URL."""
from __future__ import annotations

import concurrent.futures

from tests.media.support import media_node, register
from tests.support.node import http


def film_requests(origin) -> int:
    return origin.stats()["requests"].get("/movie/film.ts", 0)


def test_head_goes_upstream_once(tmp_path, media_dir, origin):
    size = (media_dir / "live.ts").stat().st_size
    with media_node(tmp_path) as node:
        sid = register(node, origin.base + "/movie/film.ts")
        url = f"{node.media_base}/stream/{sid}"
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: http("HEAD", url), range(8)))
        answers += [http("HEAD", url) for _ in range(5)]
        for r in answers:
            assert r.status == 200 and r.body == b""
            assert int(r.headers["Content-Length"]) == size
            assert r.headers["Accept-Ranges"] == "bytes" and r.headers["Content-Type"]
        assert film_requests(origin) == 1, "HEADs arriving together share one upstream request"
        # A GET refreshes what is known; a ranged HEAD still asks upstream.
        full = http("GET", url)
        assert len(full.body) == size
        assert full.headers["Content-Type"] == answers[0].headers["Content-Type"]
        assert http("HEAD", url).status == 200 and film_requests(origin) == 2
        r = http("HEAD", url, headers={"Range": "bytes=0-99"})
        assert r.status == 206 and film_requests(origin) == 3


def test_body_broken_off_mid_way_is_completed_from_the_backup(tmp_path, media_dir, origin, backup):
    film = (media_dir / "live.ts").read_bytes()
    with media_node(tmp_path) as node:
        sid = register(node, origin.base + "/movie/film.ts?cut=300000",
                       failover_urls=[backup.base + "/movie/film.ts"])
        r = http("GET", f"{node.media_base}/stream/{sid}", timeout=20)
        assert r.status == 200 and len(r.body) == len(film) and r.body == film
        assert film_requests(backup) == 1      # only the rest, asked for with a Range


def test_body_broken_off_is_resumed_from_the_same_url(tmp_path, media_dir, origin):
    film = (media_dir / "live.ts").read_bytes()
    with media_node(tmp_path) as node:
        sid = register(node, origin.base + "/movie/film.ts?cut=200000")
        r = http("GET", f"{node.media_base}/stream/{sid}", timeout=20)
        assert r.status == 200 and r.body == film
        assert film_requests(origin) == 2
