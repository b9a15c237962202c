"""The media relay service of a data-plane worker: ``start(ctx)`` wires it to the node.

It owns the worker's HTTP listener on ``media.listen`` (every worker binds it with
SO_REUSEPORT), the registered streams (read from the state store, reread on
``media_streams_changed``), one relay per active stream (live, HLS or VOD), the segment cache,
the upstream session and the webhook dispatcher, and answers the worker commands of the
media contract.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import time

from fastpath.media.config import MediaSettings, parse_media_config
from fastpath.media.hls import HlsRelay
from fastpath.media.http_io import (
    DETACHED,
    HttpServer,
    Request,
    response_head,
    simple_response,
)
from fastpath.media.live import LiveRelay
from fastpath.media.node_events import NodeEvents
from fastpath.media.refs import RefSigner
from fastpath.media.segment_cache import SegmentCache
from fastpath.media.tracking import client_identity, make_client_id
from fastpath.media.upstream import Upstream
from fastpath.media.vod import VodRelay
from fastpath.media.webhooks import WebhookDispatcher
from fastpath.store import media_store

log = logging.getLogger("fastpath.media.service")

_STREAM_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_SEGMENT_NAME = re.compile(r"^segment(\.[A-Za-z0-9]{1,8})?$")
RELAYS = {"direct": LiveRelay, "transcode": LiveRelay, "hls": HlsRelay, "vod": VodRelay}


class MediaService:
    def __init__(self, ctx, settings: MediaSettings):
        self.ctx = ctx
        self.settings = settings
        self.writer = ctx.counters
        self.store = ctx.store
        self.loop = asyncio.get_running_loop()
        self.streams: dict[str, media_store.MediaStream] = {}
        self.relays: dict[str, object] = {}
        self.cache = SegmentCache(settings.segment_cache_bytes,
                                  min(settings.max_segment_bytes, settings.segment_cache_bytes // 2))
        self.upstream = Upstream(settings)
        self.hooks = WebhookDispatcher(ctx.store, queue=settings.webhook_queue,
                                       policy=self.upstream.policy)
        self.events = NodeEvents(self)
        self.server: HttpServer | None = None
        self.signer: RefSigner | None = None
        self.secret = b""
        self._connections = 0
        self.tasks: set[asyncio.Task] = set()
        self.ticker: asyncio.Task | None = None

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        key = await asyncio.to_thread(media_store.signing_key, self.store)
        self.signer = RefSigner(key)
        self.secret = hmac.new(key, b"media client id", hashlib.sha256).digest()
        await self.upstream.start()
        await self.hooks.start()
        await self.events.start()
        await self.reload()
        host, port = self.settings.listen
        self.server = HttpServer(host, port, self.handle, idle_timeout=self.settings.client_timeout * 3)
        self.server.start()
        self.ticker = self.loop.create_task(self._tick_loop())
        ctx = self.ctx
        ctx.on_command("media_streams_changed", self._cmd_streams_changed)
        ctx.on_command("media_failover", self._cmd_failover)
        ctx.on_command("media_disconnect", self._cmd_disconnect)
        ctx.on_command("media_webhooks_changed", self._cmd_webhooks_changed)
        log.info("media relay listening on %s:%d", host, self.server.port)

    async def close(self) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
        if self.server is not None:
            await self.server.close()
        for relay in list(self.relays.values()):
            try:
                await relay.stop("node stopping")
            except Exception:
                log.exception("relay did not stop cleanly")
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=2)
        self.events.close()
        await self.hooks.close(grace=0.5)
        await self.upstream.close()

    def spawn(self, coro) -> None:
        """Run ``coro`` as a task the service waits for when it closes."""
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def background(self, func, *args, **kwargs) -> None:
        """Run a store write in a thread without holding up the data plane."""
        async def run():
            try:
                await asyncio.to_thread(func, *args, **kwargs)
            except Exception:
                log.exception("store update %s failed", getattr(func, "__name__", func))
        task = self.loop.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for relay in list(self.relays.values()):
                try:
                    relay.tick(now)
                except Exception:
                    log.exception("relay housekeeping failed")
            self.cache.purge_expired(now)

    # -- streams --------------------------------------------------------------------------------
    async def reload(self, reasons: dict | None = None) -> int:
        """Reread the streams; relays of deleted streams stop with the reason the control face
        gave (m3u-proxy's words: ``manual_deletion``, ``metadata_filter_deletion`` ...)."""
        streams = await asyncio.to_thread(media_store.list_streams, self.store)
        new = {s.id: s for s in streams}
        reasons = reasons if isinstance(reasons, dict) else {}
        for stream_id, relay in list(self.relays.items()):
            stream = new.get(stream_id)
            if stream is None:
                await relay.stop(str(reasons.get(stream_id) or "manual_deletion")[:64])
            elif RELAYS.get(stream.kind) is not type(relay) or (
                    stream.kind != relay.stream.kind) or stream.profile != relay.stream.profile or (
                    stream.profile_variables != relay.stream.profile_variables):
                await relay.stop("stream_changed")
            else:
                relay.update(stream)
        self.streams = new
        return len(new)

    def stream_kind_changed(self, stream: media_store.MediaStream) -> None:
        self.streams[stream.id] = stream

    def relay_done(self, relay) -> None:
        if self.relays.get(relay.stream.id) is relay:
            del self.relays[relay.stream.id]

    async def _stream(self, stream_id: str) -> media_store.MediaStream | None:
        if not _STREAM_ID.match(stream_id):
            return None
        stream = self.streams.get(stream_id)
        if stream is None:
            # Registered a moment ago and the command has not reached this worker yet?
            stream = await asyncio.to_thread(media_store.get_stream, self.store, stream_id)
            if stream is not None:
                self.streams[stream_id] = stream
        return stream

    def _relay(self, stream: media_store.MediaStream):
        relay = self.relays.get(stream.id)
        if relay is None or relay.stopping:
            relay = RELAYS[stream.kind](self, stream)
            self.relays[stream.id] = relay
        return relay

    # -- HTTP -----------------------------------------------------------------------------------
    async def send(self, sock, data: bytes) -> None:
        await self.loop.sock_sendall(sock, data)

    async def handle(self, req: Request, sock) -> object:
        try:
            return await self._handle(req, sock)
        except MemoryError:
            # The worker's counter shard is full: no slot for one more viewer.
            await self.send(sock, simple_response(503, "the node is at its viewer capacity",
                                                  keep_alive=False, extra=[("Retry-After", "5")]))
            return False

    async def _handle(self, req: Request, sock) -> object:
        keep = req.keep_alive
        if req.method == "OPTIONS":
            await self.send(sock, response_head(204, [
                ("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "GET, HEAD"),
                ("Access-Control-Allow-Headers", "Range, X-Username")], content_length=0, keep_alive=keep))
            return keep
        if req.method not in ("GET", "HEAD"):
            await self.send(sock, simple_response(405, "only GET and HEAD are served here",
                                                  keep_alive=keep, extra=[("Allow", "GET, HEAD")]))
            return keep
        parts = req.path.split("/")
        head_only = req.method == "HEAD"
        if len(parts) == 3 and parts[1] == "stream":
            return await self._serve_stream(req, sock, parts[2].removesuffix(".ts"), head_only)
        if len(parts) == 4 and parts[1] == "hls":
            name = parts[3]
            if name == "playlist.m3u8" or _SEGMENT_NAME.match(name):
                return await self._serve_hls(req, sock, parts[2], name != "playlist.m3u8")
        if req.path in ("/health", "/"):
            body = json.dumps({"status": "healthy", "streams": len(self.streams),
                               "active_streams": len(self.relays)}).encode()
            await self.send(sock, response_head(200, [("Content-Type", "application/json")],
                                                content_length=len(body), keep_alive=keep)
                            + (b"" if head_only else body))
            return keep
        await self.send(sock, simple_response(404, "no such endpoint", keep_alive=keep, head_only=head_only))
        return keep

    def _ident(self, req: Request, stream_id: str, per_connection: bool = False):
        """(ip, username, agent) and the client id; ``per_connection`` for a continuous
        stream's viewer (``tracking.make_client_id``): this worker's pid and a running
        number make the token, so ids never repeat across workers or connections."""
        ident = client_identity(self.settings, req.peer, req.headers, req.query)
        ip, username, agent = ident
        connection = ""
        if per_connection:
            self._connections += 1
            connection = f"{os.getpid()}.{self._connections}.{time.monotonic_ns()}"
        return ident, make_client_id(self.secret, stream_id, ip, agent, username, connection)

    async def _not_found(self, req, sock, stream_id: str) -> bool:
        await self.send(sock, simple_response(404, f"stream {stream_id[:64]} not found",
                                              keep_alive=req.keep_alive, head_only=req.method == "HEAD"))
        return req.keep_alive

    async def _serve_stream(self, req: Request, sock, stream_id: str, head_only: bool):
        stream = await self._stream(stream_id)
        if stream is None:
            return await self._not_found(req, sock, stream_id)
        if stream.kind == "hls":
            await self.send(sock, response_head(302, [("Location", f"/hls/{stream.id}/playlist.m3u8")],
                                                content_length=0, keep_alive=req.keep_alive))
            return req.keep_alive
        # A VOD player opens a connection per range it reads: one viewer; a live viewer is
        # one connection.
        ident, client_id = self._ident(req, stream.id, per_connection=stream.kind != "vod")
        if stream.kind == "vod":
            return await self._relay(stream).serve(req, sock, client_id, ident)
        if head_only:
            relay = self.relays.get(stream.id)
            ctype = relay.content_type if relay is not None else "video/mp2t"
            await self.send(sock, response_head(200, [("Content-Type", ctype), ("Accept-Ranges", "none"),
                                                      ("Cache-Control", "no-cache, no-store"),
                                                      ("Access-Control-Allow-Origin", "*")],
                                                keep_alive=False))
            return False
        try:
            relay = self._relay(stream)
        except ValueError as exc:
            await self.send(sock, simple_response(503, f"stream cannot be relayed: {exc}", keep_alive=False))
            return False
        result = await relay.attach(sock, ident, client_id, head_only,
                                    chunked=req.version == "HTTP/1.1")
        return result if result is DETACHED else False

    async def _serve_hls(self, req: Request, sock, stream_id: str, segment: bool):
        stream = await self._stream(stream_id)
        if stream is None:
            return await self._not_found(req, sock, stream_id)
        if stream.kind != "hls":
            await self.send(sock, simple_response(404, f"stream {stream_id} is not an HLS stream",
                                                  keep_alive=req.keep_alive))
            return req.keep_alive
        if segment and not req.query.get("r"):
            await self.send(sock, simple_response(400, "a segment request needs its ?r= reference",
                                                  keep_alive=req.keep_alive))
            return req.keep_alive
        relay = self._relay(stream)
        ident, client_id = self._ident(req, stream.id)
        client = relay.client(client_id, ident)
        if segment:
            return await relay.segment(req, sock, client)
        return await relay.playlist(req, sock, client)

    # -- commands -------------------------------------------------------------------------------
    async def _cmd_streams_changed(self, args) -> dict:
        return {"streams": await self.reload((args or {}).get("reasons"))}

    async def _cmd_failover(self, args) -> dict:
        stream_id = str(args.get("stream_id", ""))
        index = int(args.get("index", 0))
        relay = self.relays.get(stream_id)
        resolved = args.get("resolved_url")
        for stream in {id(s): s for s in (self.streams.get(stream_id), getattr(relay, "stream", None))
                       if s is not None}.values():
            if isinstance(resolved, str) and resolved:
                # The control face asked the stream's failover resolver: its answer is the URL.
                stream.resolved_url = resolved
                stream.resolved_count = int(args.get("resolved_count", stream.resolved_count + 1))
            if 0 <= index < len(stream.urls):
                stream.failover_index = index
        if relay is None:
            return {"active_clients": 0}
        relay.request_switch(index, "manual failover")
        return {"active_clients": relay.client_count}

    async def _cmd_disconnect(self, args) -> dict:
        relay = self.relays.get(str(args.get("stream_id", "")))
        if relay is None:
            return {"closed": 0}
        return {"closed": relay.disconnect(str(args.get("client_id", "")))}

    async def _cmd_webhooks_changed(self, _args) -> dict:
        return {"webhooks": await self.hooks.reload()}


async def start(ctx):
    settings = ctx.config.sections.get("media")
    configured = settings is not None and "media" in (ctx.config.raw or {})
    if settings is None:
        settings = parse_media_config(None)
    if not settings.enabled:
        return None
    service = MediaService(ctx, settings)
    try:
        await service.start()
    except OSError as exc:
        await service.close()
        if configured:
            raise
        # No media section: the relay is on by default, but a busy default port must not stop
        # the node's other services.
        log.warning("media relay not started: cannot listen on %s (%s)",
                    settings.listen_text, exc.strerror or exc)
        return None
    return service
