"""The dashboard as a real node serves it: public files, the live route behind the control
token, ``/`` to browsers, ``/scale/`` with the build-id the HY2 SCALE face reports."""
from __future__ import annotations

import json
import re
import socket
import time

import pytest

from fastpath.control.dashboard import SITE
from tests.support.node import NodeProcess

pytestmark = pytest.mark.integration
TOKEN = "dash-test-token"
BUILD = json.loads((SITE / "build.json").read_text())
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = NodeProcess(tmp_path_factory.mktemp("dash"), {"control": {"token": TOKEN}})
    n.start(timeout=60)      # create_app takes 5-15 s on the shared machine under load
    try:
        yield n
    finally:
        n.stop()


def test_page_and_assets_are_public_and_from_the_build(node):
    r = node.get("/dashboard/")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    page = r.text
    assert '<base href="/dashboard/"' in page
    assert f'content="{BUILD["build_id"]}"' in page
    for ref in re.findall(r'(?:src|href)="\./(assets/[^"]+)"', page):
        a = node.get("/dashboard/" + ref)
        assert a.status == 200, ref
        assert a.body == (SITE / ref).read_bytes()
        assert "immutable" in a.headers["Cache-Control"]
    assert node.get("/dashboard/assets/nope.js").status == 404
    assert node.get("/dashboard/assets/..%2Fbuild.json").status == 404


def test_root_is_the_page_for_browsers_and_json_for_api_clients(node):
    html = node.get("/", headers={"Accept": BROWSER})
    assert html.status == 200 and '<base href="/dashboard/"' in html.text
    # API clients get the stream face's m3u-proxy status at ``/`` (control/shared_root.py),
    # under that face's credential: JSON either way, never the page.
    for headers in ({"Accept": "application/json"}, {}):
        api = node.get("/", headers=headers)
        assert api.headers["Content-Type"].startswith("application/json"), api.status
        assert "<base href" not in api.text


def test_scale_mount_and_its_build_id(node):
    r = node.get("/scale/")
    assert r.status == 200 and '<base href="/scale/"' in r.text
    assert node.get("/scale/assets/" + next(n for n in BUILD["files"] if n.endswith(".js")).split("/")[-1]).status == 200
    assert node.get("/scale/api/build-id").json() == {"build_id": BUILD["build_id"]}


def test_live_route_needs_the_token(node):
    assert node.get("/api/v1/dashboard/live", timeout=3).status == 401
    assert node.get("/api/v1/dashboard/live", headers={"Authorization": "Bearer wrong"}, timeout=3).status == 401


def read_events(node, n: int, timeout: float = 10) -> list[dict]:
    """n events of the live route, read from a raw socket (a streaming body)."""
    with socket.create_connection(("127.0.0.1", node.control_port), timeout=timeout) as s:
        s.sendall(f"GET /api/v1/dashboard/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Accept: text/event-stream\r\n\r\n".encode())
        buf = b""
        events = []
        deadline = time.monotonic() + timeout
        while len(events) < n and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            events = [json.loads(m) for m in re.findall(rb"data: (\{.*?\})\n\n", buf)]
        assert b"text/event-stream" in buf.split(b"\r\n\r\n", 1)[0]
        return events


def test_live_events_arrive_every_second(node):
    start = time.monotonic()
    events = read_events(node, 4)
    assert len(events) == 4
    ts = [e["t"] for e in events]
    assert all(0.5 < b - a < 1.6 for a, b in zip(ts, ts[1:])), ts
    assert time.monotonic() - start < 6
    for e in events:
        assert {"rates", "totals", "connections", "users_online", "streams_live", "viewers"} <= set(e), e
        assert e["rates"]["tx"] >= 0


def test_log_route_refuses_a_bad_level_and_needs_the_token(node):
    r = node.get("/api/v1/dashboard/log?level=LOUD", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 400 and "level must be one of" in r.text
    assert node.get("/api/v1/dashboard/log", timeout=3).status == 401


def test_log_route_sends_history_filtered_by_level(node):
    def first_events(level: str) -> list[dict]:
        with socket.create_connection(("127.0.0.1", node.control_port), timeout=10) as s:
            s.sendall(f"GET /api/v1/dashboard/log?level={level} HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
            buf = b""
            while b": following" not in buf:
                chunk = s.recv(65536)
                assert chunk, buf
                buf += chunk
        return [json.loads(m) for m in re.findall(rb"data: (\{.*?\})\n\n", buf)]
    info = first_events("INFO")
    assert any("started control-api" in e["line"] and e["level"] == "INFO" for e in info), info[:5]
    assert all(e["level"] in ("WARNING", "ERROR", "CRITICAL") for e in first_events("WARNING"))
