"""An HLS stream in one worker: playlists rewritten through the node, segments fetched once.

Every playlist and segment goes through the worker's ``SegmentCache``: the first request for a
URL fetches it, the requests that arrive while that fetch runs wait for it (coalescing), later
ones are served from memory.  A live media playlist is kept for one target duration, so however
many viewers poll it, upstream sees one request per target duration.

URIs in served playlists are signed references (``refs.py``): relative ``playlist.m3u8?r=`` and
``segment.ts?r=`` links, so the node only ever fetches what came from this stream's own
playlists.  A variant reference also carries its slot in the master (``v2@0``: third variant of
origin 0), so after a failover a viewer asking for it is given the same variant of the backup.
With ``use_sticky_session`` a viewer keeps the exact upstream variant it started on for as long
as that answers.
"""
from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import quote

from fastpath.media import event_data, failover_resolver
from fastpath.media.http_io import response_head, simple_response
from fastpath.media.playlist import (
    PLAYLIST,
    looks_like_playlist,
    rewrite_playlist,
    segment_extension,
)
from fastpath.media.refs import BadRef
from fastpath.media.tracking import ClientSlot, StreamSlot
from fastpath.media.upstream import UpstreamError
from fastpath.store import media_store

log = logging.getLogger("fastpath.media.hls")

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MASTER_TTL = 30.0


async def coalesced(cache, key, fetch, ttl_of):
    """``(entry, shared)``: the cached body for ``key``, fetching it at most once however many
    callers ask at the same moment; ``shared`` is True when this caller did not fetch."""
    entry, pending = cache.claim(key, time.monotonic())
    if entry is not None:
        return entry, True
    if pending is not None:
        return await asyncio.shield(pending), True
    try:
        data, meta = await fetch()
    except BaseException as exc:
        cache.fail(key, exc if isinstance(exc, Exception) else UpstreamError("fetch cancelled"))
        raise
    return cache.complete(key, data, meta, ttl_of(meta), time.monotonic()), False


class HlsRelay:
    kind = "hls"

    def __init__(self, svc, stream: media_store.MediaStream):
        self.svc = svc
        self.stream = stream
        self.settings = svc.settings
        self.index = stream.failover_index if 0 <= stream.failover_index < len(stream.urls) else 0
        self.slot = StreamSlot(svc.writer, stream.id, "hls", stream.urls[self.index], self.index)
        self.slot.reading()
        self.clients: dict[str, ClientSlot] = {}
        self.sticky_url: str | None = None
        self.masters: dict[int, object] = {}     # origin index -> PlaylistInfo of its master
        self.last_request = time.monotonic()
        self.stopping = False
        self.started = False
        self.errors = 0
        self.failures = 0
        self.switches = 0
        self.resolving: asyncio.Task | None = None    # the failover resolver being asked
        svc.events.stream_up(stream.id, event_data.stream_started(stream, stream.urls[self.index]))
        self.started = True

    @property
    def client_count(self) -> int:
        return len(self.clients)

    # -- viewers --------------------------------------------------------------------------------
    def client(self, client_id: str, ident: tuple[str, str, str]) -> ClientSlot:
        self.last_request = time.monotonic()
        slot = self.clients.get(client_id)
        if slot is None:
            ip, username, agent = ident
            slot = ClientSlot(self.svc.writer, self.slot, self.stream.id, client_id, ip, username, agent)
            self.clients[client_id] = slot
            self.svc.events.client_up(self.stream.id, client_id, event_data.client_connected(
                client_id, ip, agent, username, len(self.clients)))
        else:
            slot.seen()
        return slot

    def _forget(self, client_id: str, reason: str) -> bool:
        slot = self.clients.pop(client_id, None)
        if slot is None:
            return False
        sent = slot.close()
        self.svc.events.client_down(self.stream.id, client_id, event_data.client_disconnected(
            client_id, sent, slot.packets, reason))
        return True

    def disconnect(self, client_id: str) -> int:
        return 1 if self._forget(client_id, "disconnected by the operator") else 0

    def tick(self, now: float) -> None:
        """Expire viewers idle longer than the client timeout; end the relay when none is left."""
        limit = self.settings.client_timeout
        for client_id, slot in list(self.clients.items()):
            if now - slot.last_seen > limit:
                self._forget(client_id, "idle")
        if not self.clients and now - self.last_request > max(limit, self.settings.linger):
            self.svc.loop.create_task(self.stop("inactive_timeout"))

    def update(self, stream: media_store.MediaStream) -> None:
        old = self.stream
        self.stream = stream
        if stream.urls != old.urls:
            self.index = min(self.index, len(stream.urls) - 1)
            self.masters.clear()
            self.sticky_url = None
            self.slot.set_url(stream.urls[self.index], self.index)

    def request_switch(self, index: int, reason: str) -> None:
        """A manual failover; to the resolver's slot even when on it (a new answer is there)."""
        if 0 <= index < len(self.stream.urls) and (index != self.index or index == self.stream.resolved_index):
            self._switched(index, reason, record=False)

    def _switched(self, new: int, reason: str, *, record: bool) -> None:
        """Switch at once in this worker; the store decides which worker counts and announces
        it (``node_events.py``): a compare-and-set for a failure, a claim for a manual switch."""
        old = self.index
        self._move(new)
        data = self._switch_data(old, new, reason)
        if record:
            self.svc.events.switch_later(self.stream.id, old, new, count=True, data=data,
                                         on_win=self.slot.failover)
        else:
            self.svc.events.manual_switch(self.stream.id, data, on_win=self.slot.failover)

    def _move(self, new: int) -> None:
        self.index = new
        self.sticky_url = None
        if new == self.stream.resolved_index:
            self.masters.pop(new, None)     # the resolver's slot may hold a new URL
        self.slot.set_url(self.stream.urls[new], new)

    def _switch_data(self, old: int, new: int, reason: str, stream: media_store.MediaStream | None = None,
                     old_url: str | None = None) -> dict:
        self.switches += 1
        return event_data.failover_triggered(stream or self.stream, old, new, reason, len(self.clients),
                                             self.stream.failover_attempts + self.switches, old_url)

    def _failed(self, reason: str) -> None:
        self.errors += 1
        self.failures += 1
        self.slot.error()
        self.svc.background(media_store.add_errors, self.svc.store, self.stream.id, 1)
        if self.stream.failover_resolver_url:
            # One question at a time: viewers failing together wait for the same answer.
            if self.resolving is None or self.resolving.done():
                self.resolving = self.svc.loop.create_task(self._follow_resolver(reason))
        elif len(self.stream.urls) > 1:
            self._switched((self.index + 1) % len(self.stream.urls), reason, record=True)
        if self.failures == len(self.stream.urls):
            self.svc.hooks.emit("stream_failed", self.stream.id, event_data.stream_failed(
                self.stream.urls[self.index], reason, reason.split(" ", 1)[0] or "error", self.index,
                len(self.stream.urls) > 1))

    async def _follow_resolver(self, reason: str) -> None:
        """Move to the resolver's answer for the failing URL, or walk ``failover_urls`` when it
        gave none (``failover_resolver.follow``)."""
        stream, old = self.stream, self.index
        try:
            now = await failover_resolver.follow(
                self.svc, stream, old,
                lambda moved, left: self._switch_data(old, moved.resolved_index, reason, moved, left),
                self.slot.failover)
        except Exception:       # a task of its own: nobody else would see it
            log.exception("stream %s: failover through the resolver failed", stream.id)
            now = None
        if self.stopping or self.index != old:
            return
        if now is None:
            if len(stream.urls) > 1:
                self._switched((old + 1) % len(stream.urls), reason, record=True)
            return
        stream.resolved_url, stream.resolved_count = now.resolved_url, now.resolved_count
        self._move(now.failover_index if 0 <= now.failover_index < len(stream.urls) else 0)

    async def _resolved(self) -> None:
        """Wait for the resolver's answer when one is being asked (a playlist retried after a
        failure should use it)."""
        if self.resolving is not None and not self.resolving.done():
            await asyncio.shield(self.resolving)

    # -- playlists ------------------------------------------------------------------------------
    async def playlist(self, req, sock, client: ClientSlot) -> bool:
        ref = req.query.get("r")
        target = slot = None
        origin = self.index
        if ref is not None:
            try:
                target, tag = self.svc.signer.open(self.stream.id, "p", ref)
            except BadRef as exc:
                await self.svc.send(sock, simple_response(403, str(exc), keep_alive=req.keep_alive))
                return req.keep_alive
            slot, _, origin_text = tag.rpartition("@")
            origin = int(origin_text) if origin_text.isdigit() else self.index
        try:
            text = await self._playlist_text(target, slot, origin)
        except UpstreamError as exc:
            await self.svc.send(sock, simple_response(502, f"upstream: {exc}", keep_alive=req.keep_alive))
            return req.keep_alive
        username = req.query.get("username")
        if username:
            text = text.replace("?r=", f"?username={quote(username, safe='')}&r=")
        body = text.encode("utf-8")
        head = response_head(200, [("Content-Type", PLAYLIST_TYPE), ("Cache-Control", "no-cache"),
                                   ("Access-Control-Allow-Origin", "*")],
                             content_length=len(body), keep_alive=req.keep_alive)
        await self.svc.send(sock, head if req.method == "HEAD" else head + body)
        client.seen()
        return req.keep_alive

    async def _playlist_text(self, target: str | None, slot: str | None, origin: int) -> str:
        tries = (len(self.stream.urls) + (1 if self.sticky_url else 0) + (1 if target else 0)
                 + (1 if self.stream.failover_resolver_url else 0))
        last: UpstreamError | None = None
        for _ in range(max(tries, 1)):
            url = None
            try:
                url = await self._resolve(target, slot, origin)
                entry, _shared = await coalesced(
                    self.svc.cache, ("pl", self.stream.id, self.index, url),
                    lambda u=url: self._fetch_playlist(u), self._playlist_ttl)
                self.failures = 0
                return entry.data.decode("utf-8")
            except UpstreamError as exc:
                last = exc
                if target is None and self.sticky_url is not None:
                    self.sticky_url = None
                    continue
                if target is not None and self.stream.sticky and origin >= 0 and url == target:
                    # Sticky viewer: its own variant failed; from now on the slot mapping decides.
                    kept_other = origin != self.index
                    origin = -1
                    if kept_other:
                        # It stayed on an origin the node had already left: the node's current
                        # origin is not at fault, so no failover, just the same slot there.
                        continue
                self._failed(f"{exc.kind}: {exc}")
                await self._resolved()
                if len(self.stream.urls) == 1:
                    break
        raise last or UpstreamError("no upstream")

    async def _resolve(self, target: str | None, slot: str | None, origin: int) -> str:
        """The upstream URL to fetch for a playlist request."""
        if target is None:
            return self.sticky_url or self.stream.urls[self.index]
        if origin == self.index or not slot or (self.stream.sticky and origin >= 0):
            return target
        # The viewer's variant belongs to another origin: the same slot of the current one.
        master = self.masters.get(self.index)
        if master is None:
            top = self.sticky_url or self.stream.urls[self.index]
            await coalesced(self.svc.cache, ("pl", self.stream.id, self.index, top),
                            lambda: self._fetch_playlist(top), self._playlist_ttl)
            master = self.masters.get(self.index)
        mapped = master.slot_url(slot) if master is not None else None
        return mapped or target

    async def _fetch_playlist(self, url: str):
        s = self.settings
        headers = self.svc.upstream.headers(self.stream.user_agent, self.stream.headers)
        fetched = await self.svc.upstream.fetch(url, headers, max_bytes=s.max_playlist_bytes)
        self.slot.upstream_bytes(len(fetched.body))
        if not looks_like_playlist(fetched.body):
            raise UpstreamError("upstream did not answer with an HLS playlist", "content")
        if url == self.stream.urls[self.index] and self.stream.sticky and fetched.final_url != url:
            self.sticky_url = fetched.final_url
        index = self.index
        stream_id = self.stream.id
        signer = self.svc.signer

        def make_ref(kind, absolute, slot):
            if kind == PLAYLIST:
                return f"playlist.m3u8?r={signer.make(stream_id, 'p', absolute, f'{slot}@{index}')}"
            return f"segment{segment_extension(absolute)}?r={signer.make(stream_id, 's', absolute)}"

        text, info = rewrite_playlist(fetched.body.decode("utf-8", "replace"), fetched.final_url,
                                      make_ref)
        if info.is_master:
            self.masters[index] = info
        elif info.is_live and info.segments and self.settings.hls_prefetch:
            self._prefetch(info.segments[-1])
        return text.encode("utf-8"), info

    def _prefetch(self, url: str) -> None:
        """Fetch the newest segment of a refreshed live playlist before players ask for it
        (it goes through the same claim, so it is still fetched once)."""
        key = ("seg", url)
        if key in self.svc.cache or self.svc.cache.pending(key) is not None:
            return

        async def run():
            try:
                await coalesced(self.svc.cache, ("seg", url), lambda: self._fetch_segment(url),
                                lambda _meta: self.settings.segment_cache_ttl)
            except UpstreamError:
                pass
        task = self.svc.loop.create_task(run())
        self.svc.tasks.add(task)
        task.add_done_callback(self.svc.tasks.discard)

    def _playlist_ttl(self, info) -> float:
        if info.is_master:
            return MASTER_TTL
        if info.endlist:
            return self.settings.segment_cache_ttl
        return min(max(info.target_duration or 2.0, 0.5), 10.0)

    # -- segments -------------------------------------------------------------------------------
    async def segment(self, req, sock, client: ClientSlot) -> bool:
        try:
            url, _ = self.svc.signer.open(self.stream.id, "s", req.query.get("r", ""))
        except BadRef as exc:
            await self.svc.send(sock, simple_response(403, str(exc), keep_alive=req.keep_alive))
            return req.keep_alive
        try:
            entry, shared = await coalesced(self.svc.cache, ("seg", url),
                                            lambda: self._fetch_segment(url),
                                            lambda _meta: self.settings.segment_cache_ttl)
        except UpstreamError as exc:
            if exc.kind in ("connect", "timeout") or (exc.status or 0) >= 500:
                self._failed(f"segment {exc.kind}: {exc}")
            status = 404 if exc.status in (404, 410) else 502
            await self.svc.send(sock, simple_response(status, f"upstream: {exc}", keep_alive=req.keep_alive))
            return req.keep_alive
        if shared:
            self.slot.cache_hit()
        # MPEG-TS is ``video/MP2T`` whatever the origin guessed (a ``.ts`` file is often served
        # as a Qt translation file); ``no-cache`` as m3u-proxy answers (players must not keep
        # a live segment; our own cache is on the node).
        body = entry.data
        ctype = "video/MP2T" if body[:1] == b"\x47" else (entry.meta or "application/octet-stream")
        head = response_head(200, [("Content-Type", ctype),
                                   ("Cache-Control", "no-cache"),
                                   ("Access-Control-Allow-Origin", "*")],
                             content_length=len(body), keep_alive=req.keep_alive)
        if req.method == "HEAD":
            await self.svc.send(sock, head)
            client.seen()
            return req.keep_alive
        await self.svc.send(sock, head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            await self.svc.send(sock, body)
        client.served(len(body), 1)
        return req.keep_alive

    async def _fetch_segment(self, url: str):
        headers = self.svc.upstream.headers(self.stream.user_agent, self.stream.headers)
        fetched = await self.svc.upstream.fetch(url, headers, max_bytes=self.settings.max_segment_bytes)
        self.slot.upstream_bytes(len(fetched.body))
        return fetched.body, (fetched.content_type or "video/mp2t")

    # -- the end --------------------------------------------------------------------------------
    async def stop(self, reason: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.resolving is not None:
            self.resolving.cancel()
        for client_id in list(self.clients):
            self._forget(client_id, reason)
        record = self.slot.close()
        self.svc.background(media_store.fold_counts, self.svc.store, self.stream.id,
                            bytes_in=record["rx"], bytes_served=record["tx"],
                            segments_served=record["tx_packets"], last_access=time.time())
        self.svc.events.stream_down(self.stream.id, event_data.stream_stopped(
            self.stream, reason, bytes_in=record["rx"], bytes_served=record["tx"], errors=self.errors))
        self.svc.relay_done(self)
