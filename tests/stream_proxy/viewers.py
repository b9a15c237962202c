"""A continuous-stream viewer in a thread, and waiting on a condition with a deadline: what the
stream-face tests share."""
from __future__ import annotations

import http.client
import threading
import time


class Viewer(threading.Thread):
    """An IPTV player on a continuous stream: reads until the node ends it; counts bytes and keeps
    the answer's status and headers."""

    def __init__(self, url: str, headers: dict | None = None):
        super().__init__(daemon=True)
        self.url, self.headers = url, headers or {}
        self.bytes = 0
        self.status = None
        self.response_headers: dict = {}
        self.ended = threading.Event()
        self.stop = False
        self.start()

    def run(self):
        host, _, rest = self.url.removeprefix("http://").partition("/")
        conn = http.client.HTTPConnection(host, timeout=20)
        try:
            conn.request("GET", "/" + rest, headers=self.headers)
            resp = conn.getresponse()
            self.status, self.response_headers = resp.status, dict(resp.getheaders())
            while not self.stop:
                data = resp.read1(65536)
                if not data:
                    break
                self.bytes += len(data)
        except OSError:
            pass
        finally:
            conn.close()
            self.ended.set()


def wait_until(check, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")
