"""The PasarGuard node API over REST: protobuf bodies over HTTP/1.1 + TLS (aiohttp).

An asyncio server rather than the control API's Falcon/gunicorn app: this face lives in its own
process next to its gRPC server and shares its state (started backend, log fan-out) with it,
streams logs for as long as a panel reads them, and reads chunked request bodies as they come.

Exactly what the panel's client sends: ``x-api-key`` on every request, protobuf bodies on GET
routes too, ``PUT /users/sync/chunked`` as a chunked body of ``[uvarint length][UsersChunk]``
frames.  Answers are protobuf (``application/x-protobuf``); errors are the message as plain
text with the status of ``errors.Failure``.
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from google.protobuf.message import DecodeError

from fastpath.control.pasarguard import service_pb2 as pb
from fastpath.control.pasarguard.auth import check_api_key
from fastpath.control.pasarguard.errors import FaceError, bad_request
from fastpath.control.pasarguard.users import ChunkAssembler

log = logging.getLogger("fastpath.pasarguard")

PROTOBUF = "application/x-protobuf"
MAX_BODY = 64 * 1024 * 1024     # as the panel's gRPC client allows for one message
MAX_CHUNKED_BODY = 512 * 1024 * 1024


def decode(message_class, data: bytes):
    msg = message_class()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise bad_request(f"failed to decode {message_class.DESCRIPTOR.name}: {exc}") from None
    return msg


def _error(exc: FaceError) -> web.Response:
    return web.Response(status=exc.failure.http_status, text=exc.message + "\n",
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def _proto(msg) -> web.Response:
    return web.Response(body=msg.SerializeToString(), content_type=PROTOBUF)


class RestApi:
    def __init__(self, face, logs):
        self.face = face
        self.logs = logs

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        r = app.router
        r.add_post("/start", self._call(self.start, started=False))
        r.add_put("/stop", self._call(self.stop))
        r.add_get("/info", self._call(self.info, started=False))
        r.add_get("/logs", self.logs_stream)
        r.add_get("/stats/system", self._call(self.system_stats))
        r.add_get("/stats/backend", self._call(self.backend_stats))
        r.add_get("/stats", self._call(self.stats))
        r.add_get("/stats/latency", self._call(self.latency))
        r.add_get("/stats/user/online", self._call(self.user_online))
        r.add_get("/stats/user/online_ip", self._call(self.user_online_ip))
        r.add_put("/user/sync", self._call(self.sync_user))
        r.add_put("/users/sync", self._call(self.sync_users))
        r.add_put("/users/sync/chunked", self._call(self.sync_users_chunked))
        return app

    def _call(self, handler, *, started: bool = True):
        """Key check, then (for most routes) the started check, then the handler; a FaceError
        becomes its plain-text answer."""
        async def route(request: web.Request) -> web.StreamResponse:
            try:
                check_api_key(request.headers.get("x-api-key"), self.face.settings.api_key)
                if started:
                    self.face.require_started()
                response = await handler(request)
            except FaceError as exc:
                log.debug("REST %s %s -> %d %s", request.method, request.path,
                          exc.failure.http_status, exc.message)
                return _error(exc)
            self.face.touch()
            return response
        return route

    # -- routes -----------------------------------------------------------------------------
    async def start(self, request):
        backend = decode(pb.Backend, await request.read())
        return _proto(await self.face.start(backend))

    async def stop(self, request):
        await self.face.stop()
        return _proto(pb.Empty())

    async def info(self, request):
        return _proto(self.face.info())

    async def system_stats(self, request):
        return _proto(self.face.system_stats())

    async def backend_stats(self, request):
        return _proto(await self.face.backend_stats())

    async def stats(self, request):
        return _proto(await self.face.get_stats(decode(pb.StatRequest, await request.read())))

    async def latency(self, request):
        return _proto(self.face.latency(decode(pb.LatencyRequest, await request.read())))

    async def user_online(self, request):
        return _proto(await self.face.user_online(decode(pb.StatRequest, await request.read())))

    async def user_online_ip(self, request):
        return _proto(await self.face.user_online_ips(decode(pb.StatRequest, await request.read())))

    async def sync_user(self, request):
        await self.face.sync_delta([decode(pb.User, await request.read())])
        return _proto(pb.Empty())

    async def sync_users(self, request):
        users = decode(pb.Users, await request.read())
        await self.face.sync_users(users.users)
        return _proto(pb.Empty())

    async def sync_users_chunked(self, request):
        assembler = ChunkAssembler()
        stream = request.content
        total = 0
        while True:
            size = await read_uvarint(stream)
            if size is None:
                break
            if size == 0:
                continue
            total += size
            if size > MAX_BODY or total > MAX_CHUNKED_BODY:
                raise bad_request("chunked sync too large")
            try:
                payload = await stream.readexactly(size)
            except asyncio.IncompleteReadError:
                raise bad_request("failed to read chunk payload: body ended inside a chunk") from None
            if assembler.add(decode(pb.UsersChunk, payload)):
                break
        await self.face.sync_delta(assembler.users())
        return _proto(pb.Empty())

    async def logs_stream(self, request: web.Request) -> web.StreamResponse:
        """The node's log lines, one per ``\\n``, for as long as the panel reads."""
        try:
            check_api_key(request.headers.get("x-api-key"), self.face.settings.api_key)
            self.face.require_started()
        except FaceError as exc:
            return _error(exc)
        self.face.touch()
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        with self.logs.subscribe() as sub:
            try:
                while (line := await sub.next_line()) is not None:
                    await response.write(line.encode("utf-8") + b"\n")
            except ConnectionError:
                pass
        return response


async def read_uvarint(stream) -> int | None:
    """A protobuf-style unsigned varint from an aiohttp stream; None at a clean end of body."""
    value = shift = 0
    first = True
    while True:
        try:
            byte = (await stream.readexactly(1))[0]
        except asyncio.IncompleteReadError:
            if first:
                return None
            raise bad_request("failed to read chunk length: body ended inside a length") from None
        first = False
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
        if shift >= 64:
            raise bad_request("failed to read chunk length: varint overflows 64 bits")
