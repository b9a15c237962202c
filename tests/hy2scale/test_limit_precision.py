"""The traffic-limit bound through the HY2 SCALE face: a user created there with
``traffic_limit`` L is cut with ``traffic_used`` (as the face reports it) between L and
L + 256 KiB, upload and download each alone, and a raised limit lets it back in.  Same node
and helpers as tests/hy2/test_limit_precision.py, the face's own user path and view."""
from __future__ import annotations

import time

import pytest

from fastpath.worker.event_loop import run
from tests.hy2.test_limit_precision import (BOUND, download_until_cut, peers,  # noqa: F401
                                            refused, upload_until_cut, wait_for)

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def make_limited(scale, name: str, limit: int) -> dict:
    r = scale("POST", "/users", {"username": name, "password": f"pw-{name}", "traffic_limit": limit})
    assert r.status == 201, r.text
    return r.json()


def settled_used(scale, uid: str) -> int:
    last, deadline = -1, time.monotonic() + 5
    while time.monotonic() < deadline:
        now = scale.get(f"/users/{uid}").json()["traffic_used"]
        if now == last:
            return now
        last = now
        time.sleep(0.3)
    raise AssertionError(f"traffic_used of {uid} did not settle: {last}")


def test_upload_cut_within_the_bound_through_the_face(node, scale, peers):  # noqa: F811
    limit = 2 * MIB
    user = make_limited(scale, "lena", limit)
    before = len(peers.counting.received)
    run(upload_until_cut(node, "lena:pw-lena", peers.sink_port, 30 * limit))
    wait_for(lambda: len(peers.counting.received) > before, 5, "the sink saw the stream end")
    used = settled_used(scale, user["id"])
    print(f"hy2scale upload: limit {limit}, traffic_used {used}, target got {peers.counting.received[-1]}")
    assert limit <= used <= limit + BOUND
    assert peers.counting.received[-1] <= limit + BOUND
    assert run(refused(node, "lena:pw-lena"))


def test_download_cut_and_a_raised_limit_lets_the_user_back_in(node, scale, peers):  # noqa: F811
    limit = 2 * MIB
    user = make_limited(scale, "mona", limit)
    got = run(download_until_cut(node, "mona:pw-mona", peers.source, 30 * limit))
    used = settled_used(scale, user["id"])
    print(f"hy2scale download: limit {limit}, traffic_used {used}, client got {got}")
    assert limit <= used <= limit + BOUND and got <= limit + BOUND
    assert run(refused(node, "mona:pw-mona"))
    r = scale("PUT", f"/users/{user['id']}", {"traffic_limit": 2 * limit})
    assert r.status == 200, r.text
    # Answered after the workers took the new cap: back in at once, cut again at 2 L.
    before = len(peers.counting.received)
    run(upload_until_cut(node, "mona:pw-mona", peers.sink_port, 30 * limit))
    wait_for(lambda: len(peers.counting.received) > before, 5, "the sink saw the stream end")
    used = settled_used(scale, user["id"])
    assert 2 * limit <= used <= 2 * limit + BOUND
    assert limit - BOUND <= peers.counting.received[-1] <= limit + BOUND
