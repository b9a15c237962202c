"""py-spy profile of the ``fastpath serve`` worker while the reference client downloads through
it (issue 12's "profile before and after each lever").

    python bench/hy2_profile.py [SECONDS] [up] [top=N] [ENV=VALUE ...]   # e.g. FASTPATH_UDP_BATCH=0

``up`` profiles an upload (the client sends, the worker receives STREAM frames) instead.

Prints the top frames by inclusive and by own share of the samples (from ``py-spy record
--native --format raw``), and the download's MB/s.  Needs ``py-spy`` (pip) and ptrace rights.
"""
from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import hy2_peers as peers  # noqa: E402
from test_bench_hy2_throughput import Target, download, upload  # noqa: E402


def summarize(raw: Path, top: int = 25) -> list[str]:
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] for f in stack.split(";")]
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f} %  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "own:"]
    lines += [f"  {100 * n / total:5.1f} %  {f}" for f, n in own.most_common(top)]
    io = [f for f in inclusive if any(k in f for k in ("recv", "send", "_readable", "Endpoint"))]
    lines += ["", "socket I/O frames (inclusive / own):"]
    lines += [f"  {100 * inclusive[f] / total:5.1f} % / {100 * own[f] / total:5.1f} %  {f}"
              for f in sorted(io, key=lambda f: -inclusive[f])]
    return lines


def main(argv: list[str]) -> None:
    seconds = int(argv[0]) if argv and argv[0].isdigit() else 8
    env = dict(a.split("=", 1) for a in argv if "=" in a)
    top = int(env.pop("top", 25))
    up = "up" in argv
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory(prefix="hy2-prof-") as d:
        work = Path(d)
        source = Target("sink" if up else "source")
        transfer = upload if up else download
        node = peers.FastpathServer(work, env=env)
        client = peers.StockClient(work, node.address, node.password)
        try:
            transfer(client.socks_port, source.ports[0], 16 << 20)           # warm up
            size = 4 << 30
            result = {}

            def pull():
                try:
                    result["s"] = transfer(client.socks_port, source.ports[0], size)
                except Exception as exc:            # stopped early by closing the client
                    result["err"] = exc

            worker = peers.worker_pid(node.pid)
            t = threading.Thread(target=pull, daemon=True)
            t.start()
            raw = work / "profile.txt"
            c0 = peers.cpu_seconds(node.pid)
            subprocess.run([spy, "record", "--native", "--format", "raw", "-r", "200", "-d",
                            str(seconds), "-o", str(raw), "-p", str(worker)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cpu = peers.cpu_seconds(node.pid) - c0
            print("\n".join(summarize(raw, top)))
            print(f"\n{'upload' if up else 'download'} so far: {result}")
            print(f"\nserver tree CPU during the profile: {cpu:.1f} s in {seconds} s; env {env}")
        finally:
            client.close()
            node.close()
            source.close()


if __name__ == "__main__":
    main(sys.argv[1:])
