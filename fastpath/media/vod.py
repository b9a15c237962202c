"""VOD streams (films, series, timeshift): one upstream request per viewer request, with Range.

Viewers of a film seek independently, so nothing is shared: the viewer's ``Range`` goes
upstream as it is and the status, length and range headers come back as the origin sent them.
Before the first byte is sent, a failing origin is replaced by the next failover URL.  When an
origin breaks off mid-body and the length is known, the rest is asked for with a ``Range`` from
the next URL (or the same one, when there is no other), so the viewer sees one whole body.

A plain ``HEAD`` (players probe length and type before they play) is answered from what the
last full answer said (length, type, validators) for ``HEAD_TTL`` seconds; when nothing is
known yet, the HEADs arriving together share one upstream request.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time

import aiohttp

from fastpath.media.http_io import response_head, simple_response
from fastpath.media.tracking import ClientSlot, StreamSlot
from fastpath.media.upstream import UpstreamError

log = logging.getLogger("fastpath.media.vod")

_PASS_HEADERS = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges",
                 "Last-Modified", "ETag")
_RANGE = re.compile(r"^bytes=\d*-\d*(,\s*\d*-\d*)*$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
HEAD_TTL = 60.0


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    m = _CONTENT_RANGE.match((value or "").strip())
    if not m:
        return None
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total


class VodRelay:
    kind = "vod"

    def __init__(self, svc, stream):
        self.svc = svc
        self.stream = stream
        self.index = stream.failover_index if 0 <= stream.failover_index < len(stream.urls) else 0
        self.slot = StreamSlot(svc.writer, stream.id, "vod", stream.urls[self.index], self.index)
        self.active: dict[int, ClientSlot] = {}
        self.stopping = False
        self.last_used = time.monotonic()
        self.head: tuple[float, list[tuple[str, str]]] | None = None    # (expires, headers)
        self.head_pending: asyncio.Future | None = None
        self.head_upstream = 0      # HEADs that had to ask upstream

    @property
    def client_count(self) -> int:
        return len(self.active)

    def update(self, stream) -> None:
        self.stream = stream
        self.index = min(self.index, len(stream.urls) - 1)

    def request_switch(self, index: int, reason: str) -> None:
        if 0 <= index < len(self.stream.urls):
            self.index = index
            self.slot.set_url(self.stream.urls[index], index)
            self.slot.failover()

    def disconnect(self, client_id: str) -> int:
        n = 0
        for key, client in list(self.active.items()):
            if client.client_id == client_id:
                client.closed_by_operator = True
                n += 1
        return n

    def tick(self, now: float) -> None:
        if (not self.active and not self.stopping
                and now - self.last_used > self.svc.settings.linger):
            self.svc.loop.create_task(self.stop("idle"))

    def _remember(self, resp) -> None:
        """What a HEAD needs, from a full answer (200) or a range whose total is known (206)."""
        headers = resp.headers
        if resp.status == 200 and resp.content_length is not None:
            length = resp.content_length
        elif resp.status == 206 and (cr := _content_range(headers.get("Content-Range"))) and cr[2]:
            length = cr[2]
        else:
            return
        out = [(name, headers[name]) for name in ("Content-Type", "Last-Modified", "ETag")
               if name in headers]
        out += [("Content-Length", str(length)), ("Accept-Ranges", "bytes"),
                ("Access-Control-Allow-Origin", "*")]
        self.head = (time.monotonic() + HEAD_TTL, out)

    def _known_head(self) -> list[tuple[str, str]] | None:
        if self.head is not None and self.head[0] > time.monotonic():
            return self.head[1]
        return None

    async def _head(self, req, sock) -> bool:
        """A HEAD without Range: from what is known, or one upstream request shared by the
        HEADs that arrive while it runs."""
        known = self._known_head()
        if known is None:
            if self.head_pending is None:
                self.head_pending = self.svc.loop.create_future()
                try:
                    await self._head_upstream()
                finally:
                    pending, self.head_pending = self.head_pending, None
                    pending.set_result(None)
            else:
                await asyncio.shield(self.head_pending)
            known = self._known_head()
        if known is None:
            return None
        await self.svc.send(sock, response_head(200, known, keep_alive=req.keep_alive))
        return req.keep_alive

    async def _head_upstream(self) -> None:
        headers = self.svc.upstream.headers(self.stream.user_agent, self.stream.headers)
        for _ in range(len(self.stream.urls)):
            try:
                resp = await self.svc.upstream.open(self.stream.urls[self.index], headers)
            except UpstreamError:
                self.slot.error()
                if len(self.stream.urls) > 1:
                    self.request_switch((self.index + 1) % len(self.stream.urls), "HEAD failed")
                continue
            self.head_upstream += 1
            try:
                self._remember(resp)
            finally:
                resp.close()
            return

    async def serve(self, req, sock, client_id: str, ident) -> bool:
        svc = self.svc
        self.last_used = time.monotonic()
        range_header = req.header("range")
        if range_header and not _RANGE.match(range_header.strip()):
            await svc.send(sock, simple_response(416, "malformed Range header", keep_alive=False))
            return False
        if req.method == "HEAD" and not range_header:
            answered = await self._head(req, sock)
            if answered is not None:
                return answered
        extra = {"Range": range_header} if range_header else None
        headers = svc.upstream.headers(self.stream.user_agent, self.stream.headers)
        resp = None
        last = None
        for _ in range(len(self.stream.urls)):
            url = self.stream.urls[self.index]
            try:
                resp = await svc.upstream.open(url, headers, extra=extra)
                break
            except UpstreamError as exc:
                last = exc
                if exc.status == 416:
                    await svc.send(sock, simple_response(416, "range not satisfiable", keep_alive=False))
                    return False
                self.slot.error()
                if len(self.stream.urls) > 1:
                    self.request_switch((self.index + 1) % len(self.stream.urls), str(exc))
        if resp is None:
            await svc.send(sock, simple_response(502, f"upstream: {last}", keep_alive=False))
            return False
        ip, username, agent = ident
        client = ClientSlot(svc.writer, self.slot, self.stream.id, client_id, ip, username, agent)
        client.closed_by_operator = False
        key = id(client)
        self.active[key] = client
        complete = False
        try:
            self.slot.reading()
            out = [(name, resp.headers[name]) for name in _PASS_HEADERS if name in resp.headers]
            if "Accept-Ranges" not in resp.headers:
                out.append(("Accept-Ranges", "bytes"))
            out.append(("Access-Control-Allow-Origin", "*"))
            length = resp.content_length
            keep = req.keep_alive and length is not None
            self._remember(resp)
            await svc.send(sock, response_head(resp.status, out, keep_alive=keep))
            if req.method == "HEAD":
                return keep
            # Where the body starts in the file, for resuming it elsewhere.
            start = 0
            if resp.status == 206:
                cr = _content_range(resp.headers.get("Content-Range"))
                start = cr[0] if cr else -1
            elif resp.status != 200:
                start = -1
            sent = 0
            resumes = 0
            while True:
                try:
                    async for data in resp.content.iter_chunked(256 * 1024):
                        if client.closed_by_operator or self.stopping:
                            return False
                        self.slot.upstream_bytes(len(data))
                        await svc.send(sock, data)
                        sent += len(data)
                        client.served(len(data))
                    break
                except (TimeoutError, aiohttp.ClientError) as exc:
                    log.info("stream %s: VOD upstream broke off after %d bytes: %s",
                             self.stream.id, sent, exc)
                    self.slot.error()
                    if length is None or start < 0 or sent >= length or resumes >= len(self.stream.urls):
                        return False
                    resumes += 1
                    resp.close()
                    resp = await self._resume(headers, start + sent, start + length - 1)
                    if resp is None:
                        return False
            complete = length is None or sent == length
            return keep and complete
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.info("stream %s: VOD upstream broke off: %s", self.stream.id, exc)
            self.slot.error()
            return False
        finally:
            resp.close()
            self.active.pop(key, None)
            client.close()
            self.last_used = time.monotonic()

    async def _resume(self, headers, first: int, last: int):
        """The bytes ``first..last`` from the next URL (or the same, when it is the only
        one); None when no origin gives exactly them."""
        if len(self.stream.urls) > 1:
            self.request_switch((self.index + 1) % len(self.stream.urls), "broke off mid-body")
        try:
            resp = await self.svc.upstream.open(self.stream.urls[self.index], headers,
                                                extra={"Range": f"bytes={first}-{last}"})
        except UpstreamError as exc:
            log.info("stream %s: VOD resume failed: %s", self.stream.id, exc)
            return None
        cr = _content_range(resp.headers.get("Content-Range"))
        if resp.status != 206 or cr is None or cr[0] != first or cr[1] != last:
            resp.close()
            return None
        return resp

    async def stop(self, reason: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        for client in self.active.values():
            client.closed_by_operator = True
        self.slot.close()
        self.svc.relay_done(self)
