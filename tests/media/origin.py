"""A media origin for tests, run as its own process: ``python -m tests.media.origin DIR PORT``.

It serves media made by ffmpeg (see ``make_media``) the way IPTV origins do, and counts every
request so tests can assert what reached upstream:

- ``/live/stream.ts``: a continuous MPEG-TS stream, the file looped at its own bit rate
  (``?stall=S``: it stops sending after S seconds without closing; ``?rate=B``: B bytes/s);
- ``/hls/playlist.m3u8``: a live-style rolling playlist (a window of ``WINDOW`` segments that
  moves one segment per target duration), segments at ``/hls/<name>.ts``;
- ``/hls/master.m3u8``: a master playlist naming that media playlist as its only variant;
- ``/redirect/stream.ts``: a 302 to ``/live/stream.ts``;
- ``/stats``: ``{"requests": {path: n}, "live_connections": n, "live_bytes": n}``.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from aiohttp import web

WINDOW = 4
SEGMENT_SECONDS = 1


def make_media(out: Path, seconds: int = 12, bitrate: str = "800k") -> Path:
    """A test-pattern TS file and an HLS rendition of it (1 s segments, keyframe each second)."""
    out.mkdir(parents=True, exist_ok=True)
    ts = out / "live.ts"
    if not ts.exists():
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                        "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast",
                        "-g", "25", "-keyint_min", "25", "-b:v", bitrate, "-maxrate", bitrate,
                        "-bufsize", bitrate, "-c:a", "aac", "-b:a", "64k",
                        "-f", "mpegts", str(ts)], check=True)
    hls = out / "hls"
    if not (hls / "index.m3u8").exists():
        hls.mkdir(exist_ok=True)
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(ts),
                        "-c", "copy", "-f", "hls", "-hls_time", str(SEGMENT_SECONDS),
                        "-hls_list_size", "0", "-hls_segment_filename", str(hls / "seg%03d.ts"),
                        str(hls / "index.m3u8")], check=True)
    return out


def probe_duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                          "-of", "default=nw=1:nk=1", str(path)], capture_output=True, text=True,
                         check=True).stdout.strip()
    return float(out)


class Origin:
    def __init__(self, media: Path):
        self.media = media
        self.ts = (media / "live.ts").read_bytes()
        self.rate = len(self.ts) / probe_duration(media / "live.ts")
        self.segments = sorted(p.name for p in (media / "hls").glob("seg*.ts"))
        self.seg_data = {name: (media / "hls" / name).read_bytes() for name in self.segments}
        self.requests: Counter = Counter()
        self.live_connections = 0
        self.live_bytes = 0
        self.started = time.monotonic()

    def count(self, request: web.Request) -> None:
        self.requests[request.path] += 1

    async def live(self, request: web.Request) -> web.StreamResponse:
        """The TS file looped at its bit rate; ``?stall=S`` stops sending after S seconds
        but keeps the connection open (an origin that hangs)."""
        self.count(request)
        stall = float(request.query.get("stall", "0") or 0)
        rate = float(request.query.get("rate", "0") or 0) or self.rate
        self.live_connections += 1
        resp = web.StreamResponse(headers={"Content-Type": "video/mp2t"})
        await resp.prepare(request)
        chunk = 188 * 64
        pos = 0
        began = time.monotonic()
        sent = 0
        try:
            while True:
                part = self.ts[pos:pos + chunk]
                pos = (pos + chunk) % len(self.ts) if pos + chunk < len(self.ts) else 0
                await resp.write(part)
                sent += len(part)
                self.live_bytes += len(part)
                if stall and time.monotonic() - began > stall:
                    await asyncio.sleep(3600)
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return resp

    async def playlist(self, request: web.Request) -> web.Response:
        self.count(request)
        n = len(self.segments)
        step = int((time.monotonic() - self.started) / SEGMENT_SECONDS)
        first = step % max(n - WINDOW, 1)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{SEGMENT_SECONDS}",
                 f"#EXT-X-MEDIA-SEQUENCE:{step}"]
        for i in range(first, first + WINDOW):
            lines += [f"#EXTINF:{SEGMENT_SECONDS}.0,", self.segments[i % n]]
        return web.Response(text="\n".join(lines) + "\n", content_type="application/vnd.apple.mpegurl")

    async def master(self, request: web.Request) -> web.Response:
        self.count(request)
        text = ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=320x240\n"
                "playlist.m3u8\n")
        return web.Response(text=text, content_type="application/vnd.apple.mpegurl")

    async def segment(self, request: web.Request) -> web.Response:
        self.count(request)
        data = self.seg_data.get(request.match_info["name"] + ".ts")
        if data is None:
            raise web.HTTPNotFound()
        await asyncio.sleep(0.05)     # a real origin takes a moment: coalescing must hold
        return web.Response(body=data, content_type="video/mp2t")

    async def vod(self, request: web.Request) -> web.StreamResponse:
        """The file with Range support; ``?cut=N`` (without Range) promises the whole file and
        breaks the connection after N bytes (an origin that dies mid-film)."""
        self.count(request)
        cut = int(request.query.get("cut", "0") or 0)
        if cut and "Range" not in request.headers and request.method == "GET":
            data = (self.media / "live.ts").read_bytes()
            resp = web.StreamResponse(headers={"Content-Type": "video/mp2t", "Accept-Ranges": "bytes"})
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(data[:cut])
            await asyncio.sleep(0.1)
            request.transport.close()
            return resp
        return web.FileResponse(self.media / "live.ts")

    async def redirect(self, request: web.Request) -> web.Response:
        """To ``/live/stream.ts``; ``?to=URL`` sends the first request there instead (a
        load-balanced origin that may fail later)."""
        self.count(request)
        to = request.query.get("to")
        if to and self.requests[request.path] == 1:
            raise web.HTTPFound(to)
        raise web.HTTPFound("/live/stream.ts")

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": dict(self.requests),
                                  "live_connections": self.live_connections,
                                  "live_bytes": self.live_bytes})


def app(media: Path) -> web.Application:
    origin = Origin(media)
    a = web.Application()
    a.add_routes([web.get("/live/stream.ts", origin.live),
                  web.get("/hls/playlist.m3u8", origin.playlist),
                  web.get("/hls/master.m3u8", origin.master),
                  web.get("/hls/{name}.ts", origin.segment),
                  web.get("/movie/film.ts", origin.vod),
                  web.get("/redirect/stream.ts", origin.redirect),
                  web.get("/stats", origin.stats)])
    return a


if __name__ == "__main__":
    media_dir, port = Path(sys.argv[1]), int(sys.argv[2])
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    if os.environ.get("ORIGIN_QUIET"):
        import logging
        logging.disable(logging.CRITICAL)
    web.run_app(app(media_dir), host=host, port=port, print=None, access_log=None)
