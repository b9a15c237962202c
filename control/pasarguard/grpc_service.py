"""The PasarGuard node API over gRPC: service ``service.NodeService`` on grpcio's asyncio server.

Requests reach the handlers as raw bytes and are decoded here, so a malformed message is an
INVALID_ARGUMENT with a message (grpcio's own decoding would answer INTERNAL).  The key comes
from the ``x-api-key`` metadata; statuses follow ``errors.Failure``.

SyncUser is a client stream the panel may keep open: each user is applied as it arrives, and
the workers are told in the background (a burst shares one reload); the call returns once the
last change is enforced.
"""
from __future__ import annotations

import asyncio
import inspect
import logging

import grpc

from fastpath.control.pasarguard import service_pb2 as pb
from fastpath.control.pasarguard.auth import check_api_key
from fastpath.control.pasarguard.errors import FaceError
from fastpath.control.pasarguard.rest import decode
from fastpath.control.pasarguard.users import ChunkAssembler

log = logging.getLogger("fastpath.pasarguard")

SERVICE = "service.NodeService"
# The largest real request is a unary Start or SyncUsers that carries every user of the node:
# a user with all six proxy kinds and five inbounds is about 340 bytes, so 16 MiB holds some
# 50,000 of them beside the backend config.  A panel with more users syncs them with
# SyncUsersChunked, whose every chunk is one message under the same limit.  (It was 64 MiB,
# read in full before the key was looked at; ``ApiKeyFirst`` now checks the key first.)
MAX_MESSAGE = 16 * 1024 * 1024
# What this node sends: stats and logs, far smaller than what it accepts.
MAX_SEND = 64 * 1024 * 1024


class GrpcApi:
    def __init__(self, face, logs):
        self.face = face
        self.logs = logs

    def handler(self) -> grpc.GenericRpcHandler:
        unary = grpc.unary_unary_rpc_method_handler
        face = self.face
        methods = {
            "Start": unary(self._unary(pb.Backend, face.start, started=False)),
            "Stop": unary(self._unary(pb.Empty, self._stop)),
            "GetBaseInfo": unary(self._unary(pb.Empty, lambda _m: face.info(), started=False)),
            "GetLogs": grpc.unary_stream_rpc_method_handler(self.get_logs),
            "GetSystemStats": unary(self._unary(pb.Empty, lambda _m: face.system_stats())),
            "GetBackendStats": unary(self._unary(pb.Empty, lambda _m: face.backend_stats())),
            "GetStats": unary(self._unary(pb.StatRequest, face.get_stats)),
            "GetOutboundsLatency": unary(self._unary(pb.LatencyRequest, face.latency)),
            "GetUserOnlineStats": unary(self._unary(pb.StatRequest, face.user_online)),
            "GetUserOnlineIpListStats": unary(self._unary(pb.StatRequest, face.user_online_ips)),
            "SyncUser": grpc.stream_unary_rpc_method_handler(self.sync_user),
            "SyncUsers": unary(self._unary(pb.Users, self._sync_users)),
            "SyncUsersChunked": grpc.stream_unary_rpc_method_handler(self.sync_users_chunked),
        }
        return grpc.method_handlers_generic_handler(SERVICE, methods)

    def _admit(self, context, started: bool = True) -> None:
        check_api_key(_metadata_key(context.invocation_metadata()), self.face.settings.api_key)
        if started:
            self.face.require_started()

    def _unary(self, request_class, fn, *, started: bool = True):
        async def method(request: bytes, context) -> bytes:
            try:
                self._admit(context, started)
                result = fn(decode(request_class, request))
                if inspect.isawaitable(result):
                    result = await result
            except FaceError as exc:
                await context.abort(exc.failure.grpc_code, exc.message)
            self.face.touch()
            return result.SerializeToString()
        return method

    async def _stop(self, _msg):
        await self.face.stop()
        return pb.Empty()

    async def _sync_users(self, users):
        await self.face.sync_users(users.users)
        return pb.Empty()

    async def get_logs(self, request: bytes, context):
        try:
            self._admit(context)
            decode(pb.Empty, request)
        except FaceError as exc:
            await context.abort(exc.failure.grpc_code, exc.message)
        self.face.touch()
        with self.logs.subscribe() as sub:
            while (line := await sub.next_line()) is not None:
                yield pb.Log(detail=line).SerializeToString()

    async def sync_user(self, request_iterator, context) -> bytes:
        notices: list[asyncio.Future] = []
        updated = removed = 0
        try:
            self._admit(context)
            async for raw in request_iterator:
                u, r = await self.face.apply_delta([decode(pb.User, raw)])
                updated, removed = updated + u, removed + r
                # Forget reloads that are over and went well; a failed one stays to be raised.
                notices = [n for n in notices if not n.done() or n.exception() is not None]
                notices.append(asyncio.ensure_future(self.face.notifier.notify()))
            await asyncio.gather(*notices)
        except FaceError as exc:
            await asyncio.gather(*notices, return_exceptions=True)
            await context.abort(exc.failure.grpc_code, exc.message)
        self.face.touch()
        log.info("users changed by the panel: %d updated, %d removed", updated, removed)
        return pb.Empty().SerializeToString()

    async def sync_users_chunked(self, request_iterator, context) -> bytes:
        try:
            self._admit(context)
            assembler = ChunkAssembler()
            done = False
            async for raw in request_iterator:
                if done:
                    continue   # after the last chunk: read the stream to its end, ignore the rest
                done = assembler.add(decode(pb.UsersChunk, raw))
            await self.face.sync_delta(assembler.users())
        except FaceError as exc:
            await context.abort(exc.failure.grpc_code, exc.message)
        self.face.touch()
        return pb.Empty().SerializeToString()


def _metadata_key(metadata) -> str | None:
    key = None
    for name, value in metadata or ():
        if name == "x-api-key":
            key = value if isinstance(value, str) else value.decode("latin-1")
    return key


class ApiKeyFirst(grpc.aio.ServerInterceptor):
    """The key check before any request message is read.

    A unary handler receives its whole message before it runs, so a caller without the key
    could make the node take in a full-size message first.  This interceptor sees only the
    method and metadata; for a bad key it answers with a handler that never reads the request
    (a stream handler whose iterator is never started), so nothing beyond HTTP/2's flow
    control window is accepted from a caller that has no key.  The handlers still check the
    key themselves (a key the panel changes is read from the settings at every call)."""

    def __init__(self, face):
        self.face = face

    async def intercept_service(self, continuation, handler_call_details):
        try:
            check_api_key(_metadata_key(handler_call_details.invocation_metadata),
                          self.face.settings.api_key)
        except FaceError as exc:
            failure, message = exc.failure, exc.message

            async def refuse(_request_iterator, context):
                await context.abort(failure.grpc_code, message)
            return grpc.stream_unary_rpc_method_handler(refuse)
        return await continuation(handler_call_details)


def server_options() -> list[tuple[str, int]]:
    return [("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_SEND),
            ("grpc.so_reuseport", 0)]
