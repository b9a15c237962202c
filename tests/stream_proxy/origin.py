"""A small media origin on loopback for the end-to-end checks: test media made with ffmpeg, a
continuous MPEG-TS feed paced like a live channel, HLS files, and a count of requests per path."""
from __future__ import annotations

import collections
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_media(folder: Path) -> Path:
    """``live.ts`` (6 s) and an HLS rendition ``hls/index.m3u8`` with 1 s segments."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is needed for the media tests")
    folder.mkdir(parents=True, exist_ok=True)
    src = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=48000", "-t", "6", "-c:v", "libx264", "-preset",
           "ultrafast", "-g", "25", "-b:v", "200k", "-c:a", "aac", "-b:a", "64k"]
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *src, "-f", "mpegts",
                    str(folder / "live.ts")], check=True, timeout=120)
    (folder / "hls").mkdir(exist_ok=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *src, "-f", "hls",
                    "-hls_time", "1", "-hls_list_size", "0", "-hls_segment_filename",
                    str(folder / "hls" / "seg%03d.ts"), str(folder / "hls" / "index.m3u8")],
                   check=True, timeout=120)
    return folder


class Origin:
    """``/<name>.ts`` loops ``live.ts`` forever at ~``rate`` bytes/s; ``/hls/*`` serves files."""

    def __init__(self, media: Path, rate: int = 400_000):
        self.media = media
        self.ts = (media / "live.ts").read_bytes()
        self.rate = rate
        self.requests: collections.Counter = collections.Counter()
        self.down: set[str] = set()
        # Paths whose feed holds still (connection open, no bytes) while listed: figures stop
        # moving, so totals can be compared exactly.
        self.paused: set[str] = set()
        # What the origin calls a segment; Python's mimetypes says text/vnd.trolltech.linguist
        # for ``.ts``, and real origins built on it do too.
        self.segment_type = "video/mp2t"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                path = self.path.split("?")[0]
                owner.requests[path] += 1
                if path in owner.down:
                    self.send_error(503)
                    return
                if path.startswith("/hls/"):
                    f = owner.media / path.lstrip("/")
                    if not f.is_file():
                        self.send_error(404)
                        return
                    data = f.read_bytes()
                    ctype = "application/vnd.apple.mpegurl" if f.suffix == ".m3u8" else owner.segment_type
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if path.endswith(".ts"):
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp2t")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    chunk = 188 * 40
                    pos = 0
                    pause = chunk / owner.rate
                    try:
                        while path not in owner.down:
                            while path in owner.paused and path not in owner.down:
                                time.sleep(0.05)
                            end = pos + chunk
                            piece = owner.ts[pos:end]
                            if len(piece) < chunk:
                                piece += owner.ts[:chunk - len(piece)]
                            self.wfile.write(piece)
                            pos = end % len(owner.ts)
                            time.sleep(pause)
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                self.send_error(404)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
