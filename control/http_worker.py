"""The control API's gunicorn worker: gunicorn's threaded worker, but a thread only ever gets a
request that has fully arrived.

Stock ``gthread`` waits for a connection's first byte on its poller, then hands the connection
to a thread that reads the headers with blocking calls and no deadline: each client that
trickles its headers holds one of the few threads, and a handful of them stop the whole API.
Here the poller (one thread, non-blocking sockets) also collects the request head, and a body
of known length, before the request is queued for a thread:

* the head must be complete within ``HEAD_DEADLINE`` seconds of the connection (or of the
  first byte of a kept-alive connection's next request), the whole request within
  ``REQUEST_DEADLINE``; a connection that misses either is closed (counted, logged at most
  once per ``DROP_LOG_INTERVAL``);
* heads over ``MAX_HEAD`` bytes are answered 431, declared bodies over ``MAX_PREREAD`` bytes 413;
* a chunked body is left to the thread, whose socket operations then time out after
  ``IO_TIMEOUT`` each (every blocking read and write does: a client that stops reading an
  answer cannot hold a thread for longer either).

Threads stay: the Falcon app reads shared memory and SQLite with blocking calls and keeps
per-thread store connections, which an event-driven (greenlet) worker would have to patch.
Idle connections cost a poller entry and a file descriptor, not a thread; ``worker_connections``
bounds how many the worker holds.
"""
from __future__ import annotations

import errno
import json
import logging
import selectors
import socket
import time
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

HEAD_DEADLINE = 10.0
REQUEST_DEADLINE = 30.0
IO_TIMEOUT = 10.0
MAX_HEAD = 64 * 1024
MAX_PREREAD = 16 * 1024 * 1024
DROP_LOG_INTERVAL = 10.0

log = logging.getLogger("fastpath.control")


class _TimedSocket(socket.socket):
    """A socket whose "blocking" mode is a per-operation timeout, so no read or write of a
    worker thread waits for a client forever."""

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(IO_TIMEOUT)
        else:
            super().setblocking(False)


class _Pending:
    """A request being collected on the poller."""

    __slots__ = ("buf", "head_by", "done_by", "need")

    def __init__(self, buf: bytes, now: float):
        self.buf = bytearray(buf)
        self.head_by = now + HEAD_DEADLINE
        self.done_by = now + REQUEST_DEADLINE
        self.need: int | None = None      # total bytes of head + body, once the head is parsed


def _body_framing(head: bytes) -> tuple[str, int]:
    """("length", n), ("chunked", 0) or ("none", 0) from a request head; malformed framing is
    left to gunicorn's parser, which answers it ("none")."""
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip().lower()
        if name == b"transfer-encoding":
            return "chunked", 0
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit() or (length is not None and int(value) != length):
                return "none", 0
            length = int(value)
    return ("length", length) if length else ("none", 0)


_REASONS = {408: "Request Timeout", 413: "Payload Too Large",
            431: "Request Header Fields Too Large"}


def _canned(status: int, message: str) -> bytes:
    """A complete error answer, small enough for one non-blocking send."""
    reason = _REASONS[status]
    body = json.dumps({"error": reason.lower(), "message": message}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


class HeadDeadlineWorker(ThreadWorker):
    """See the module docstring."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.collecting: dict = {}        # TConn -> _Pending
        self.dropped = 0
        self._drop_logged_at = 0.0

    # -- entry points: every request passes through enqueue_req on the main thread -----------
    def accept(self, listener):
        try:
            client, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        sock = _TimedSocket(fileno=client.detach())
        self.enqueue_req(TConn(self.cfg, sock, addr, listener.getsockname()))

    def enqueue_req(self, conn):
        if getattr(conn, "fp_ready", False) or self.cfg.is_ssl:
            conn.fp_ready = False
            super().enqueue_req(conn)
            return
        buffered = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        pending = _Pending(buffered, time.monotonic())
        conn.sock.setblocking(False)
        if self._advance(conn, pending):
            return
        self.collecting[conn] = pending
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    # -- collecting ---------------------------------------------------------------------------
    def _on_readable(self, conn, _fileobj):
        pending = self.collecting.get(conn)
        if pending is None:
            return
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._forget(conn)
            self._close(conn)
            return
        pending.buf += data
        if self._advance(conn, pending):
            self._forget(conn)

    def _advance(self, conn, pending: _Pending) -> bool:
        """True when the request is settled: queued for a thread, or answered and closed."""
        buf = pending.buf
        if pending.need is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._refuse(conn, 431, f"the request head is larger than {MAX_HEAD} bytes")
                    return True
                return False
            framing, length = _body_framing(bytes(buf[:end]))
            if framing == "length" and length > MAX_PREREAD:
                self._refuse(conn, 413, f"the body is larger than {MAX_PREREAD} bytes")
                return True
            pending.need = end + 4 + (length if framing == "length" else 0)
        if len(buf) < pending.need:
            return False
        self._dispatch(conn, bytes(buf))
        return True

    def _dispatch(self, conn, data: bytes) -> None:
        conn.sock.setblocking(True)
        conn.init()                      # plain HTTP: creates the parser, no I/O
        conn.parser.unreader.unread(data)
        conn.data_ready = True
        conn.fp_ready = True
        self.enqueue_req(conn)

    def _refuse(self, conn, status: int, message: str) -> None:
        try:
            conn.sock.send(_canned(status, message))
        except OSError:
            pass
        self._close(conn)

    def _forget(self, conn) -> None:
        if self.collecting.pop(conn, None) is not None:
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _close(self, conn) -> None:
        self.nr_conns -= 1
        conn.close()

    # -- deadlines (gunicorn's loop calls murder_pending about once a second) ------------------
    def murder_pending(self):
        super().murder_pending()
        if not self.collecting:
            return
        now = time.monotonic()
        late = [c for c, p in self.collecting.items()
                if now > (p.head_by if p.need is None else p.done_by)]
        for conn in late:
            pending = self.collecting[conn]
            self._forget(conn)
            if pending.buf:
                try:
                    conn.sock.send(_canned(408, "the request did not arrive in time"))
                except OSError:
                    pass
            self._close(conn)
        if late:
            self.dropped += len(late)
            if now - self._drop_logged_at >= DROP_LOG_INTERVAL:
                self._drop_logged_at = now
                log.warning("closed %d connection(s) that did not send a whole request in time "
                            "(%d since start; head deadline %.0fs, request deadline %.0fs)",
                            len(late), self.dropped, HEAD_DEADLINE, REQUEST_DEADLINE)
