"""Processes of the media benchmark, each its own process as in real use.

    python bench/media_procs.py plain-fanout UPSTREAM     # asyncio server: one upstream read,
                                                          # every chunk written to every viewer
    python bench/media_procs.py per-client UPSTREAM       # asyncio server: one upstream
                                                          # connection per viewer, piped
    python bench/media_procs.py live-load URL N SECONDS   # N viewers; prints JSON bytes per viewer
    python bench/media_procs.py get-load URL CONNS SECONDS  # keep-alive GET loop; JSON requests

Servers print their port on the first line of stdout and run until killed.  The baselines are
deliberately plain (``transport.write`` per viewer per chunk, no ring, no slow-viewer policy, no
counters): what serving the same bytes costs without the node's fan-out machinery.
"""
from __future__ import annotations

import asyncio
import json
import selectors
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n"


async def _open_upstream(url: str):
    u = urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port or 80, limit=1 << 20)
    path = u.path + (f"?{u.query}" if u.query else "")
    # HTTP/1.0: the origin answers with a plain body, not chunked framing.
    writer.write(f"GET {path} HTTP/1.0\r\nHost: {u.netloc}\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def _read_request(reader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def plain_fanout(upstream: str) -> None:
    viewers: set[asyncio.StreamWriter] = set()

    async def pump():
        reader, _ = await _open_upstream(upstream)
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for w in list(viewers):
                if w.is_closing():
                    viewers.discard(w)
                else:
                    w.write(data)

    async def handle(reader, writer):
        await _read_request(reader)
        writer.write(HEAD)
        viewers.add(writer)
        try:
            await reader.read()
        finally:
            viewers.discard(writer)
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    task = asyncio.ensure_future(pump())      # (held: the loop keeps only weak references)
    await asyncio.Event().wait()
    task.cancel()


async def per_client(upstream: str) -> None:
    async def handle(reader, writer):
        up_writer = None
        try:
            await _read_request(reader)
            writer.write(HEAD)
            up_reader, up_writer = await _open_upstream(upstream)
            while True:
                data = await up_reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, RuntimeError, asyncio.IncompleteReadError):
            pass
        finally:
            if up_writer is not None:
                up_writer.close()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


def live_load(url: str, n: int, seconds: float) -> None:
    """N viewers on raw sockets in one epoll loop; bytes each received in the last
    ``seconds`` (after a warm-up of 1.5 s)."""
    u = urlsplit(url)
    sel = selectors.DefaultSelector()
    socks = []
    request = f"GET {u.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    for i in range(n):
        s = socket.create_connection((u.hostname, u.port))
        s.sendall(request)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        socks.append(s)
    got = [0] * n
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    warm = time.monotonic() + 1.5
    end = warm + seconds
    counting = False
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if not counting and now >= warm:
            counting = True
            got = [0] * n
            print("counting", flush=True)
        for key, _ in sel.select(0.2):
            try:
                k = key.fileobj.recv_into(view)
            except BlockingIOError:
                continue
            except OSError:
                k = 0
            if k == 0:
                sel.unregister(key.fileobj)
                continue
            got[key.data] += k
    for s in socks:
        s.close()
    print(json.dumps({"bytes": got, "seconds": seconds}))


def get_load(url: str, conns: int, seconds: float) -> None:
    """``conns`` keep-alive connections each GETting ``url`` in a loop; requests completed."""
    u = urlsplit(url)
    target = u.path + (f"?{u.query}" if u.query else "")
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    state = {}
    for i in range(conns):
        s = socket.create_connection((u.hostname, u.port))
        s.setblocking(False)
        s.send(request)
        state[s] = [bytearray(), None]
        sel.register(s, selectors.EVENT_READ)
    done = 0
    errors = 0
    buf = bytearray(1 << 20)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(0.2):
            s = key.fileobj
            try:
                k = s.recv_into(buf)
            except BlockingIOError:
                continue
            if k == 0:
                sel.unregister(s)
                continue
            st = state[s]
            if st[1] is None:
                st[0] += buf[:k]
                head_end = st[0].find(b"\r\n\r\n")
                if head_end < 0:
                    continue
                head = bytes(st[0][:head_end]).lower()
                if not head.startswith(b"http/1.1 200"):
                    errors += 1
                length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
                st[1] = length - (len(st[0]) - head_end - 4)
                st[0] = bytearray()
            else:
                st[1] -= k
            if st[1] <= 0:
                done += 1
                st[1] = None
                s.send(request)
    print(json.dumps({"requests": done, "errors": errors, "seconds": seconds}))


if __name__ == "__main__":
    what = sys.argv[1]
    if what in ("plain-fanout", "per-client"):
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        asyncio.run((plain_fanout if what == "plain-fanout" else per_client)(sys.argv[2]))
    elif what == "live-load":
        live_load(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif what == "get-load":
        get_load(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
