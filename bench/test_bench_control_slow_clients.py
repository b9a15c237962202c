"""The control API's requests per second under 300 slow clients vs none, same run (issue 18).

The control API runs as in production (``python -m fastpath.control.server``, gunicorn with the
head-deadline worker).  Four keep-alive clients in threads fetch ``/api/v1/health`` for a
window; windows alternate between no slow clients and 300 connections trickling their request
heads (a header line every 0.5 s; the worker drops them after its 10 s head deadline, so the
trickle reconnects to keep 300 open).  The ratio is the figure: close to 1 means the slow
clients cost the API almost nothing.
"""
import asyncio
import http.client
import threading
import time

import pytest

from control_proc import prepare_node, start_control_api

WINDOW = 3.0
CLIENTS = 4
SLOW = 300


@pytest.fixture(scope="module")
def control_api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slow-clients-bench")
    port, cfg_path, cfg, _store = prepare_node(tmp, 4096)
    proc = start_control_api(cfg_path, cfg.data_dir, port)
    yield port
    proc.terminate()
    proc.wait(10)


def _rps(port: int) -> float:
    stop = time.monotonic() + WINDOW
    counts = [0] * CLIENTS

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        while time.monotonic() < stop:
            conn.request("GET", "/api/v1/health")
            conn.getresponse().read()
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / WINDOW


class _Trickle:
    """Keeps SLOW connections open and trickling, reconnecting those the server drops."""

    def __init__(self, port):
        self.port, self.stop, self.open = port, threading.Event(), 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _one(self):
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            self.open += 1
            try:
                writer.write(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
                n = 0
                while not self.stop.is_set():
                    try:
                        if await asyncio.wait_for(reader.read(4096), 0.5) == b"":
                            break
                    except asyncio.TimeoutError:
                        pass
                    n += 1
                    writer.write(b"X-T-%d: a\r\n" % n)
                    await writer.drain()
            except OSError:
                pass
            finally:
                self.open -= 1
                writer.close()

    async def _main(self):
        await asyncio.gather(*(self._one() for _ in range(SLOW)))

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.open < SLOW and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


def test_requests_per_second_under_slow_clients(control_api, compare):
    quiet, slow = [], []
    for _ in range(2):                       # alternate, so drift hits both alike
        quiet.append(_rps(control_api))
        with _Trickle(control_api) as trickle:
            assert trickle.open >= SLOW * 0.95, trickle.open
            slow.append(_rps(control_api))
    q, s = max(quiet), max(slow)
    print(f"\ncontrol API /api/v1/health: {q:.0f} req/s quiet, {s:.0f} req/s under {SLOW} "
          f"slow clients (ratio {s / q:.2f}); windows {quiet} / {slow}")
    compare.record("control API health req/s, no slow clients", q, "req/s", better="higher")
    compare.record(f"control API health req/s, {SLOW} slow clients", s, "req/s",
                   baseline="control API health req/s, no slow clients", better="higher")
    assert s > 0
