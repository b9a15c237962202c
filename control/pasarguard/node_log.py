"""The node's own log lines for the panel's log stream.

Every process of the node appends its log lines to ``<dataDir>/node.log`` (fastpath.node_log).
The face tails that file once and fans each
line out to every subscriber: each gets the recent history first, then every new line, in
order.  A subscriber that falls more than ``queue_size`` lines behind loses its oldest lines
and is told how many, so one stuck panel never holds up the others or the node.
"""
from __future__ import annotations

import asyncio
import collections
import os
from pathlib import Path

from fastpath.node_log import log_to_node_file, node_log_path  # noqa: F401  (re-exported)

class Subscription:
    def __init__(self, fanout: "LogFanout", queue_size: int):
        self.fanout = fanout
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.dropped = 0
        self.ended = False
        self._ender: asyncio.Future | None = None

    def offer(self, line: str) -> None:
        if self.queue.full():
            try:
                self.queue.get_nowait()
            except asyncio.QueueEmpty:
                pass
            self.dropped += 1
        self.queue.put_nowait(line)

    async def next_line(self) -> str | None:
        """The next line; None once the node shuts down (end the stream)."""
        if self.ended:
            return None
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            return f"[fastpath: {dropped} log line(s) dropped: the reader fell behind]"
        if self._ender is None:
            self._ender = asyncio.get_running_loop().create_future()
        getter = asyncio.ensure_future(self.queue.get())
        await asyncio.wait((getter, self._ender), return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        return None

    def end(self) -> None:
        self.ended = True
        if self._ender is not None and not self._ender.done():
            self._ender.set_result(None)

    def close(self) -> None:
        self.fanout.subscribers.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LogFanout:
    def __init__(self, path: Path, *, history: int = 100, queue_size: int = 10000,
                 poll_seconds: float = 0.1):
        self.path = Path(path)
        self.history: collections.deque[str] = collections.deque(maxlen=history)
        self.queue_size = queue_size
        self.poll_seconds = poll_seconds
        self.subscribers: set[Subscription] = set()
        self._file = None
        self._inode = None
        self._partial = b""

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self.queue_size)
        for line in self.history:
            sub.offer(line)
        self.subscribers.add(sub)
        return sub

    # -- tailing ----------------------------------------------------------------------------
    def _open(self, from_end: bool) -> bool:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return False
        if self._file is not None:
            self._file.close()
        self._file = f
        self._inode = os.fstat(f.fileno()).st_ino
        self._partial = b""
        if from_end:
            # Seed the history with the last lines already there.
            size = os.fstat(f.fileno()).st_size
            start = max(0, size - 64 * 1024)
            f.seek(start)
            tail = f.read()
            lines = tail.split(b"\n")
            if start > 0:
                lines = lines[1:]   # the first one is cut
            self._partial = lines.pop() if lines else b""
            for raw in lines[-self.history.maxlen:]:
                if raw.strip():
                    self.history.append(raw.decode("utf-8", "replace").rstrip("\r"))
        return True

    def poll(self) -> int:
        """Read what was appended since the last call; returns the number of new lines."""
        if self._file is None:
            if not self._open(from_end=True):
                return 0
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_ino != self._inode or st.st_size < self._file.tell()):
            # Rotated or truncated: finish the old file, then read the new one from its start.
            count = self._read_new()
            self._open(from_end=False)
            return count + self._read_new()
        return self._read_new()

    def _read_new(self) -> int:
        data = self._file.read()
        if not data:
            return 0
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        count = 0
        for raw in lines:
            if not raw.strip():
                continue
            line = raw.decode("utf-8", "replace").rstrip("\r")
            self.history.append(line)
            for sub in list(self.subscribers):
                sub.offer(line)
            count += 1
        return count

    async def run(self) -> None:
        while True:
            try:
                self.poll()
            except OSError:
                pass
            await asyncio.sleep(self.poll_seconds)

    def end_streams(self) -> None:
        """Shutting down: every subscriber's stream ends after the lines it already has."""
        for sub in list(self.subscribers):
            sub.end()

    def close(self) -> None:
        self.end_streams()
        if self._file is not None:
            self._file.close()
            self._file = None
