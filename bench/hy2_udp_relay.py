"""UDP relay packets per second through ``fastpath serve``, driven so the server is the limit.

The official client (Go, the ``hysteria2`` wheel) forwards a local UDP port over Hysteria 2 to a
UDP echo target in its own process; a load generator here keeps ``WINDOW`` datagrams in flight
through that forward (a new one for each echo that comes back, a refill when nothing came for
50 ms).  Unlike the in-process client of ``test_bench_hy2_proxy.py``, the client side is compiled
Go, so the packets/s measure the node's worker.  Reported beside the rate: the worker's CPU µs
per echoed packet (the figure that survives a noisy shared machine).

    python bench/hy2_udp_relay.py profile [SECONDS] [ENV=VALUE ...]   # py-spy --native
    python bench/hy2_udp_relay.py rate [ENV=VALUE ...]

``HY2_PROFILE_RAW=FILE`` keeps the profile's raw stacks (as ``bench/hy2_profile.py``).
"""
from __future__ import annotations

import json
import os
import select
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
from tests.support.node import free_tcp_port, free_udp_port  # noqa: E402

WINDOW = int(os.environ.get("HY2_UDP_WINDOW", "64"))
SIZE = int(os.environ.get("HY2_UDP_SIZE", "100"))
SECONDS = float(os.environ.get("HY2_UDP_SECONDS", "3"))


class ForwardSetup:
    """A node (with ``env``; from another tree when ``python`` is that tree's interpreter)
    and the official client with one forward from a local port to an echo process: what the
    UDP relay and short-stream benchmarks share.  A subclass names the forward
    (``forwarding``, ``forward_options``) and says how to wait until it carries."""

    label = "forward-client"
    forwarding = "tcpForwarding"      # or "udpForwarding"
    forward_options: dict = {}

    def __init__(self, workdir: Path, echo_port: int, env: dict | None = None, tag: str = "",
                 python: str | None = None):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.server = peers.FastpathServer(workdir, env=env, python=python)
        self.worker = peers.worker_pid(self.server.pid)
        self.port = free_udp_port() if self.forwarding == "udpForwarding" else free_tcp_port()
        forward = {"listen": f"127.0.0.1:{self.port}", "remote": f"127.0.0.1:{echo_port}",
                   **self.forward_options}
        config = {"server": self.server.address, "auth": self.server.password,
                  "tls": {"insecure": True}, "fastOpen": False, "lazy": False,
                  self.forwarding: [forward]}
        self.client = peers.Peer(f"{self.label}{tag}", workdir)
        self.client._spawn([sys.executable, "-c", peers.STOCK_RUNNER, json.dumps(config)])
        self.wait_ready()

    def wait_ready(self) -> None:
        raise NotImplementedError

    def measure(self, seconds: float) -> dict:
        raise NotImplementedError

    def worker_cpu(self) -> float:
        fields = peers._stat_fields(self.worker)
        return (int(fields[11]) + int(fields[12])) / peers.CLK_TCK

    def timed(self, run):
        """``run()`` and the worker's CPU seconds meanwhile: (its result, seconds)."""
        cpu0 = self.worker_cpu()
        result = run()
        cpu = self.worker_cpu() - cpu0
        # The busiest process under load is the worker (at start-up another tree's control
        # API may have used more CPU than its idle worker).
        self.worker = peers.worker_pid(self.server.pid)
        return result, cpu

    def close(self) -> None:
        self.client.close()
        self.server.close()


class UdpRelaySetup(ForwardSetup):
    """A node (with ``env``), the official client forwarding a UDP port to an echo process."""

    label = "udp-client"
    forwarding = "udpForwarding"
    forward_options = {"timeout": "120s"}

    def wait_ready(self) -> None:
        self._wait_forward()

    def _wait_forward(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", self.port))
            s.settimeout(0.3)
            while time.monotonic() < deadline:
                if self.client.proc.poll() is not None:
                    raise RuntimeError(f"client exited:\n{self.client.log()}")
                try:
                    s.send(b"ping")
                    if s.recv(64) == b"ping":
                        return
                except OSError:
                    time.sleep(0.1)
        raise TimeoutError(f"no echo through the UDP forward:\n{self.client.log()}")

    def measure(self, seconds: float = SECONDS) -> dict:
        """Echoes for ``seconds``: packets/s and worker CPU µs per packet."""
        (got, elapsed), cpu = self.timed(lambda: blast(self.port, seconds))
        return {"pps": got / elapsed, "packets": got,
                "cpu_us_per_packet": cpu / got * 1e6 if got else float("nan")}


def blast(port: int, seconds: float, window: int = WINDOW, size: int = SIZE) -> tuple[int, float]:
    """Keep ``window`` datagrams in flight to 127.0.0.1:port for ``seconds``: (echoes, s)."""
    payload = b"u" * size
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    got = 0
    start = time.perf_counter()
    end = start + seconds
    try:
        for _ in range(window):
            s.send(payload)
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            ready, _, _ = select.select([s], [], [], 0.05)
            if not ready:
                for _ in range(window):     # echoes lost: fill the window again
                    s.send(payload)
                continue
            while True:
                try:
                    s.recv(2048)
                except BlockingIOError:
                    break
                got += 1
                s.send(payload)
    finally:
        s.close()
    return got, time.perf_counter() - start


class Echo:
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, str(HERE / "hy2_procs.py"), "echo"],
                                  stdout=subprocess.PIPE, text=True)
        self.tcp, self.udp = (int(x) for x in self.p.stdout.readline().split())

    def close(self):
        self.p.kill()
        self.p.wait()


def cli(argv: list[str], setup_class, echo_port, show, profile_lines: int) -> None:
    """``rate [ENV=VALUE ...]``: three measures after a warm-up; ``profile [SECONDS] [ENV=VALUE
    ...]``: one measure under ``py-spy --native`` and the worker's top frames.  ``echo_port``
    picks the echo's port, ``show`` prints a measure."""
    mode = argv[0] if argv else "rate"
    rest = argv[1:]
    seconds = int(rest[0]) if rest and rest[0].isdigit() else 8
    env = dict(a.split("=", 1) for a in rest if "=" in a)
    echo = Echo()
    with tempfile.TemporaryDirectory(prefix=f"hy2-{setup_class.label}-") as d:
        setup = setup_class(Path(d), echo_port(echo), env)
        try:
            setup.measure(1.0)
            if mode != "profile":
                for _ in range(3):
                    print(setup.measure())
                return
            from hy2_profile import summarize
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            raw = Path(os.environ.get("HY2_PROFILE_RAW") or Path(d) / "raw.txt")
            spy_proc = subprocess.Popen([spy, "record", "--native", "-r", "200", "-d", str(seconds),
                                         "--format", "raw", "-o", str(raw), "-p",
                                         str(setup.worker)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
            fig = setup.measure(seconds)
            spy_proc.wait(60)
            print(show(fig))
            print("\n".join(summarize(raw, profile_lines)))
        finally:
            setup.close()
            echo.close()


def main(argv: list[str]) -> None:
    cli(argv, UdpRelaySetup, lambda echo: echo.udp,
        lambda fig: f"{fig['pps']:.0f} packets/s, worker {fig['cpu_us_per_packet']:.1f} µs CPU/packet",
        40)


if __name__ == "__main__":
    main(sys.argv[1:])
