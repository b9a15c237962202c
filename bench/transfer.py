"""The timed read the download benchmarks share: a request on a connected socket, then every
byte of the answer, the seconds in between (what a download's rate is measured over)."""
from __future__ import annotations

import socket
import time


def timed_read(s: socket.socket, request: bytes, size: int) -> float:
    """Sends ``request`` on ``s`` and reads ``size`` bytes; seconds from the request to the last
    byte.  A stream that ends early is an error (a short read must not pass for a fast one)."""
    start = time.perf_counter()
    s.sendall(request)
    got = 0
    buf = bytearray(1 << 20)
    while got < size:
        n = s.recv_into(buf)
        if not n:
            raise ConnectionError(f"stream ended after {got} of {size} bytes")
        got += n
    return time.perf_counter() - start
