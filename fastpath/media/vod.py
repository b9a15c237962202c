"""VOD streams (films, series, timeshift): one upstream request per viewer request, with Range.

Viewers of a film seek independently, so nothing is shared: the viewer's ``Range`` goes
upstream as it is and the status, length and range headers come back as the origin sent them.
Before the first byte is sent, a failing origin is replaced by the next failover URL.
"""
from __future__ import annotations

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

    async def serve(self, req, sock, client_id: str, ident) -> bool:
        svc = self.svc
        self.last_used = time.monotonic()
        range_header = req.header("range")
        if range_header and not _RANGE.match(range_header.strip()):
            await svc.send(sock, simple_response(416, "malformed Range header", keep_alive=False))
            return False
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
            await svc.send(sock, response_head(resp.status, out, keep_alive=keep))
            if req.method == "HEAD":
                return keep
            sent = 0
            async for data in resp.content.iter_chunked(256 * 1024):
                if client.closed_by_operator or self.stopping:
                    return False
                self.slot.upstream_bytes(len(data))
                await svc.send(sock, data)
                sent += len(data)
                client.served(len(data))
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

    async def stop(self, reason: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        for client in self.active.values():
            client.closed_by_operator = True
        self.slot.close()
        self.svc.relay_done(self)
