"""The dashboard's live node log: ``GET /api/v1/dashboard/log?level=WARNING`` (server-sent events).

Every process of the node appends to ``<dataDir>/node.log`` (``fastpath.node_log``); each
watcher tails it in its own thread (the control API is threaded WSGI; the PasarGuard face's
fan-out is asyncio and lives in another process).  A watcher gets the last lines first, then
every new line at or above the level it asked for, as ``{"level", "line"}`` events; it follows
the file across rotation (a new inode, or a file shorter than the position read).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from fastpath.control.errors import bad_request
from fastpath.control.event_stream import open_event_stream
from fastpath.node_log import node_log_path

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
HISTORY_BYTES = 64 * 1024
HISTORY_LINES = 200
PING_SECONDS = 15.0


def line_level(line: str) -> str | None:
    """The level of a node.log line (``date time label LEVEL logger: message``); None for a
    continuation line (a traceback), which follows the level of the line before."""
    parts = line.split(" ", 4)
    if len(parts) >= 4 and parts[3] in LEVELS:
        return parts[3]
    return None


def event(level: str, line: str) -> bytes:
    return b"data: " + json.dumps({"level": level, "line": line}).encode() + b"\n\n"


class LogTail:
    def __init__(self, node, slots, poll: float = 0.3):
        self.path: Path = node_log_path(node.config.data_dir)
        self.slots = slots           # shared with the live route: threads kept for streams
        self.poll = poll

    def on_get(self, req, resp):
        level = (req.get_param("level") or "INFO").upper()
        if level not in LEVELS:
            raise bad_request(f"level must be one of {', '.join(LEVELS)}")
        # the same wait as control/dashboard.py Live
        open_event_stream(resp, self.slots, self.lines(LEVELS[level]), "dashboard", 2.5)

    def _open(self):
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return None, None
        return f, os.fstat(f.fileno()).st_ino

    def lines(self, minimum: int):
        f, inode = self._open()
        current = "INFO"
        try:
            history = []
            if f is not None:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(0, size - HISTORY_BYTES))
                if f.tell():
                    f.readline()     # a partial first line
                history = f.read().decode("utf-8", "replace").splitlines()
            for text in history[-HISTORY_LINES:]:
                current = line_level(text) or current
                if LEVELS[current] >= minimum:
                    yield event(current, text)
            yield b": following\n\n"
            partial = b""
            quiet_since = time.monotonic()
            while True:
                chunk = f.read(65536) if f is not None else b""
                if chunk:
                    data = partial + chunk
                    *done, partial = data.split(b"\n")
                    for raw in done:
                        text = raw.decode("utf-8", "replace")
                        current = line_level(text) or current
                        if LEVELS[current] >= minimum:
                            yield event(current, text)
                    quiet_since = time.monotonic()
                    continue
                time.sleep(self.poll)
                try:
                    st = os.stat(self.path)
                except FileNotFoundError:
                    st = None
                if st is not None and (f is None or st.st_ino != inode or st.st_size < f.tell()):
                    if f is not None:
                        f.close()
                    f, inode = self._open()
                    partial = b""
                if time.monotonic() - quiet_since > PING_SECONDS:
                    quiet_since = time.monotonic()
                    yield b": ping\n\n"
        finally:
            if f is not None:
                f.close()
