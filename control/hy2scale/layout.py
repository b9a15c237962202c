"""The Nodes page's graph layout: GET, PUT (replace) and an SSE stream of it.

The layout and a version number are one transaction's two settings rows.  A stream polls only
the version row (one primary-key read every ``scale.layoutPoll``), so a change made through any
control-API process reaches every stream of every process; it sends the layout on connect and
after each change, and a comment ping every ``scale.layoutPing`` (20 s).  A stream ends when its
token stops being valid (expired, or revoked by a password change).  Each open stream holds one
of the control API's threads (``control.threads``); half of them at most.
"""
from __future__ import annotations

import json
import math
import threading
import time

from fastpath.control import validation as v
from fastpath.control.errors import bad_request
from fastpath.control.event_stream import open_event_stream
from fastpath.control.hy2scale.auth import Auth, request_token
from fastpath.control.hy2scale.face import (
    LAYOUT_KEY,
    LAYOUT_VERSION_KEY,
    ScaleFace,
    read_setting,
    write_setting,
)

MAX_NODES = 10_000
TOKEN_CHECK_SECONDS = 5.0


def parse_layout(body) -> dict:
    """``{positions: {key: {x, y}}}`` or the bare ``{key: {x, y}}`` map → the positions."""
    if not isinstance(body, dict):
        raise bad_request("the layout must be a JSON object")
    positions = body["positions"] if set(body) == {"positions"} else body
    if not isinstance(positions, dict):
        raise bad_request("positions must be an object")
    if len(positions) > MAX_NODES:
        raise bad_request(f"more than {MAX_NODES} positions")
    out = {}
    for key, pos in positions.items():
        if not key or len(key) > 256:
            raise bad_request("a position key must be 1 to 256 characters")
        if not isinstance(pos, dict) or "x" not in pos or "y" not in pos:
            raise bad_request(f"position {key!r} must be an object with x and y")
        xy = []
        for axis in ("x", "y"):
            n = pos[axis]
            if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) or abs(n) > 1e9:
                raise bad_request(f"position {key!r}: {axis} must be a finite number")
            xy.append(n)
        out[key] = {"x": xy[0], "y": xy[1]}
    return out


def write_layout(db, positions: dict) -> None:
    """Inside a transaction: replace the layout and move its version."""
    version = (read_setting(db, LAYOUT_VERSION_KEY, 0) or 0) + 1
    write_setting(db, LAYOUT_KEY, positions)
    write_setting(db, LAYOUT_VERSION_KEY, version)


class Layout:
    def __init__(self, face: ScaleFace):
        self.face = face

    def current(self) -> tuple[int, dict]:
        with self.face.ledger.read() as db:
            return (read_setting(db, LAYOUT_VERSION_KEY, 0) or 0,
                    {"positions": read_setting(db, LAYOUT_KEY, {}) or {}})

    def version(self) -> int:
        return self.face.setting(LAYOUT_VERSION_KEY, 0) or 0

    def on_get(self, req, resp):
        resp.media = self.current()[1]

    def on_put(self, req, resp):
        positions = parse_layout(v.request_body(req))
        with self.face.ledger.write() as db:
            write_layout(db, positions)
        resp.media = {"positions": positions}


class LayoutStream:
    """At most half the process's threads serve streams at once (503 beyond), so open browser
    tabs can never take every thread of the control API."""

    def __init__(self, layout: Layout, auth: Auth):
        self.layout = layout
        self.auth = auth
        self.slots = threading.BoundedSemaphore(max(1, layout.face.node.config.control.threads // 2))

    def on_get(self, req, resp):
        token = request_token(req)
        open_event_stream(resp, self.slots, self.events(token), "layout")

    def events(self, token: str):
        s = self.layout.face.settings
        version, body = self.layout.current()
        yield b"data: " + json.dumps(body).encode() + b"\n\n"
        now = time.monotonic()
        next_ping = now + s.layout_ping
        next_check = now + TOKEN_CHECK_SECONDS
        while True:
            time.sleep(s.layout_poll)
            now = time.monotonic()
            if now >= next_check:
                next_check = now + TOKEN_CHECK_SECONDS
                if not self.auth.admin_token_ok(token):
                    return
            if self.layout.version() != version:
                version, body = self.layout.current()
                yield b"data: " + json.dumps(body).encode() + b"\n\n"
                next_ping = now + s.layout_ping
            elif now >= next_ping:
                yield b": ping\n\n"
                next_ping = now + s.layout_ping
