"""py-spy profile of the ``fastpath serve`` worker while the reference client downloads through
it (issue 12's "profile before and after each lever").

    python bench/hy2_profile.py [SECONDS] [up] [client] [top=N] [ENV=VALUE ...]   # e.g. FASTPATH_UDP_BATCH=0

``up`` profiles an upload (the client sends, the worker receives STREAM frames) instead.
``client`` puts ``fastpath client`` (started with the same ENV) in place of the reference
client and profiles that process instead of the server's worker.

``HY2_PROFILE_TOP=N`` prints N entries per list; ``HY2_PROFILE_RAW=FILE`` keeps the raw stacks;
``python bench/hy2_profile.py --compare A.raw B.raw`` tabulates the send side's entries.

Prints the top frames by inclusive and by own share of the samples (from ``py-spy record
--native --format raw``), and the download's MB/s.  Needs ``py-spy`` (pip) and ptrace rights.
"""
from __future__ import annotations

import collections
import os
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


SEND_SIDE = ["Hy2Server._flush", "QuicConnection.datagrams_to_send", "_write_application",
             "_write_stream_frame", "QuicStreamSender.get_frame", "send_path__write_streams",
             "_flush_builder", "QuicPacketRecovery.on_packet_sent",
             "QuicPacketBuilder__end_packet", "_SendKeys_seal", "sendmmsg",
             "QuicConnection.receive_datagram", "QuicPacketRecovery.on_ack_received",
             "QuicStreamSender.on_data_delivery", "StreamSendBuffer_on_data_delivery"]


def busy_shares(raw: Path, names: list[str]) -> tuple[int, dict[str, float]]:
    """Busy samples of the event-loop thread (stacks through ``run_forever`` that are not idle
    in ``epoll_pwait``) and each name's inclusive share of them (a frame matches when its name
    contains the given one)."""
    busy = 0
    hits = dict.fromkeys(names, 0)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f.split(" (")[0] for f in stack.split(";")]
        if not any("run_forever" in f for f in frames) or frames[-1] == "epoll_pwait":
            continue
        n = int(count)
        busy += n
        for name in names:
            if any(name in f for f in frames):
                hits[name] += n
    return busy, {k: 100 * v / max(busy, 1) for k, v in hits.items()}


def compare(raws: list[str]) -> None:
    """``--compare A.raw B.raw``: the send side's entries side by side (a markdown table)."""
    results = [busy_shares(Path(r), SEND_SIDE) for r in raws]
    print("| entry | " + " | ".join(raws) + " |")
    print("|---|" + "---:|" * len(raws))
    print("| busy samples (event-loop thread) | " + " | ".join(str(b) for b, _ in results) + " |")
    for name in SEND_SIDE:
        print(f"| `{name}` | " + " | ".join(f"{s[name]:.1f} %" for _, s in results) + " |")


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--compare":
        return compare(argv[1:])
    seconds = int(argv[0]) if argv and argv[0].isdigit() else 8
    env = dict(a.split("=", 1) for a in argv if "=" in a)
    top = int(env.pop("top", 25))
    up = "up" in argv
    of_client = "client" in argv
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory(prefix="hy2-prof-") as d:
        work = Path(d)
        source = Target("sink" if up else "source")
        transfer = upload if up else download
        node = peers.FastpathServer(work, env=env)
        if of_client:
            client = peers.FastpathClient(work, node.address, node.password, env=env)
        else:
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

            worker = client.pid if of_client else peers.worker_pid(node.pid)
            watched = client.pid if of_client else node.pid
            t = threading.Thread(target=pull, daemon=True)
            t.start()
            raw = work / "profile.txt"
            c0 = peers.cpu_seconds(watched)
            subprocess.run([spy, "record", "--native", "--format", "raw", "-r", "200", "-d",
                            str(seconds), "-o", str(raw), "-p", str(worker)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cpu = peers.cpu_seconds(watched) - c0
            print("\n".join(summarize(raw, int(os.environ.get("HY2_PROFILE_TOP", top)))))
            keep = os.environ.get("HY2_PROFILE_RAW")
            if keep:                                # the raw stacks, for a closer look
                shutil.copy(raw, keep)
            print(f"\n{'upload' if up else 'download'} so far: {result}")
            print(f"\n{'client' if of_client else 'server tree'} CPU during the profile: "
                  f"{cpu:.1f} s in {seconds} s; env {env}")
        finally:
            client.close()
            node.close()
            source.close()


if __name__ == "__main__":
    main(sys.argv[1:])
