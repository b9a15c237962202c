"""The node's own web dashboard: the built single-page app, and the live route it reads.

The page is built from ``dashboard/`` (Vite, Preact, uPlot, hls.js) into
``control/dashboard_assets/site/``, which ships in the wheel, so serving it needs no Node.js and
no network (every script and style is a file of the build).  It is served at ``/dashboard/``,
at ``/`` to browsers (``html_for_browser``), and at ``/scale/`` when the HY2 SCALE face is on.
The files are public (the page holds no data; it asks for the control token and sends it as a
Bearer token); every API call keeps its own face's auth.

``/api/v1/dashboard/log`` is the node log, live (``control/dashboard_log.py``).
``/api/v1/dashboard/live`` is the overview's server-sent events: one event a second with the
node's rates and live figures.  One ticker thread per API process computes it with one
compiled scan of the counter segment (``fastpath.views.dashboard_view.node_tick``) and hands the
same bytes to every open dashboard, so 50 watchers cost one scan, not 50.
"""
from __future__ import annotations

import json
import logging
import mimetypes
import threading
import time
from pathlib import Path

import falcon

from fastpath.control.auth import bearer_rule
from fastpath.control.event_stream import open_event_stream
from fastpath.control.dashboard_log import LEVELS, LogTail
from fastpath.control.native_schemas import EVENTS
from fastpath.control.openapi import path_param, query
from fastpath.control import shared_root
from fastpath.control.route_guard import OPEN, PUBLIC
from fastpath.control.node_model import NodeUnavailable
from fastpath._native import load as _load
from fastpath.shm import (
    KIND_CONNECTION,
    KIND_MEDIA_CLIENT,
    KIND_MEDIA_STREAM,
    KIND_TCP_STREAM,
    KIND_UDP_SESSION,
    KIND_USER,
)

node_tick = _load("fastpath.views.dashboard_view").node_tick

SITE = Path(__file__).parent / "dashboard_assets" / "site"
LIVE_PATH = "/api/v1/dashboard/live"
LOG_PATH = "/api/v1/dashboard/log"
log = logging.getLogger("fastpath.control.dashboard")


class Site:
    """The build, read once: the index page (with a ``<base>`` per mount) and its assets."""

    def __init__(self, root: Path = SITE):
        self.root = root
        self.build = json.loads((root / "build.json").read_text())
        self.index = (root / "index.html").read_text()
        self.assets: dict[str, tuple[bytes, str]] = {}
        for path in sorted((root / "assets").iterdir()):
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if kind in ("text/javascript", "application/javascript"):
                kind = "text/javascript; charset=utf-8"
            elif kind == "text/css":
                kind = "text/css; charset=utf-8"
            self.assets[path.name] = (path.read_bytes(), kind)

    @property
    def build_id(self) -> str:
        return self.build["build_id"]

    def page(self, mount: str) -> bytes:
        """The index for a mount ("/dashboard/", "/scale/"): relative asset paths resolve
        against ``<base>``, whether or not the browser's URL ended with a slash."""
        meta = f'<meta name="fastpath-build" content="{self.build_id}" />'
        head = f'<head>\n    <base href="{mount}" />\n    {meta}'
        return self.index.replace("<head>", head, 1).encode()


def _page(resp: falcon.Response, site: Site, mount: str) -> None:
    resp.content_type = falcon.MEDIA_HTML
    resp.data = site.page(mount)
    resp.cache_control = ["no-cache"]
    # The page loads only its own files; the API is same-origin.  Media previews may come from
    # the relay's port (media-src, connect-src for hls.js's playlist and segment requests).
    resp.set_header("Content-Security-Policy",
                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                    "media-src 'self' blob: http: https:; connect-src 'self' http: https:; "
                    "worker-src 'self' blob:; frame-ancestors 'none'")
    resp.set_header("X-Content-Type-Options", "nosniff")


class Page:
    auth_rule = PUBLIC

    def __init__(self, site: Site, mount: str):
        self.site = site
        self.mount = mount

    def on_get(self, req, resp):
        _page(resp, self.site, self.mount)


class Asset:
    auth_rule = PUBLIC

    def __init__(self, site: Site):
        self.site = site

    def on_get(self, req, resp, name):
        found = self.site.assets.get(name)
        if found is None:
            raise falcon.HTTPNotFound(title="not found", description=f"no dashboard asset {name!r}")
        resp.data, resp.content_type = found
        # Names carry the content hash: a new build has new names.
        resp.cache_control = ["public", "max-age=31536000", "immutable"]
        resp.set_header("X-Content-Type-Options", "nosniff")


def wants_html(req: falcon.Request) -> bool:
    """A browser's navigation: HTML asked for, and preferred to JSON."""
    return "text/html" in (req.accept or "") and \
        req.client_prefers(("application/json", "text/html")) == "text/html"


def html_for_browser(req: falcon.Request, resp: falcon.Response, site: Site) -> bool:
    """``GET /``: answer the dashboard when the client asks for HTML first (a browser), and
    say so; False leaves ``/`` to the API's own answer (JSON for API clients)."""
    if req.method not in ("GET", "HEAD") or not wants_html(req):
        return False
    _page(resp, site, "/dashboard/")
    return True


class Root:
    """``/``: the dashboard to browsers; API clients get a pointer (JSON) to what is here (when
    no other face answers them: the app shares ``/`` through control/shared_root.py)."""
    auth_rule = PUBLIC

    def __init__(self, site: Site):
        self.site = site

    def on_get(self, req, resp):
        if html_for_browser(req, resp, self.site):
            return
        resp.media = {"dashboard": "/dashboard/", "docs": "/docs", "openapi": "/openapi.json"}


# -- the live route -------------------------------------------------------------------------

def tick_figures(counts, tx, rx, online, streams, viewers) -> dict:
    """``node_tick``'s tuple as the event's monotonic part."""
    return {
        "totals": {"tx": tx[KIND_USER], "rx": rx[KIND_USER],
                   "media_in": rx[KIND_MEDIA_STREAM], "media_out": tx[KIND_MEDIA_CLIENT]},
        "connections": counts[KIND_CONNECTION],
        "proxy_streams": counts[KIND_TCP_STREAM] + counts[KIND_UDP_SESSION],
        "users_online": online,
        "streams_live": streams,
        "viewers": viewers,
    }


def rates(prev: dict | None, cur: dict, seconds: float) -> dict:
    """Bytes a second between two ticks; 0 where a total went down (a replaced segment, a
    freed slot) rather than a negative rate."""
    out = {}
    for key, value in cur["totals"].items():
        before = prev["totals"][key] if prev else value
        out[key] = max(0, value - before) / seconds if seconds > 0 else 0
    return out


class LiveTicker:
    """One scan a second for every open dashboard of this API process.

    The thread runs only while someone watches: the first watcher starts it, and it ends at
    the first tick with none.  Each tick's event is encoded once; watchers wait on a condition
    for the next sequence number and write the same bytes."""

    def __init__(self, node, interval: float = 1.0):
        self.node = node
        self.interval = interval
        self.cond = threading.Condition()
        self.watchers = 0
        self.seq = 0
        self.event = b""
        self.thread: threading.Thread | None = None
        self._prev: tuple[float, dict] | None = None
        self.ticks = 0          # scans done (the bench and the tests read it)

    def scan(self) -> dict:
        now = time.time()
        try:
            cur = tick_figures(*node_tick(self.node.table))
        except NodeUnavailable:
            return {"t": now, "error": "the counter segment is not there yet"}
        self.ticks += 1
        prev_t, prev = self._prev if self._prev else (now, None)
        cur["rates"] = rates(prev, cur, now - prev_t)
        cur["t"] = now
        self._prev = (now, cur)
        return cur

    def _run(self) -> None:
        next_at = time.monotonic()
        while True:
            with self.cond:
                if self.watchers == 0:
                    self.thread = None
                    self._prev = None
                    self.event = b""        # a later watcher must not get this stale tick
                    return
            try:
                body = self.scan()
            except Exception:       # a bad tick must not end every watcher's stream
                log.exception("dashboard tick failed")
                body = {"t": time.time(), "error": "tick failed"}
            event = b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
            with self.cond:
                self.event = event
                self.seq += 1
                self.cond.notify_all()
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:           # fell behind (a stalled machine): skip, do not burst
                next_at = time.monotonic()
                delay = 0
            time.sleep(delay)

    def events(self):
        """A watcher's stream: the latest event at once, then each new one."""
        with self.cond:
            self.watchers += 1
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="dashboard-tick", daemon=True)
                self.thread.start()
            seen = self.seq
            first = self.event
        try:
            if first:
                yield first
            while True:
                with self.cond:
                    self.cond.wait_for(lambda: self.seq != seen, timeout=15)
                    fresh = self.seq != seen
                    seen = self.seq
                    event = self.event
                yield event if fresh else b": ping\n\n"
        finally:
            with self.cond:
                self.watchers -= 1


SLOT_WAIT_SECONDS = 2.5


class Live:
    """At most half the process's threads serve these streams at once (503 beyond), so open
    dashboards never take every thread of the control API."""

    def __init__(self, node, ticker: LiveTicker):
        self.ticker = ticker
        self.slots = threading.BoundedSemaphore(max(1, node.config.control.threads // 2))

    def on_get(self, req, resp):
        # A page that went away frees its slot at the stream's next write (within a tick):
        # a reload or a quick tour of the pages waits for that instead of meeting a 503.
        open_event_stream(resp, self.slots, self.ticker.events(), "dashboard", SLOT_WAIT_SECONDS)


def _scale_enabled(node) -> bool:
    try:
        from fastpath.control.hy2scale.face import ScaleFace
    except ModuleNotFoundError:
        return False
    return ScaleFace(node).settings.enabled


def register(app: falcon.App, node):
    site = Site()
    # ``/`` is shared with the Traffic Stats and stream faces (control/shared_root.py): the page
    # goes to browsers, API clients get their face's JSON.
    if not shared_root.claim(node, "dashboard", Root(site), OPEN, wants=wants_html):
        app.add_route("/", Root(site))
    app.add_route("/dashboard", Page(site, "/dashboard/"))
    app.add_route("/dashboard/assets/{name}", Asset(site))
    scale_on = _scale_enabled(node)
    if scale_on:
        app.add_route("/scale", Page(site, "/scale/"))
        app.add_route("/scale/assets/{name}", Asset(site))
    live = Live(node, LiveTicker(node))
    html = {"type": "string", "description": "the dashboard's page (HTML)"}
    # The build's files: scripts and styles, images and fonts as they are.
    asset_types = {"text/javascript": {"type": "string"}, "text/css": {"type": "string"},
                   "*/*": {"type": "string", "format": "binary"}}
    node.openapi.add("GET", "/dashboard", "The web dashboard", tag="dashboard", secured=False,
                     response=html, content_type="text/html")
    node.openapi.add("GET", "/dashboard/assets/{name}", "A file of the dashboard's build", tag="dashboard",
                     secured=False, params=[path_param("name")], errors={404: "no such file"},
                     content=asset_types)
    if scale_on:
        node.openapi.add("GET", "/scale", "The dashboard under the HY2 SCALE face's path", tag="dashboard",
                         secured=False, response=html, content_type="text/html")
        node.openapi.add("GET", "/scale/assets/{name}", "A file of the dashboard's build", tag="dashboard",
                         secured=False, params=[path_param("name")], errors={404: "no such file"},
                         content=asset_types)
    app.add_route(LIVE_PATH, live)
    app.add_route(LOG_PATH, LogTail(node, live.slots))
    node.openapi.add("GET", LIVE_PATH, "Server-sent events, one a second: node rates, connections, "
                     "users online, streams live, viewers (the dashboard's overview)", tag="native",
                     response=EVENTS, content_type="text/event-stream",
                     errors={401: "no or wrong bearer token", 503: "too many streams open"})
    node.openapi.add("GET", LOG_PATH, "Server-sent events: the node log's last lines, then each new "
                     "one at or above ?level=", tag="native", response=EVENTS,
                     content_type="text/event-stream",
                     errors={400: "unknown level", 401: "no or wrong bearer token", 503: "too many streams open"},
                     params=[query("level", {"type": "string", "enum": list(LEVELS)})])
    return bearer_rule(node)
