"""The data plane's HTTP/1.1 server: raw non-blocking sockets on the worker's event loop.

Requests are small (GET/HEAD, no bodies), so the parser is a few lines of Python.  Responses
of HLS requests are written with ``loop.sock_sendall``; a live viewer's socket is handed to the
fan-out ring (``DETACHED``), which writes to it directly.  That hand-over is why this is not an
asyncio transport server: a transport owns its socket and buffers on its own, where the ring
needs the file descriptor to send the shared chunk without a copy or a Python call per viewer.
Every worker binds the port with ``SO_REUSEPORT``; the kernel spreads connections over them.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger("fastpath.media.http")

MAX_HEAD = 16 * 1024
MAX_HEADERS = 100
DETACHED = object()

REASONS = {200: "OK", 204: "No Content", 206: "Partial Content", 301: "Moved Permanently",
           302: "Found", 304: "Not Modified", 400: "Bad Request", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           411: "Length Required", 413: "Payload Too Large", 414: "URI Too Long",
           416: "Range Not Satisfiable", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout", 505: "HTTP Version Not Supported"}

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Request:
    method: str
    target: str
    path: str
    query: dict[str, str]
    version: str
    headers: dict[str, str]
    peer: str = ""
    keep_alive: bool = True
    extra: dict = field(default_factory=dict)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


def parse_head(head: bytes, peer: str = "") -> Request:
    """Parse a request line and headers (``head`` ends at the blank line).  Raises BadRequest
    with the status to answer; never anything else."""
    if len(head) > MAX_HEAD:
        raise BadRequest(431, "request head too large")
    text = head.decode("latin-1")
    lines = text.split("\n")
    request_line = lines[0].rstrip("\r")
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if not method or not all(c in _TOKEN for c in method):
        raise BadRequest(400, "malformed method")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if version.startswith("HTTP/"):
            raise BadRequest(505, "only HTTP/1.0 and HTTP/1.1 are served")
        raise BadRequest(400, "malformed request line")
    if not target or len(target) > 8192 or any(ord(c) < 33 or ord(c) > 126 for c in target):
        raise BadRequest(400 if len(target) <= 8192 else 414, "malformed request target")
    headers: dict[str, str] = {}
    count = 0
    for raw in lines[1:]:
        line = raw.rstrip("\r")
        if not line:
            continue
        if line[0] in " \t":
            raise BadRequest(400, "folded header lines are not accepted")
        name, sep, value = line.partition(":")
        if not sep or not name or not all(c in _TOKEN for c in name):
            raise BadRequest(400, "malformed header line")
        count += 1
        if count > MAX_HEADERS:
            raise BadRequest(431, "too many headers")
        key = name.lower()
        value = value.strip(" \t")
        if key in headers:
            headers[key] = headers[key] + ", " + value
        else:
            headers[key] = value
    if target.startswith("/"):
        raw_path, _, raw_query = target.partition("?")
    elif target.startswith(("http://", "https://")):
        try:
            split = urlsplit(target)
        except ValueError:
            raise BadRequest(400, "malformed request target") from None
        raw_path, raw_query = split.path or "/", split.query
    elif target == "*" and method == "OPTIONS":
        raw_path, raw_query = "*", ""
    else:
        raise BadRequest(400, "malformed request target")
    raw_path = raw_path.partition("#")[0]
    path = unquote(raw_path, errors="replace")
    query: dict[str, str] = {}
    try:
        for k, v in parse_qsl(raw_query, keep_blank_values=True, max_num_fields=64):
            query.setdefault(k, v)
    except ValueError:
        raise BadRequest(400, "too many query parameters") from None
    conn = headers.get("connection", "").lower()
    if version == "HTTP/1.1":
        keep_alive = "close" not in conn
    else:
        keep_alive = "keep-alive" in conn
    return Request(method=method, target=target, path=path, query=query, version=version,
                   headers=headers, peer=peer, keep_alive=keep_alive)


def response_head(status: int, headers: list[tuple[str, str]] | None = None, *,
                  content_length: int | None = None, keep_alive: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    for name, value in headers or ():
        lines.append(f"{name}: {value}")
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def simple_response(status: int, message: str, *, keep_alive: bool = True, head_only: bool = False,
                    extra: list[tuple[str, str]] | None = None) -> bytes:
    """A small JSON error/info body: ``{"error": reason, "message": ...}``."""
    import json
    body = json.dumps({"error": REASONS.get(status, "error").lower(), "message": message}).encode()
    head = response_head(status, [("Content-Type", "application/json"),
                                  ("Cache-Control", "no-store"),
                                  ("Access-Control-Allow-Origin", "*"), *(extra or [])],
                         content_length=len(body), keep_alive=keep_alive)
    return head if head_only else head + body


Handler = Callable[[Request, socket.socket], Awaitable[object]]


class HttpServer:
    """Accepts on ``host:port`` (SO_REUSEPORT) and runs ``handler(request, sock)`` per request.
    The handler writes the response itself and returns True (keep the connection), False
    (close it) or ``DETACHED`` (it owns the socket now)."""

    def __init__(self, host: str, port: int, handler: Handler, *, idle_timeout: float = 30.0,
                 head_timeout: float = 10.0, backlog: int = 2048):
        self.host, self.port = host, port
        self.handler = handler
        self.idle_timeout = idle_timeout
        self.head_timeout = head_timeout
        self.backlog = backlog
        self.sock: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connections: set[asyncio.Task] = set()
        self.accepted = 0

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, self.port))
            sock.listen(self.backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.loop.add_reader(sock.fileno(), self._on_accept)

    def _on_accept(self) -> None:
        for _ in range(128):
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                return
            conn.setblocking(False)
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            self.accepted += 1
            task = self.loop.create_task(self._serve(conn, addr[0] if addr else ""))
            self.connections.add(task)
            task.add_done_callback(self.connections.discard)

    async def _serve(self, conn: socket.socket, peer: str) -> None:
        loop = self.loop
        buf = bytearray()
        detached = False
        first = True
        try:
            while True:
                head = await self._read_head(conn, buf, self.head_timeout if first else self.idle_timeout)
                first = False
                if head is None:
                    return
                try:
                    req = parse_head(head, peer)
                except BadRequest as exc:
                    await loop.sock_sendall(conn, simple_response(exc.status, exc.message, keep_alive=False))
                    return
                if req.headers.get("transfer-encoding") or req.headers.get("content-length", "0") not in ("", "0"):
                    await loop.sock_sendall(conn, simple_response(
                        413, "request bodies are not accepted here", keep_alive=False))
                    return
                try:
                    result = await self.handler(req, conn)
                except (ConnectionError, OSError):
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("error serving %s %s", req.method, req.path)
                    try:
                        await loop.sock_sendall(conn, simple_response(
                            500, "the node failed to serve this request", keep_alive=False))
                    except OSError:
                        pass
                    return
                if result is DETACHED:
                    detached = True
                    return
                if not result or not req.keep_alive:
                    return
        except (ConnectionError, OSError, BadRequest):
            return
        finally:
            if not detached:
                conn.close()

    async def _read_head(self, conn: socket.socket, buf: bytearray, timeout: float) -> bytes | None:
        """The next request head, or None (closed, too large, or late).  ``timeout`` bounds the
        whole head, not each read: a client trickling header lines is dropped on time."""
        deadline = self.loop.time() + timeout
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(buf[:end])
                del buf[:end + 4]
                return head
            end = buf.find(b"\n\n")
            if end >= 0:
                head = bytes(buf[:end])
                del buf[:end + 2]
                return head
            if len(buf) > MAX_HEAD:
                await self.loop.sock_sendall(conn, simple_response(431, "request head too large",
                                                                   keep_alive=False))
                return None
            try:
                remaining = deadline - self.loop.time()
                if remaining <= 0:
                    return None
                data = await asyncio.wait_for(self.loop.sock_recv(conn, 65536), remaining)
            except TimeoutError:
                return None
            if not data:
                return None
            buf += data

    async def close(self) -> None:
        if self.sock is not None:
            try:
                self.loop.remove_reader(self.sock.fileno())
            except (ValueError, OSError):
                pass
            self.sock.close()
            self.sock = None
        for task in list(self.connections):
            task.cancel()
        if self.connections:
            await asyncio.gather(*self.connections, return_exceptions=True)
