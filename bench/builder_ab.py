"""Issue 12, lever 2a: fastpath's compiled QUIC packet builder vs aioquic's, alternated.

One download over one connection: the official Hysteria 2 client (Go, ``hysteria2`` wheel) with
a TCP forward -> ``fastpath serve`` (one worker) -> a local TCP source.  Each pair runs the node
once with ``FASTPATH_QUIC_BUILDER=fastpath`` and once with ``=aioquic`` (the order alternates
per pair), same warm-up, and reports MB/s and the worker's CPU seconds per GiB.  With
``--pyspy DIR`` one more download per builder is profiled (``py-spy record --native``, raw
stacks) and the top inclusive entries are printed.

    python bench/builder_ab.py --pairs 4 --mib 128 [--pyspy /tmp/prof]

The machine is small and shared: read the pairs, not one figure.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.transfer import timed_read  # noqa: E402
from tests.hy2.conftest import default_secret  # noqa: E402
from tests.support.node import NodeProcess, free_tcp_port  # noqa: E402

RUNNER = "import sys, hysteria2; hysteria2.startFromJSON(sys.argv[1])"
HERE = Path(__file__).resolve().parent


def start_source() -> tuple[subprocess.Popen, int]:
    p = subprocess.Popen([sys.executable, str(HERE / "hy2_procs.py"), "source"],
                         stdout=subprocess.PIPE, text=True)
    return p, int(p.stdout.readline().split()[0])


def download(port: int, n: int) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        return timed_read(s, struct.pack(">Q", n), n)


def worker_pids(node: NodeProcess) -> list[int]:
    """The node's worker processes (they do the QUIC work), from its log's ready lines."""
    import re
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = [int(p) for p in re.findall(r"worker \d+ ready \(pid (\d+)\)", node.log())]
        if pids:
            return pids
        time.sleep(0.1)
    raise RuntimeError("no worker ready line in the node log")


def cpu_seconds(pids) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


class Setup:
    """A node with the chosen builder and the reference client forwarding to the source."""

    def __init__(self, builder: str, source_port: int, tmp: Path, client: str = "stock"):
        self.builder = builder
        self.client_kind = client
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{builder}-", dir=tmp))
        self.node = NodeProcess(self.tmp, {}, env={"FASTPATH_QUIC_BUILDER": builder})
        self.source_port = source_port

    def __enter__(self):
        self.node.start(timeout=90)
        try:
            return self._start_client()
        except BaseException:
            self.__exit__()      # no node left behind when the client does not come up
            raise

    def _start_client(self):
        secret = default_secret(self.node.data_dir)
        self.client = None
        self.pids = worker_pids(self.node)
        if self.client_kind == "fastpath":
            self.download_args = [self.node.config["listen"], secret,
                                  f"127.0.0.1:{self.source_port}"]
            return self
        self.port = free_tcp_port()
        config = {"server": self.node.config["listen"], "auth": secret,
                  "tls": {"insecure": True}, "fastOpen": False, "lazy": False,
                  "tcpForwarding": [{"listen": f"127.0.0.1:{self.port}",
                                     "remote": f"127.0.0.1:{self.source_port}"}]}
        self.log = open(self.tmp / "client.log", "wb")
        self.client = subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(config)],
                                       stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while b"TCP forwarding listening" not in (self.tmp / "client.log").read_bytes():
            if time.monotonic() > deadline or self.client.poll() is not None:
                raise RuntimeError((self.tmp / "client.log").read_text(errors="replace"))
            time.sleep(0.05)
        return self

    def download(self, n: int) -> float:
        if self.client_kind == "stock":
            return download(self.port, n)
        # fastpath's own client in its own process, on aioquic's builder in both arms, so only
        # the server's builder differs
        out = subprocess.run([sys.executable, str(HERE / "hy2_procs.py"), "download",
                              *self.download_args, str(n)], capture_output=True, text=True,
                             env={**os.environ, "FASTPATH_QUIC_BUILDER": "aioquic"},
                             timeout=600, check=True)
        return float(out.stdout.split()[-1])

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.kill()
            self.client.wait()
            self.log.close()
        self.node.stop()


def measure(builder: str, source_port: int, tmp: Path, n: int, warm: int, client: str) -> dict:
    with Setup(builder, source_port, tmp, client) as s:
        s.download(warm)
        cpu0 = cpu_seconds(s.pids)
        elapsed = s.download(n)
        cpu = cpu_seconds(s.pids) - cpu0
    return {"builder": builder, "MBps": n / elapsed / 1e6, "cpu_s_per_GiB": cpu / (n / 2**30)}


FOCUS = ("datagrams_to_send", "_write_application", "start_packet", "_end_packet",
         "start_frame", "_write_stream_frame", "encrypt_packet", "apply", "get_frame",
         "receive_datagram", "on_ack_received", "_flush_builder", "on_packet_sent", "sendto",
         "_flush_current_datagram", "flush", "seal", "QuicSentPacket", "__init__")


def profile(builder: str, source_port: int, tmp: Path, n: int, out_dir: Path,
            client: str) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"{builder}.txt"
    with Setup(builder, source_port, tmp, client) as s:
        s.download(8 << 20)
        py_spy = Path(sys.executable).with_name("py-spy")
        spy = subprocess.Popen([str(py_spy if py_spy.exists() else "py-spy"), "record",
                                "--native", "-r", "200", "-f", "raw", "-o", str(raw),
                                "-p", str(s.pids[0])],
                               stdout=subprocess.DEVNULL, stderr=open(out_dir / "py-spy.log", "ab"))
        time.sleep(1.0)
        s.download(n)
        spy.send_signal(2)
        spy.wait(30)
    return top_entries(raw)


def top_entries(raw: Path, limit: int = 30) -> list[str]:
    """Inclusive share of the event-loop thread's busy samples per function (samples waiting
    in epoll, and other threads, left out)."""
    inclusive = collections.Counter()
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any("run_forever" in f for f in frames):
            continue
        if "epoll_wait" in frames[-1] or "uv__io_poll" in frames[-1]:
            continue
        k = int(count)
        busy += k
        for name in {f.split(" (")[0] for f in frames}:
            inclusive[name] += k
    rows = [f"{100 * c / busy:5.1f}%  {name}" for name, c in inclusive.most_common(400)
            if any(x in name for x in FOCUS)]
    return [f"event-loop busy samples: {busy}"] + rows[:limit]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--mib", type=int, default=128)
    ap.add_argument("--pyspy", type=Path)
    ap.add_argument("--client", choices=["stock", "fastpath"], default="stock",
                    help="the official Go client (default) or fastpath's own client")
    args = ap.parse_args()
    n = args.mib << 20
    source, source_port = start_source()
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="builder-ab-") as tmp:
            tmp = Path(tmp)
            for i in range(args.pairs):
                order = ("fastpath", "aioquic") if i % 2 == 0 else ("aioquic", "fastpath")
                pair = {b: measure(b, source_port, tmp, n, 16 << 20, args.client)
                        for b in order}
                f, a = pair["fastpath"], pair["aioquic"]
                print(f"pair {i + 1} ({order[0]} first): fastpath {f['MBps']:.1f} MB/s "
                      f"{f['cpu_s_per_GiB']:.1f} cpu-s/GiB | aioquic {a['MBps']:.1f} MB/s "
                      f"{a['cpu_s_per_GiB']:.1f} cpu-s/GiB | ratio {f['MBps'] / a['MBps']:.2f}x "
                      f"cpu {f['cpu_s_per_GiB'] / a['cpu_s_per_GiB']:.2f}x", flush=True)
                results.append(pair)
            if args.pyspy:
                for b in ("aioquic", "fastpath"):
                    print(f"\n-- py-spy, builder={b} --")
                    print("\n".join(profile(b, source_port, tmp, n, args.pyspy, args.client)), flush=True)
    finally:
        source.kill()
        source.wait()
    json.dump(results, sys.stdout)
    print()


if __name__ == "__main__":
    main()
