"""Test plumbing for the media relay: origin processes, stream registration, a webhook receiver,
raw HTTP clients of the data plane."""
from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fastpath.store import StateStore, media_store
from fastpath.supervisor.command_channel import CommandClient
from tests.support.node import NodeProcess, free_tcp_port, http

ROOT = Path(__file__).resolve().parents[2]
# The test origins and receivers listen on loopback, which a node refuses as an upstream
# unless the config lets it through (``media.allowUpstreamNetworks``).
LOOPBACK_UPSTREAMS = ["127.0.0.0/8", "::1/128"]


class OriginProcess:
    """``tests/media/origin.py`` on a free loopback port (``host``: another loopback address,
    such as 127.0.0.2, to tell it apart from the node's own)."""

    def __init__(self, media: Path, port: int | None = None, host: str = "127.0.0.1"):
        self.media = media
        self.port = port or free_tcp_port()
        self.host = host
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> OriginProcess:
        env = dict(os.environ, ORIGIN_QUIET="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.media.origin", str(self.media),
                                      str(self.port), self.host], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                self.stats()
                return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("origin did not start")

    def stats(self) -> dict:
        with urllib.request.urlopen(self.base + "/stats", timeout=2) as r:
            return json.loads(r.read())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()


def media_node(tmp_path: Path, media: dict | None = None, workers: int = 1) -> NodeProcess:
    """A node whose media relay listens on a free loopback port (``node.media_port``)."""
    port = free_tcp_port()
    section = {"listen": f"127.0.0.1:{port}", "stallTimeout": "1s", "lingerTimeout": "2s",
               "primaryRecheck": "2s", "allowUpstreamNetworks": LOOPBACK_UPSTREAMS}
    section.update(media or {})
    node = NodeProcess(tmp_path, {"media": section}, workers=workers)
    node.media_port = port
    node.media_base = f"http://127.0.0.1:{port}"
    return node


def register(node: NodeProcess, url: str, kind: str | None = None, *, via: str = "store",
             **fields) -> str:
    """Register a stream as the control face does: write it to the store and tell the workers
    (``via="store"``, needs nothing but the data plane), or through the control face's
    ``POST /streams`` (``via="api"``)."""
    if via == "api":
        body = {"url": url, **{k: v for k, v in fields.items() if k in (
            "failover_urls", "user_agent", "headers", "strict_live_ts", "metadata")}}
        if "sticky" in fields:
            body["use_sticky_session"] = fields["sticky"]
        r = node.post("/streams", body)
        assert r.status in (200, 201), r.body
        return r.json()["stream_id"]
    if kind is None:
        kind = "hls" if ".m3u8" in url else ("vod" if "/movie/" in url else "direct")
    store = StateStore(node.data_dir / "state.db")
    try:
        stream, _ = media_store.put_stream(store, media_store.MediaStream(
            id="", url=url, kind=kind, **fields))
    finally:
        close = getattr(store, "close", None)
        if close:
            close()
    results = command(node, "media_streams_changed")
    assert all(isinstance(r, dict) and r.get("streams", 0) >= 1 for r in results), results
    return stream.id


def delete(node: NodeProcess, stream_id: str) -> list:
    store = StateStore(node.data_dir / "state.db")
    media_store.delete_stream(store, stream_id)
    return command(node, "media_streams_changed")


def add_webhook(node: NodeProcess, url: str, events: list[str], **kw) -> list:
    store = StateStore(node.data_dir / "state.db")
    media_store.put_webhook(store, media_store.Webhook(url=url, events=events, **kw))
    return command(node, "media_webhooks_changed")


def command(node: NodeProcess, name: str, args: dict | None = None) -> list:
    client = CommandClient(str(node.data_dir / "control.sock"))
    return client.call("broadcast", {"cmd": name, "args": args or {}, "timeout": 5}, timeout=10)


def media_get(node: NodeProcess, path: str, headers: dict | None = None, timeout: float = 10):
    return http("GET", node.media_base + path, headers=headers, timeout=timeout)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256      # a burst of deliveries must not meet SYN drops
    daemon_threads = True


class WebhookReceiver:
    """A local HTTP server that records every JSON body POSTed to it."""

    def __init__(self, status: int = 200):
        self.events: list[dict] = []
        self.status = status
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.events.append({"body": json.loads(body), "headers": dict(self.headers),
                                            "at": time.monotonic()})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def of_type(self, event_type: str) -> list[dict]:
        with self.lock:
            return [e["body"] for e in self.events if e["body"]["event_type"] == event_type]

    def wait_for(self, event_type: str, timeout: float = 10.0, count: int = 1) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of_type(event_type)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {event_type} webhook within {timeout}s; got "
                             f"{[e['body']['event_type'] for e in self.events]}")


class LiveReader:
    """A viewer of ``/stream/{id}`` on a raw socket, reading in a thread; records the time of
    every read so gaps can be measured."""

    def __init__(self, port: int, path: str, rcvbuf: int | None = None, read_size: int = 65536,
                 delay: float = 0.0, headers: dict | None = None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        self.head = b""
        self.body = bytearray()
        self.times: list[tuple[float, int]] = []
        self.read_size, self.delay = read_size, delay
        self.stop = threading.Event()
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        buf = b""
        while not self.stop.is_set():
            try:
                data = self.sock.recv(self.read_size)
            except OSError:
                break
            if not data:
                break
            if not self.head:
                buf += data
                if b"\r\n\r\n" in buf:
                    self.head, _, rest = buf.partition(b"\r\n\r\n")
                    self.chunked = b"transfer-encoding: chunked" in self.head.lower()
                    self._take(rest)
                    self.times.append((time.monotonic(), len(rest)))
                continue
            self._take(data)
            self.times.append((time.monotonic(), len(data)))
            if self.delay:
                time.sleep(self.delay)
        self.closed = True

    chunked = False
    ended = False               # a chunked body's last-chunk marker arrived
    framing_error: str | None = None
    _pending = b""

    def _take(self, data: bytes) -> None:
        """Body bytes as sent; ``body`` gets the media (a chunked body decoded strictly)."""
        if not self.chunked:
            self.body += data
            return
        buf = self._pending + data
        pos = 0
        while not self.ended and self.framing_error is None:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                break
            try:
                size = int(buf[pos:end], 16)
            except ValueError:
                self.framing_error = f"bad chunk size line {buf[pos:end][:20]!r}"
                break
            if len(buf) < end + 4 + size:
                break
            if buf[end + 2 + size:end + 4 + size] != b"\r\n":
                self.framing_error = "chunk not followed by CRLF"
                break
            if size == 0:
                self.ended = True
            self.body += buf[end + 2:end + 2 + size]
            pos = end + 4 + size
        self._pending = buf[pos:]

    def max_gap(self, since: float = 0.0) -> float:
        ts = [t for t, _ in self.times if t >= since]
        return max((b - a for a, b in itertools.pairwise(ts)), default=float("inf"))

    def close(self):
        self.stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(2)
