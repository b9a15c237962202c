"""``media.slowClients`` through a real node (README: "skip, or drop: a viewer that falls behind
the ring").  A viewer that stops reading falls behind a small ring; with ``drop`` the node
closes it, with ``skip`` it is moved forward and, once it reads again, gets live bytes on a
packet boundary.  A viewer that keeps reading is untouched by either."""
from __future__ import annotations

import socket
import time

import pytest

from fastpath.media.ts_packets import scan_packets
from tests.media.support import LiveReader, OriginProcess, media_node, register

SMALL_RING = {"ringBytes": 64 * 1024, "ringChunks": 16, "joinBacklog": "0s",
              "viewerSendBuffer": 16 * 1024}


def stalled_viewer(port: int, path: str) -> socket.socket:
    """A viewer that sends its request and then reads nothing, with buffers as small as the
    kernel allows, so it falls behind the ring within seconds."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    # HTTP/1.0: the body is the bare TS (no chunk framing), so its packets can be checked.
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    return sock


def drain(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """Read for ``seconds``; the bytes read and whether the node closed the connection."""
    sock.settimeout(0.5)
    out = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return bytes(out), True
        if not data:
            return bytes(out), True
        out += data
    return bytes(out), False


def wait_for_progress(reader: LiveReader, nbytes: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(reader.body) < nbytes and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(reader.body) >= nbytes, f"live viewer got only {len(reader.body)} bytes"


def run_policy(tmp_path, media_dir, policy: str):
    """(bytes the stalled viewer read, whether it was closed, the fast viewer's bytes)."""
    with OriginProcess(media_dir) as origin, \
            media_node(tmp_path, {"slowClients": policy, **SMALL_RING}) as node:
        sid = register(node, origin.base + f"/live/stream.ts?{policy}")
        fast = LiveReader(node.media_port, f"/stream/{sid}")
        try:
            wait_for_progress(fast, 1)
            stalled = stalled_viewer(node.media_port, f"/stream/{sid}")
            try:
                # Enough live bytes for the ring (64 KiB) and both socket buffers to overflow.
                start = len(fast.body)
                wait_for_progress(fast, start + 384 * 1024, timeout=60)
                got, closed = drain(stalled, 4)
            finally:
                stalled.close()
            assert not fast.closed, "the viewer that reads was closed"
            return got, closed, bytes(fast.body)
        finally:
            fast.close()


@pytest.mark.integration
def test_drop_closes_a_viewer_that_falls_behind(tmp_path, media_dir):
    got, closed, fast_body = run_policy(tmp_path, media_dir, "drop")
    assert closed, f"the stalled viewer is still open after reading {len(got)} bytes"
    assert got.startswith(b"HTTP/1.") and b" 200 " in got[:20], got[:80]
    assert len(got) < len(fast_body) // 2, "the stalled viewer was not behind"


@pytest.mark.integration
def test_skip_moves_a_viewer_forward_on_a_packet_boundary(tmp_path, media_dir):
    got, closed, _fast = run_policy(tmp_path, media_dir, "skip")
    assert not closed, "skip must keep the viewer"
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head[:20], head[:80]
    # What it reads after the stall is still a clean TS stream: resumed on a 188-byte packet
    # boundary after a skip, so every packet of the tail keeps its sync byte.
    tail = body[-188 * 200:]
    sync = tail.find(b"\x47")
    assert sync >= 0
    first_sync, packets, _pats, _keys, _lost = scan_packets(tail[sync:])
    assert packets > 100, packets
    assert all(tail[sync + i * 188] == 0x47 for i in range((len(tail) - sync) // 188))
