"""Commands between processes: length-prefixed msgpack frames over Unix sockets.

A frame is a 4-byte big-endian length and a msgpack map.  Requests are
``{"id": n, "cmd": name, "args": {...}}``; replies ``{"id": n, "ok": true, "result": ...}`` or
``{"id": n, "ok": false, "error": "..."}``.  The control API talks to the supervisor through
``CommandClient`` (blocking, with a timeout); the supervisor talks to each worker over a socket
pair with ``FrameLink`` (asyncio).
"""
from __future__ import annotations

import asyncio
import itertools
import socket
import struct
from typing import Any, Awaitable, Callable

import msgpack

MAX_FRAME = 16 * 1024 * 1024
_LEN = struct.Struct(">I")


class CommandError(Exception):
    """A command failed, timed out, or the other side is not there; the message says which."""


def encode_frame(obj: Any) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise CommandError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return _LEN.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """Next frame, or None at a clean end of stream.  A bad frame raises CommandError."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise CommandError("connection closed inside a frame header") from None
    (length,) = _LEN.unpack(head)
    if length > MAX_FRAME:
        raise CommandError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise CommandError("connection closed inside a frame") from None
    try:
        return msgpack.unpackb(body, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise CommandError(f"undecodable frame: {exc}") from None


Handler = Callable[[str, dict], Awaitable[Any]]


async def serve_requests(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         handler: Handler) -> None:
    """Answer request frames from one peer until it goes away; each request runs on its own
    so a slow command does not hold up the next."""
    lock = asyncio.Lock()

    async def answer(frame: dict) -> None:
        rid = frame.get("id")
        cmd, args = frame.get("cmd"), frame.get("args") or {}
        try:
            if not isinstance(cmd, str) or not isinstance(args, dict):
                raise CommandError("a request needs a string 'cmd' and a map 'args'")
            reply = {"id": rid, "ok": True, "result": await handler(cmd, args)}
        except CommandError as exc:
            reply = {"id": rid, "ok": False, "error": str(exc)}
        except Exception as exc:  # report, never kill the channel
            reply = {"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        async with lock:
            writer.write(encode_frame(reply))
            await writer.drain()

    tasks = set()
    try:
        while True:
            frame = await read_frame(reader)
            if frame is None:
                break
            if not isinstance(frame, dict):
                raise CommandError("a request frame must be a map")
            task = asyncio.ensure_future(answer(frame))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except (CommandError, ConnectionError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        writer.close()


class FrameLink:
    """The supervisor's end of one worker's socket pair: concurrent requests matched by id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._reader_task = asyncio.ensure_future(self._read_replies())

    async def _read_replies(self) -> None:
        try:
            while True:
                frame = await read_frame(self.reader)
                if frame is None:
                    break
                fut = self._pending.pop(frame.get("id"), None) if isinstance(frame, dict) else None
                if fut is not None and not fut.done():
                    fut.set_result(frame)
        except (CommandError, ConnectionError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(CommandError("worker went away"))
            self._pending.clear()

    @property
    def alive(self) -> bool:
        return not self._reader_task.done()

    async def call(self, cmd: str, args: dict | None = None, timeout: float = 5.0) -> Any:
        if not self.alive:
            raise CommandError("worker is not connected")
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self.writer.write(encode_frame({"id": rid, "cmd": cmd, "args": args or {}}))
        try:
            reply = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._pending.pop(rid, None)
            raise CommandError(f"{cmd}: no answer within {timeout:g}s") from None
        if not reply.get("ok"):
            raise CommandError(f"{cmd}: {reply.get('error')}")
        return reply.get("result")

    def close(self) -> None:
        self._reader_task.cancel()
        self.writer.close()


class CommandClient:
    """Blocking client of the supervisor's command socket (used by control API workers)."""

    def __init__(self, path: str, timeout: float = 5.0):
        self.path = str(path)
        self.timeout = timeout

    def call(self, cmd: str, args: dict | None = None, timeout: float | None = None) -> Any:
        timeout = self.timeout if timeout is None else timeout
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            try:
                sock.connect(self.path)
            except OSError as exc:
                raise CommandError(f"supervisor not reachable at {self.path}: {exc.strerror}") from None
            sock.sendall(encode_frame({"id": 1, "cmd": cmd, "args": args or {}}))
            head = _recv_exact(sock, 4)
            (length,) = _LEN.unpack(head)
            if length > MAX_FRAME:
                raise CommandError("oversized reply")
            reply = msgpack.unpackb(_recv_exact(sock, length), raw=False)
        except socket.timeout:
            raise CommandError(f"{cmd}: no answer from the supervisor within {timeout:g}s") from None
        finally:
            sock.close()
        if not reply.get("ok"):
            raise CommandError(reply.get("error") or f"{cmd} failed")
        return reply.get("result")


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise CommandError("supervisor closed the command connection")
        buf += chunk
    return bytes(buf)
