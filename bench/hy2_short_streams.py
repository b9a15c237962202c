"""Short streams per second through ``fastpath serve``, driven so the server is the limit: each
one a local TCP connection to the official client's TCP forward (so one new Hysteria 2 stream on
its one QUIC connection, a TCP dial by the node to an echo target), 32 bytes echoed, closed.

The official client is compiled Go and the driver here keeps ``CONCURRENCY`` of them in flight
from one selector loop, so the figure is the node's worker; beside the rate, the worker's CPU µs
per stream.

    python bench/hy2_short_streams.py profile [SECONDS] [ENV=VALUE ...]   # py-spy --native
    python bench/hy2_short_streams.py rate [ENV=VALUE ...]
"""
from __future__ import annotations

import errno
import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import hy2_peers as peers  # noqa: E402
from hy2_udp_relay import Echo  # noqa: E402
from tests.support.node import free_tcp_port  # noqa: E402

CONCURRENCY = int(os.environ.get("HY2_SHORT_CONCURRENCY", "32"))
SECONDS = float(os.environ.get("HY2_SHORT_SECONDS", "3"))
PAYLOAD = b"s" * 32


class ShortStreamSetup:
    """A node (with ``env``) and the official client forwarding a TCP port to an echo process."""

    def __init__(self, workdir: Path, echo_port: int, env: dict | None = None, tag: str = "",
                 python: str | None = None):
        workdir.mkdir(parents=True, exist_ok=True)
        self.server = peers.FastpathServer(workdir, env=env, python=python)
        self.worker = peers.worker_pid(self.server.pid)
        self.port = free_tcp_port()
        config = {"server": self.server.address, "auth": self.server.password,
                  "tls": {"insecure": True}, "fastOpen": False, "lazy": False,
                  "tcpForwarding": [{"listen": f"127.0.0.1:{self.port}",
                                     "remote": f"127.0.0.1:{echo_port}"}]}
        self.client = peers.Peer(f"short-client{tag}", workdir)
        self.client._spawn([sys.executable, "-c", peers.STOCK_RUNNER, json.dumps(config)])
        peers.wait_tcp(self.port, self.client.proc, "official client")
        for _ in range(20):
            if streams(self.port, 0.2)[0]:
                break
            time.sleep(0.2)

    def worker_cpu(self) -> float:
        fields = peers._stat_fields(self.worker)
        return (int(fields[11]) + int(fields[12])) / peers.CLK_TCK

    def measure(self, seconds: float = SECONDS) -> dict:
        cpu0 = self.worker_cpu()
        done, failed, elapsed = streams(self.port, seconds)
        cpu = self.worker_cpu() - cpu0
        # The busiest process under load is the worker (at start-up another tree's control
        # API may have used more CPU than its idle worker).
        self.worker = peers.worker_pid(self.server.pid)
        return {"streams_per_s": done / elapsed, "streams": done, "failed": failed,
                "cpu_us_per_stream": cpu / done * 1e6 if done else float("nan")}

    def close(self) -> None:
        self.client.close()
        self.server.close()


def streams(port: int, seconds: float, concurrency: int = CONCURRENCY) -> tuple[int, int, float]:
    """Short echo streams through 127.0.0.1:port, ``concurrency`` at a time, for ``seconds``:
    (completed, failed, elapsed)."""
    sel = selectors.DefaultSelector()
    done = failed = 0
    start = time.perf_counter()
    end = start + seconds

    def open_one():
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            return False
        sel.register(s, selectors.EVENT_WRITE, [b""])
        return True

    for _ in range(concurrency):
        open_one()
    while sel.get_map():
        for key, ev in sel.select(1.0):
            s, state = key.fileobj, key.data
            try:
                if ev & selectors.EVENT_WRITE and not state[0]:
                    s.send(PAYLOAD)
                    state[0] = b"sent"
                    sel.modify(s, selectors.EVENT_READ, state)
                    continue
                data = s.recv(64)
            except OSError:
                data = None
            if data:
                state.append(data)
                if sum(len(x) for x in state[1:]) < len(PAYLOAD):
                    continue
                done += 1
            else:
                failed += 1
            sel.unregister(s)
            s.close()
            if time.perf_counter() < end:
                open_one()
        if time.perf_counter() > end + 10:
            break
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    return done, failed, time.perf_counter() - start


def profile(seconds: int, env: dict) -> None:
    from hy2_profile import summarize
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    echo = Echo()
    with tempfile.TemporaryDirectory(prefix="hy2-short-prof-") as d:
        setup = ShortStreamSetup(Path(d), echo.tcp, env)
        try:
            setup.measure(1.0)
            raw = Path(d) / "raw.txt"
            spy_proc = subprocess.Popen([spy, "record", "--native", "-r", "200", "-d", str(seconds),
                                         "--format", "raw", "-o", str(raw), "-p",
                                         str(setup.worker)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
            fig = setup.measure(seconds)
            spy_proc.wait(60)
            print(fig)
            print("\n".join(summarize(raw, 60)))
        finally:
            setup.close()
            echo.close()


def main(argv: list[str]) -> None:
    mode = argv[0] if argv else "rate"
    rest = argv[1:]
    seconds = int(rest[0]) if rest and rest[0].isdigit() else 8
    env = dict(a.split("=", 1) for a in rest if "=" in a)
    if mode == "profile":
        profile(seconds, env)
        return
    echo = Echo()
    with tempfile.TemporaryDirectory(prefix="hy2-short-") as d:
        setup = ShortStreamSetup(Path(d), echo.tcp, env)
        try:
            setup.measure(1.0)
            for _ in range(3):
                print(setup.measure())
        finally:
            setup.close()
            echo.close()


if __name__ == "__main__":
    main(sys.argv[1:])
