"""Media relay benchmark: live viewers per stream at 4 Mbit/s, node vs a plain asyncio fan-out
server and vs one upstream connection per viewer; HLS segment requests/s from the cache;
memory per viewer.

    python -m pytest bench/test_bench_media.py --benchmark-enable -q -s
    # MEDIA_BENCH_CLIENTS=100,400,800 (viewer counts), MEDIA_BENCH_SECONDS=4

Every server, the origin and the load generator are separate processes on loopback.  CPU is the
server process's own CPU time (user + system, which includes the kernel's socket copies) over
the counted window; "viewers per core" is viewers / CPU fraction at the largest count at which
every viewer still got at least 90 % of the stream's rate.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.media.origin import make_media
from tests.media.support import OriginProcess, media_get, media_node, register

ROOT = Path(__file__).resolve().parents[1]
PROCS = [sys.executable, str(ROOT / "bench" / "media_procs.py")]
RATE = 500_000                      # bytes/s: 4 Mbit/s
CLIENTS = [int(x) for x in os.environ.get("MEDIA_BENCH_CLIENTS", "100,400,800").split(",")]
SECONDS = float(os.environ.get("MEDIA_BENCH_SECONDS", "4"))
RESULTS: dict = {}


def _cpu(procs) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def run_viewers(url: str, n: int, server_procs) -> dict:
    load = subprocess.Popen([*PROCS, "live-load", url, str(n), str(SECONDS)],
                            stdout=subprocess.PIPE, text=True)
    assert load.stdout.readline().strip() == "counting"
    cpu0, t0 = _cpu(server_procs), time.monotonic()
    rss_mid = None
    time.sleep(SECONDS / 2)
    rss_mid = sum(p.memory_info().rss for p in server_procs)
    out = json.loads(load.stdout.readline())
    cpu1, t1 = _cpu(server_procs), time.monotonic()
    load.wait(10)
    rates = [b / out["seconds"] for b in out["bytes"]]
    return {"n": n, "cpu": (cpu1 - cpu0) / (t1 - t0), "min_rate": min(rates),
            "mean_rate": sum(rates) / len(rates), "rss": rss_mid}


def start_server(kind: str, upstream: str):
    proc = subprocess.Popen([*PROCS, kind, upstream], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, port


def worker_procs(node) -> list:
    parent = psutil.Process(node.proc.pid)
    return [p for p in parent.children(recursive=True) if "--shard" in p.cmdline()]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("media"))


def test_live_viewers_per_stream(tmp_path, media, compare):
    results = {}
    with OriginProcess(media) as origin:
        upstream = f"{origin.base}/live/stream.ts?rate={RATE}"
        # The node, one worker.
        with media_node(tmp_path, {"joinBacklog": "1s"}) as node:
            sid = register(node, upstream)
            procs = worker_procs(node)
            assert len(procs) == 1
            idle_rss = procs[0].memory_info().rss
            before = origin.stats()["live_connections"]
            results["node"] = [run_viewers(f"{node.media_base}/stream/{sid}", n, procs) for n in CLIENTS]
            results["node_upstream_connections"] = origin.stats()["live_connections"] - before
            results["node_idle_rss"] = idle_rss
        for kind in ("plain-fanout", "per-client"):
            before = origin.stats()["live_connections"]
            proc, port = start_server(kind, upstream)
            try:
                procs = [psutil.Process(proc.pid)]
                results[kind] = [run_viewers(f"http://127.0.0.1:{port}/", n, procs) for n in CLIENTS]
            finally:
                proc.kill()
                proc.wait()
            results[f"{kind}_upstream_connections"] = origin.stats()["live_connections"] - before
    RESULTS["live"] = results
    for name in ("node", "plain-fanout", "per-client"):
        for r in results[name]:
            print(f"{name:>13} n={r['n']:>4} cpu={r['cpu'] * 100:6.1f}% "
                  f"min={r['min_rate'] * 8 / 1e6:5.2f} Mbit/s mean={r['mean_rate'] * 8 / 1e6:5.2f} Mbit/s "
                  f"rss={r['rss'] / 2**20:6.1f} MiB")
    # Each server at the largest count where every viewer still got >= 90 % of the rate.
    top = {name: ([r for r in results[name] if r["min_rate"] >= 0.9 * RATE] or results[name][:1])[-1]
           for name in ("node", "plain-fanout", "per-client")}
    per_core = {name: r["n"] / max(r["cpu"], 1e-6) for name, r in top.items()}
    compare.record("media: plain asyncio fan-out viewers per core at 4 Mbit/s",
                   per_core["plain-fanout"], "viewers", better="higher")
    compare.record("media: node viewers per core at 4 Mbit/s", per_core["node"], "viewers",
                   baseline="media: plain asyncio fan-out viewers per core at 4 Mbit/s",
                   better="higher")
    compare.record("media: one upstream per viewer, viewers per core (proxy only)",
                   per_core["per-client"], "viewers", better="higher")
    node_top = results["node"][-1]
    mem = (node_top["rss"] - results["node_idle_rss"]) / node_top["n"]
    compare.record("media: node memory per live viewer (RSS)", mem / 1024, "KiB")
    RESULTS["per_core"] = per_core
    RESULTS["mem_per_viewer"] = mem
    print("viewers per core:", {k: round(v) for k, v in per_core.items()},
          "upstream connections:", {k: v for k, v in results.items() if k.endswith("connections")},
          f"memory per viewer {mem / 1024:.1f} KiB")
    assert results["node_upstream_connections"] == 1
    assert results["per-client_upstream_connections"] == sum(CLIENTS)
    # Every node viewer got the stream's rate at the smallest count.
    assert results["node"][0]["min_rate"] > 0.9 * RATE


def test_hls_segment_requests_from_cache(tmp_path, media, compare):
    with OriginProcess(media) as origin, media_node(tmp_path) as node:
        sid = register(node, origin.base + "/hls/playlist.m3u8")
        text = media_get(node, f"/hls/{sid}/playlist.m3u8").text
        uri = next(u for u in text.splitlines() if u.startswith("segment"))
        seg = media_get(node, f"/hls/{sid}/{uri}")
        assert seg.status == 200
        before = origin.stats()["requests"]
        procs = worker_procs(node)
        cpu0 = _cpu(procs)
        out = subprocess.run([*PROCS, "get-load", f"{node.media_base}/hls/{sid}/{uri}", "16", "3"],
                             capture_output=True, text=True, check=True)
        cpu = (_cpu(procs) - cpu0) / 3
        res = json.loads(out.stdout)
        after = origin.stats()["requests"]
    rps = res["requests"] / res["seconds"]
    assert res["errors"] == 0
    segment_fetches = sum(after.get(k, 0) - before.get(k, 0) for k in after if k.endswith(".ts"))
    assert segment_fetches == 0, "every request came from the cache"
    compare.record(f"media: HLS segment requests/s from cache ({len(seg.body) // 1024} KiB)", rps,
                   "req/s", better="higher")
    RESULTS["hls"] = {"rps": rps, "segment_bytes": len(seg.body), "cpu": cpu}
    print(f"HLS from cache: {rps:.0f} req/s of {len(seg.body)} B ({rps * len(seg.body) * 8 / 1e9:.2f} "
          f"Gbit/s), worker CPU {cpu * 100:.0f}%")
