"""A continuous stream in one worker: one upstream read fanned out to every viewer.

The reader task pulls bytes from the current source (an upstream HTTP response, or an FFmpeg
process for transcoded streams), cuts them into TS-aligned chunks (``TsChunker``) and pushes
them into the ``FanoutRing``, which writes them to every caught-up viewer's socket in C.  This
module only reacts to what the ring reports: a viewer whose socket filled up is watched for
writability, a dead one is closed.

Failover lives here too: a connect error, an HTTP error, the end of the stream or a stall (no
bytes for ``stallTimeout``) moves to the next of ``[url, *failover_urls]`` at once, without
closing any viewer (a stream with a ``failover_resolver_url`` asks it first and goes to its
answer, ``fastpath.media.failover_resolver``); the ring simply continues with the new source's bytes (after a clean packet
boundary, and with ``strict_live_ts`` after a PAT).  While on a backup, the primary is probed
every ``primaryRecheck`` seconds and taken back when it answers (``returnToPrimary``).

A viewer's ``200`` head waits for the stream's first bytes: a viewer of a stream that is not
flowing yet is parked until bytes come.  When every URL has been tried in a row without giving
a byte, the node says so once at WARNING (the stream and each URL's error), parked viewers get
a ``503`` before any byte, and viewers already watching are closed: a player then reports an
error or retries instead of waiting on a silent ``200`` forever.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from dataclasses import dataclass

import aiohttp

from fastpath.media import event_data, failover_resolver, transcode
from fastpath.media.fanout_ring import BLOCKED, DEAD, LIVE, FanoutRing
from fastpath.media.http_io import DETACHED, response_head, simple_response
from fastpath.media.tracking import ClientSlot, StreamSlot
from fastpath.media.ts_packets import TsChunker
from fastpath.media.upstream import UpstreamError
from fastpath.store import media_store

log = logging.getLogger("fastpath.media.live")

READ_SIZE = 256 * 1024


@dataclass(slots=True)
class Parked:
    """A viewer whose head waits for the stream's first bytes."""
    sock: socket.socket
    ident: tuple[str, str, str]
    client_id: str
    chunked: bool = False


@dataclass(slots=True)
class Viewer:
    sock: socket.socket
    fd: int
    cid: int
    client: ClientSlot
    watching: bool = False     # waiting for its socket to become writable
    chunked: bool = False      # HTTP/1.1: the body is chunked (the ring frames it)


class HttpSource:
    """An upstream HTTP response read with a stall timeout."""

    def __init__(self, resp: aiohttp.ClientResponse, stall: float):
        self.resp = resp
        self.stall = stall
        self.final_url = str(resp.url)
        self.content_type = resp.headers.get("Content-Type", "")

    async def read(self) -> bytes:
        try:
            return await asyncio.wait_for(self.resp.content.readany(), self.stall)
        except TimeoutError:
            raise UpstreamError(f"no bytes for {self.stall:g}s", "stall") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(f"read failed: {exc or type(exc).__name__}", "connect") from None

    def close(self) -> None:
        self.resp.close()


class FfmpegLog:
    """FFmpeg's stderr: into the node log, at most ``burst`` lines per ``window`` seconds (a
    broken input can print thousands), the last ``keep`` lines kept for error reports."""

    def __init__(self, stream_id: str, stderr: asyncio.StreamReader, *, keep: int = 20,
                 burst: int = 10, window: float = 10.0):
        self.stream_id = stream_id
        self.lines: deque[str] = deque(maxlen=keep)
        self.burst, self.window = burst, window
        self.window_start = 0.0
        self.logged = 0
        self.suppressed = 0
        self.task = asyncio.get_running_loop().create_task(self._read(stderr))

    async def _read(self, stderr: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stderr.readline()
            except ValueError:          # a line longer than the reader's limit
                raw = b"(an overlong line)\n"
            except (OSError, asyncio.IncompleteReadError):
                break
            if not raw:
                break
            line = raw.decode("utf-8", "replace").strip()[:300]
            if line:
                self.add(line)
        if self.suppressed:
            log.warning("stream %s: ffmpeg: %d more lines not logged", self.stream_id, self.suppressed)
            self.suppressed = 0

    def add(self, line: str) -> None:
        self.lines.append(line)
        now = time.monotonic()
        if now - self.window_start > self.window:
            if self.suppressed:
                log.warning("stream %s: ffmpeg: %d more lines not logged", self.stream_id,
                            self.suppressed)
            self.window_start, self.logged, self.suppressed = now, 0, 0
        if self.logged < self.burst:
            self.logged += 1
            log.warning("stream %s: ffmpeg: %s", self.stream_id, line)
        else:
            self.suppressed += 1

    @property
    def last(self) -> str:
        return self.lines[-1] if self.lines else ""

    async def finish(self, timeout: float = 1.0) -> None:
        """Wait (briefly) for the last lines of an exited process."""
        if not self.task.done():
            await asyncio.wait([self.task], timeout=timeout)


class FfmpegSource:
    """The stdout of an FFmpeg process transcoding the upstream (one per stream per worker).

    FFmpeg never fetches anything itself: the node opens the upstream (so the outbound rule,
    redirects and headers are the relay's own) and pipes the body into FFmpeg's stdin.  Left
    to fetch on its own, FFmpeg would resolve names, follow redirects and read HLS segments
    from wherever a playlist points, out of the rule's reach."""

    def __init__(self, proc: asyncio.subprocess.Process, resp: aiohttp.ClientResponse, first: float,
                 stall: float, stderr: FfmpegLog | None = None):
        self.proc = proc
        self.first = first
        self.stall = stall
        self.got = False
        self.final_url = str(resp.url)
        self.stderr = stderr
        self.failure: UpstreamError | None = None   # why the input ended, when it failed
        self.feeder = asyncio.get_running_loop().create_task(self._feed(resp))

    async def _feed(self, resp: aiohttp.ClientResponse) -> None:
        """Upstream body → FFmpeg's stdin, until either side ends."""
        stdin = self.proc.stdin
        first = True
        try:
            while True:
                try:
                    data = await resp.content.readany()
                except TimeoutError:
                    self.failure = UpstreamError(f"no bytes for {self.stall:g}s", "stall")
                    return
                except (aiohttp.ClientError, OSError) as exc:
                    self.failure = UpstreamError(f"read failed: {exc or type(exc).__name__}", "connect")
                    return
                if not data:
                    return
                if first and data.lstrip()[:7] == b"#EXTM3U":
                    self.failure = UpstreamError("the upstream is an HLS playlist; transcoding reads "
                                                 "a continuous stream (MPEG-TS or another container)",
                                                 "content")
                    return
                first = False
                try:
                    stdin.write(data)
                    await stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    return                      # FFmpeg exited; read() reports it
        finally:
            resp.close()
            try:
                stdin.close()
            except (OSError, RuntimeError):
                pass

    async def read(self) -> bytes:
        try:
            data = await asyncio.wait_for(self.proc.stdout.read(READ_SIZE),
                                          self.stall if self.got else self.first)
        except TimeoutError:
            raise self.failure or UpstreamError(self._why("ffmpeg produced no output in time"),
                                                "stall") from None
        self.got = self.got or bool(data)
        if not data:
            try:
                code = await asyncio.wait_for(self.proc.wait(), 2.0)
            except TimeoutError:
                code = None
            if self.stderr is not None:
                await self.stderr.finish()
            if self.failure is not None:
                raise self.failure
            raise UpstreamError(self._why(f"ffmpeg exited ({code})" if code is not None
                                          else "ffmpeg closed its output"), "ffmpeg")
        return data

    def _why(self, what: str) -> str:
        last = self.stderr.last if self.stderr is not None else ""
        return f"{what}: {last}" if last else what

    def close(self) -> None:
        if not self.feeder.done():
            self.feeder.cancel()
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass


class LiveRelay:
    kind = "direct"

    def __init__(self, svc, stream: media_store.MediaStream):
        self.svc = svc
        self.stream = stream
        self.settings = s = svc.settings
        self.loop = asyncio.get_running_loop()
        self.ring = FanoutRing(s.ring_chunks, s.ring_bytes, svc.writer, s.slow_clients, s.join_backlog)
        self.chunker = TsChunker(s.chunk_bytes)
        self.viewers: dict[int, Viewer] = {}
        self.index = stream.failover_index if 0 <= stream.failover_index < len(stream.urls) else 0
        self.slot = StreamSlot(svc.writer, stream.id, stream.kind, stream.urls[self.index], self.index)
        self.source = None
        self.sticky_url: str | None = None
        self.switch_to: int | None = None
        self.switch_reason = ""
        self.switch_mode = "manual"
        self.stopping = False
        self.started = False
        self.idle_since = time.monotonic()
        self.last_push = time.monotonic()
        self.failures = 0
        self.errors = 0
        # Attempts in a row that gave no byte, and each URL's last error: every URL failed
        # once ``dead`` reaches the number of URLs.
        self.dead = 0
        self.url_errors: dict[str, str] = {}
        self.flowing = False          # bytes came from the current source
        self.parked: dict[int, Parked] = {}
        self.switches = 0
        self.end_reason = "inactive_timeout"   # the relay ends by itself when its viewers are gone
        self.task: asyncio.Task | None = None
        self.probe_task: asyncio.Task | None = None
        self.content_type = "video/mp2t"
        if stream.kind == "transcode":
            self.profile_args = transcode.render(
                transcode.profile_template(stream.profile or "default", s.transcode_profiles,
                                           s.custom_transcode_templates) or "",
                transcode.check_variables(stream.profile_variables))
            self.content_type = transcode.content_type(self.profile_args)

    # -- viewers --------------------------------------------------------------------------------
    @property
    def client_count(self) -> int:
        return len(self.viewers)

    async def attach(self, sock: socket.socket, ident: tuple[str, str, str], client_id: str,
                     head_only: bool, chunked: bool = False) -> object:
        """Answer ``GET /stream/{id}`` and hand the socket to the ring.  ``chunked`` (an
        HTTP/1.1 request): the body goes out with ``Transfer-Encoding: chunked``, as
        m3u-proxy's streaming response does; HTTP/1.0 viewers get a body ended by the close."""
        if self.stopping:
            return False
        # Started first: a viewer that is gone before its head is sent still leaves a relay
        # that ends itself after the linger time.
        self.ensure_running()
        if head_only:
            await self.loop.sock_sendall(sock, self._head())
            return False
        if not self.flowing:
            # No bytes yet: the head waits for them (or for a 503 when every URL fails).
            fd = sock.fileno()
            self.parked[fd] = Parked(sock, ident, client_id, chunked)
            self.loop.add_reader(fd, self._on_parked_readable, fd)
            return DETACHED
        await self.loop.sock_sendall(sock, self._head(chunked))
        if self.stopping:
            return False
        return self._join(sock, ident, client_id, chunked)

    def _head(self, chunked: bool = False) -> bytes:
        headers = [("Content-Type", self.content_type), ("Cache-Control", "no-cache, no-store"),
                   ("Accept-Ranges", "none"), ("Access-Control-Allow-Origin", "*")]
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        return response_head(200, headers, keep_alive=False)

    def _on_parked_readable(self, fd: int) -> None:
        parked = self.parked.get(fd)
        if parked is None:
            return
        try:
            data = parked.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._unpark(fd).close()
            if not self.viewers and not self.parked:
                self.idle_since = time.monotonic()

    def _unpark(self, fd: int) -> socket.socket:
        parked = self.parked.pop(fd)
        self.loop.remove_reader(fd)
        return parked.sock

    async def _admit_parked(self) -> None:
        """The stream flows: every parked viewer gets its head and joins the ring."""
        heads = {False: self._head(False), True: self._head(True)}
        for fd in list(self.parked):
            parked = self.parked.get(fd)
            if parked is None:
                continue
            sock = self._unpark(fd)
            try:
                await asyncio.wait_for(self.loop.sock_sendall(sock, heads[parked.chunked]),
                                       self.settings.client_timeout)
            except (OSError, asyncio.TimeoutError):
                sock.close()
                continue
            if self.stopping:
                sock.close()
                continue
            self._join(sock, parked.ident, parked.client_id, parked.chunked)

    def _refuse_parked(self, message: str, redirect: str | None = None) -> None:
        """503 (or a 302 to ``redirect``) to every parked viewer, to whom nothing else was
        sent, then close."""
        if not self.parked:
            return
        body = (response_head(302, [("Location", redirect)], content_length=0, keep_alive=False)
                if redirect else simple_response(503, message, keep_alive=False))
        for fd in list(self.parked):
            sock = self._unpark(fd)
            try:
                sock.send(body)          # a fresh socket's buffer holds this small answer
            except OSError:
                pass
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if not self.viewers:
            self.idle_since = time.monotonic()

    def _join(self, sock: socket.socket, ident: tuple[str, str, str], client_id: str,
              chunked: bool = False) -> object:
        ip, username, agent = ident
        client = ClientSlot(self.svc.writer, self.slot, self.stream.id, client_id, ip, username, agent)
        fd = sock.fileno()
        if self.settings.viewer_send_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.settings.viewer_send_buffer)
        cid, state = self.ring.add_client(fd, client.slot, True, chunked)
        viewer = Viewer(sock, fd, cid, client, chunked=chunked)
        self.viewers[cid] = viewer
        self.loop.add_reader(fd, self._on_readable, cid)
        self.svc.events.client_up(self.stream.id, client_id, event_data.client_connected(
            client_id, ip, agent, username, len(self.viewers)))
        self._apply(cid, state)
        return DETACHED

    def _apply(self, cid: int, state: int) -> None:
        viewer = self.viewers.get(cid)
        if viewer is None:
            return
        if state == BLOCKED:
            if not viewer.watching:
                viewer.watching = True
                self.loop.add_writer(viewer.fd, self._on_writable, cid)
        elif state == LIVE:
            if viewer.watching:
                viewer.watching = False
                self.loop.remove_writer(viewer.fd)
        elif state == DEAD:
            self.drop(cid, "write failed or fell behind")

    def _on_writable(self, cid: int) -> None:
        if cid in self.viewers:
            self._apply(cid, self.ring.resume(cid))

    def _on_readable(self, cid: int) -> None:
        viewer = self.viewers.get(cid)
        if viewer is None:
            return
        try:
            data = viewer.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(cid, "viewer closed the connection")

    def drop(self, cid: int, reason: str) -> None:
        viewer = self.viewers.pop(cid, None)
        if viewer is None:
            return
        self.loop.remove_reader(viewer.fd)
        if viewer.watching:
            self.loop.remove_writer(viewer.fd)
        if viewer.chunked and self.ring.between_chunks(cid):
            # The body's last-chunk marker, so the player sees a whole response (best effort:
            # a viewer whose socket is full or gone just sees the close).
            try:
                viewer.sock.send(b"0\r\n\r\n", socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
            except OSError:
                pass
        self.ring.remove_client(cid)
        try:
            viewer.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        viewer.sock.close()
        sent = viewer.client.close()
        # A continuous stream has no segments: m3u-proxy counts none for its viewers.
        self.svc.events.client_down(self.stream.id, viewer.client.client_id,
                                    event_data.client_disconnected(viewer.client.client_id, sent, 0, reason))
        if not self.viewers and not self.parked:
            self.idle_since = time.monotonic()

    def disconnect(self, client_id: str) -> int:
        cids = [cid for cid, v in self.viewers.items() if v.client.client_id == client_id]
        for cid in cids:
            self.drop(cid, "disconnected by the operator")
        return len(cids)

    def tick(self, now: float) -> None:
        """Once a second: drop viewers stuck on a full socket for longer than the read timeout."""
        for cid in self.ring.blocked_longer_than(self.settings.read_timeout):
            self.drop(cid, "not reading")

    # -- the stream's settings changed, or the operator switched it --------------------------
    def update(self, stream: media_store.MediaStream) -> None:
        old = self.stream
        self.stream = stream
        if stream.urls != old.urls:
            self.request_switch(min(self.index, len(stream.urls) - 1), "settings changed",
                                mode="settings")

    def request_switch(self, index: int, reason: str, mode: str = "manual") -> None:
        """Move to URL ``index``: ``manual`` (the control face counted it already),
        ``recovered`` (back to the primary) or ``settings`` (the URL list changed)."""
        if not 0 <= index < len(self.stream.urls):
            return
        self.switch_to = index
        self.switch_reason = reason
        self.switch_mode = mode
        if self.source is not None:
            self.source.close()

    # -- the reader -----------------------------------------------------------------------------
    def ensure_running(self) -> None:
        if self.task is None and not self.stopping:
            self.task = self.loop.create_task(self._run())

    def current_url(self) -> str:
        return self.sticky_url or self.stream.urls[self.index]

    async def _open(self, url: str):
        s = self.settings
        headers = self.svc.upstream.headers(self.stream.user_agent, self.stream.headers)
        if self.stream.kind != "transcode":
            resp = await self.svc.upstream.open(url, headers, read_timeout=s.stall_timeout)
            return HttpSource(resp, s.stall_timeout)
        stall = max(s.stall_timeout, 5.0)
        resp = await self.svc.upstream.open(url, headers, read_timeout=stall)
        cmd = transcode.ffmpeg_command(s.ffmpeg, self.profile_args)
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            resp.close()
            raise UpstreamError(f"cannot start ffmpeg: {exc.strerror}", "connect") from None
        return FfmpegSource(proc, resp, max(s.connect_timeout, 15.0), stall,
                            FfmpegLog(self.stream.id, proc.stderr))

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("stream %s: relay failed", self.stream.id)
        finally:
            await self._end()

    async def _loop(self) -> None:
        s = self.settings
        while not self.stopping:
            if not self.viewers and not self.parked and time.monotonic() - self.idle_since > s.linger:
                return
            url = self.current_url()
            self.slot.connecting()
            got = 0
            reason = ""
            try:
                self.source = await self._open(url)
                if self.switch_to is None:
                    if self.stream.sticky and self.source.final_url and self.source.final_url != url:
                        self.sticky_url = self.source.final_url
                    while not self.stopping and self.switch_to is None:
                        data = await self.source.read()
                        if not data:
                            raise UpstreamError("upstream ended the stream", "eof")
                        if not got:
                            self._on_first_bytes()
                            if self.parked:
                                await self._admit_parked()
                        got += len(data)
                        self.slot.upstream_bytes(len(data))
                        self._feed(data)
                        if self.chunker.mode == "playlist":
                            await self._became_hls()
                            return
                        if not self.viewers and not self.parked and \
                                time.monotonic() - self.idle_since > s.linger:
                            return
            except UpstreamError as exc:
                reason = f"{exc.kind}: {exc}"
            finally:
                if self.source is not None:
                    self.source.close()
                    self.source = None
            if self.stopping:
                return
            if self.switch_to is not None:
                new, self.switch_to = self.switch_to, None
                # A manual failover through the resolver may name the index the reader is on,
                # with the resolver's new answer there.
                self._switched(new, self.switch_reason, mode=self.switch_mode,
                               url_changed=self.switch_mode == "manual" and self.stream.urls[new] != url)
                continue
            if not reason:
                continue
            await self._failed(url, reason, got)

    def _tries(self) -> int:
        """How many failures in a row try every URL once: the list's, and the resolver's
        answer when it has not given one yet."""
        s = self.stream
        return max(len(s.urls), 1) + (1 if s.failover_resolver_url and not s.resolved_url else 0)

    def _on_first_bytes(self) -> None:
        self.slot.reading()
        if self.dead >= self._tries():
            log.warning("stream %s: upstream %s serves again", self.stream.id, self.current_url())
        self.failures = 0
        self.dead = 0
        self.url_errors.clear()
        self.flowing = True
        if not self.started:
            self.started = True
            self.svc.events.stream_up(self.stream.id, event_data.stream_started(self.stream, self.current_url()))
        if (self.index != 0 and self.settings.return_to_primary
                and (self.probe_task is None or self.probe_task.done())):
            self.probe_task = self.loop.create_task(self._probe_primary())

    def _feed(self, data: bytes) -> None:
        ring = self.ring
        for chunk, flags in self.chunker.feed(data):
            self._push(chunk, flags)
        if self.chunker.pending and time.monotonic() - self.last_push >= self.settings.chunk_delay:
            for chunk, flags in self.chunker.flush():
                self._push(chunk, flags)
        if not ring.aligned and self.chunker.mode == "ts":
            ring.set_aligned(True)

    def _push(self, chunk: bytes, flags: int) -> None:
        self.last_push = time.monotonic()
        events = self.ring.push(chunk, flags)
        if events:
            for cid, state in events:
                self._apply(cid, state)

    async def _failed(self, url: str, reason: str, got: int) -> None:
        self.errors += 1
        self.failures += 1
        self.flowing = False
        self.slot.error()
        self.svc.background(media_store.add_errors, self.svc.store, self.stream.id, 1)
        log.info("stream %s: upstream %d failed (%s)", self.stream.id, self.index, reason)
        # A source that gave bytes and then broke starts a new round: every URL (the same one
        # again, for a single URL) gets a try before viewers are told.
        self.dead = self.dead + 1 if not got else 0
        self.url_errors[url] = reason
        tries = self._tries()
        if self.dead and self.dead >= tries:
            self._every_url_failed()
        if self.sticky_url is not None:
            # Sticky: the redirect target failed; go back to the URL we were given.
            self.sticky_url = None
            return
        resolved = False
        if self.stream.failover_resolver_url:
            resolved = await self._follow_resolver(reason)
            if self.stopping or self.switch_to is not None:
                return
        urls = self.stream.urls
        if not resolved and len(urls) > 1:
            # Every worker's reader sees the origin fail: the node's stored index decides who
            # counts and announces the switch, and where the others go (node_events.py).
            old = self.index
            new = (old + 1) % len(urls)
            won, stored = await self.svc.events.switch(
                self.stream.id, old, new, count=True, data=self._switch_data(old, new, reason),
                on_win=self.slot.failover)
            if not won and 0 <= stored < len(urls):
                new = stored
            if self.stopping or self.switch_to is not None:
                return
            self._switched(new, reason, mode="failed")
        if self.failures >= tries:
            if self.failures == tries:
                self.svc.hooks.emit("stream_failed", self.stream.id, event_data.stream_failed(
                    url, reason, reason.split(" ", 1)[0] or "error", self.index, len(urls) > 1))
            rounds = self.failures // max(len(urls), 1)
            await asyncio.sleep(min(0.25 * (2 ** min(rounds, 10)), self.settings.retry_backoff_max))

    async def _follow_resolver(self, reason: str) -> bool:
        """Move to the resolver's answer for the failing URL; False when it gave none (the
        caller walks ``failover_urls``)."""
        stream, old = self.stream, self.index
        old_url = stream.urls[old]
        now = await failover_resolver.follow(
            self.svc, stream, old,
            lambda moved, left: self._switch_data(old, moved.resolved_index, reason, moved, left),
            self.slot.failover)
        if now is None:
            return False
        stream.resolved_url, stream.resolved_count = now.resolved_url, now.resolved_count
        if self.stopping or self.switch_to is not None:
            return True
        new = now.failover_index if 0 <= now.failover_index < len(stream.urls) else 0
        self._switched(new, reason, mode="failed", url_changed=stream.urls[new] != old_url)
        return True

    def _every_url_failed(self) -> None:
        """Said once per outage at WARNING; parked viewers get a 503, watching ones are closed
        (each later round answers the viewers that came in the meantime)."""
        if self.dead == self._tries():
            errors = "; ".join(f"{u}: {self.url_errors.get(u, 'not tried')}" for u in self.stream.urls)
            log.warning("stream %s: every upstream URL failed (%s); closing %d viewer(s), "
                        "answering %d with 503", self.stream.id, errors, len(self.viewers),
                        len(self.parked))
        self._refuse_parked(f"stream {self.stream.id}: every upstream URL failed")
        for cid in list(self.viewers):
            self.drop(cid, "every upstream URL failed")

    def _switch_data(self, old: int, new: int, reason: str, stream: media_store.MediaStream | None = None,
                     old_url: str | None = None) -> dict:
        """``stream``: the stream as it is after the switch, when that differs from
        ``self.stream`` (a new answer of the resolver); ``old_url`` then the URL left."""
        self.switches += 1
        return event_data.failover_triggered(stream or self.stream, old, new, reason, len(self.viewers),
                                             self.stream.failover_attempts + self.switches, old_url)

    def _switched(self, new: int, reason: str, *, mode: str, url_changed: bool = False) -> None:
        """Move this worker's reader to URL ``new`` (``url_changed``: the same index, now a
        new answer of the resolver).  A ``failed`` switch was recorded and announced by
        ``_failed``; the others are recorded and announced here, once per node."""
        old = self.index
        if new == old and not url_changed:
            return
        self.index = new
        self.sticky_url = None
        # The old source's last packets go out as their own chunk, so the switch (and with
        # strict_live_ts the PAT after it) starts a chunk: a clean point in the ring.
        for chunk, flags in self.chunker.flush():
            self._push(chunk, flags)
        self.chunker.reset(self.stream.strict_live_ts)
        self.slot.set_url(self.stream.urls[new], new)
        if mode == "failed":
            return
        data = self._switch_data(old, new, reason)
        if mode == "manual":
            self.svc.events.manual_switch(self.stream.id, data, on_win=self.slot.failover)
        else:
            self.svc.events.switch_later(self.stream.id, old, new, count=False, data=data,
                                         on_win=self.slot.failover)

    async def _probe_primary(self) -> None:
        """While on a backup, try the primary now and then; switch back when it serves bytes."""
        s = self.settings
        while not self.stopping and self.index != 0:
            await asyncio.sleep(s.primary_recheck)
            if self.stopping or self.index == 0:
                return
            # A plain HTTP read of the primary, also for transcoded streams (no ffmpeg for a probe).
            headers = self.svc.upstream.headers(self.stream.user_agent, self.stream.headers)
            try:
                resp = await self.svc.upstream.open(self.stream.urls[0], headers,
                                                    read_timeout=s.stall_timeout)
                source = HttpSource(resp, s.stall_timeout)
                try:
                    data = await source.read()
                finally:
                    source.close()
            except UpstreamError:
                continue
            if data:
                self.request_switch(0, "primary recovered", mode="recovered")
                return

    async def _became_hls(self) -> None:
        """The URL serves a playlist: it is an HLS stream; viewers reconnect to it as such."""
        log.info("stream %s: upstream is an HLS playlist; switching its type", self.stream.id)
        await asyncio.to_thread(media_store.set_kind, self.svc.store, self.stream.id, "hls")
        self.stream.kind = "hls"
        self.svc.stream_kind_changed(self.stream)
        # Parked viewers were sent nothing yet: they go where the stream now is.
        self._refuse_parked("", redirect=f"/hls/{self.stream.id}/playlist.m3u8")
        self.stopping = True

    # -- the end --------------------------------------------------------------------------------
    async def stop(self, reason: str) -> None:
        self.stopping = True
        self.end_reason = reason
        self._refuse_parked(f"stream {self.stream.id}: {reason}")
        for cid in list(self.viewers):
            self.drop(cid, reason)
        if self.source is not None:
            self.source.close()
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _end(self) -> None:
        self.stopping = True
        self._refuse_parked(f"stream {self.stream.id}: the stream ended")
        for cid in list(self.viewers):
            self.drop(cid, "stream ended")
        if self.probe_task is not None:
            self.probe_task.cancel()
        self.ring.clear()
        record = self.slot.close()
        self.svc.background(media_store.fold_counts, self.svc.store, self.stream.id,
                            bytes_in=record["rx"], bytes_served=record["tx"],
                            last_access=time.time())
        if self.started:
            self.svc.events.stream_down(self.stream.id, event_data.stream_stopped(
                self.stream, self.end_reason, bytes_in=record["rx"], bytes_served=record["tx"],
                errors=self.errors))
        self.svc.relay_done(self)

