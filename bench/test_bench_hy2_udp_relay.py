"""UDP relay packets/s and short streams/s through ``fastpath serve``, baseline against candidate
in the same run (``bench/paired.py``), with the official client (Go) as the load's carrier so
the node's worker is what is measured (see ``bench/hy2_udp_relay.py`` and
``bench/hy2_short_streams.py``).

The two sides are two nodes started with different environments (``HY2_RELAY_BASELINE_ENV``
and ``HY2_RELAY_CANDIDATE_ENV``, ``A=1,B=2``).  By default the baseline runs aioquic's own packet
builder (``FASTPATH_QUIC_BUILDER=aioquic``) and the candidate the compiled one (issue 12,
lever 2a); ``HY2_RELAY_BASELINE_ENV=`` with an empty candidate is an A/A run, which shows this
machine's noise floor.  ``HY2_RELAY_BASELINE_PYTHON=/path/to/tree/.venv/bin/python`` runs the
baseline node from another tree instead (a ``git worktree`` of main with its own venv: the
previous tree against this one, same run).  Every round also reports the worker's CPU per packet / per stream,
steadier than the rates on a shared machine.

    python -m pytest bench/test_bench_hy2_udp_relay.py -q -s
"""
from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hy2_short_streams import ShortStreamSetup  # noqa: E402
from hy2_udp_relay import Echo, UdpRelaySetup  # noqa: E402
from paired import paired, record  # noqa: E402

PAIRS = int(os.environ.get("HY2_RELAY_PAIRS", "5"))


def _env(name: str, default: str) -> dict:
    text = os.environ.get(name, default)
    return dict(kv.split("=", 1) for kv in text.split(",") if "=" in kv)


BASELINE = _env("HY2_RELAY_BASELINE_ENV", "FASTPATH_QUIC_BUILDER=aioquic")
CANDIDATE = _env("HY2_RELAY_CANDIDATE_ENV", "")
BASELINE_PYTHON = os.environ.get("HY2_RELAY_BASELINE_PYTHON") or None


def _paired_setups(make, tmp_path, figure: str, cpu: str, unit: str):
    sides = {"baseline": make(tmp_path / "base", BASELINE, "-base", BASELINE_PYTHON),
             "candidate": make(tmp_path / "cand", CANDIDATE, "-cand", None)}
    cpus: dict[str, list[float]] = {k: [] for k in sides}
    try:
        def side(name):
            def measure():
                fig = sides[name].measure()
                cpus[name].append(fig[cpu])
                return fig[figure]
            return measure
        result = paired(side("baseline"), side("candidate"), pairs=PAIRS, warmup=1,
                        better="higher", unit=unit)
    finally:
        for s in sides.values():
            s.close()
    # The warm-up's CPU figures are dropped with its rates.
    cpu_b, cpu_c = cpus["baseline"][1:], cpus["candidate"][1:]
    return result, cpu_b, cpu_c


def _print(name, result, cpu_b, cpu_c, cpu_unit):
    s = result.summary()
    base = f"{BASELINE_PYTHON} {BASELINE}" if BASELINE_PYTHON else BASELINE
    print(f"\n[{name}] baseline {base} vs candidate {CANDIDATE}, {s['pairs']} pairs: "
          f"{s['baseline_median']:.0f} -> {s['candidate_median']:.0f} {s['unit']} "
          f"(x{s['ratio_median']:.2f}; pairs {s['pair_ratios']}); worker CPU "
          f"{statistics.median(cpu_b):.1f} -> {statistics.median(cpu_c):.1f} {cpu_unit} "
          f"(x{statistics.median(cpu_b) / statistics.median(cpu_c):.2f} less; "
          f"baseline {[round(x, 1) for x in cpu_b]}, candidate {[round(x, 1) for x in cpu_c]})")


@pytest.mark.timeout(600)
def test_udp_relay_packets_per_second(tmp_path, compare):
    echo = Echo()
    try:
        result, cpu_b, cpu_c = _paired_setups(
            lambda d, env, tag, py: UdpRelaySetup(d, echo.udp, env, tag, py), tmp_path, "pps",
            "cpu_us_per_packet", "packets/s")
    finally:
        echo.close()
    _print("udp relay", result, cpu_b, cpu_c, "µs/packet")
    record(compare, "hy2 UDP relay (official client): candidate",
           "hy2 UDP relay (official client): baseline", result)
    compare.record("hy2 UDP relay: baseline worker CPU", statistics.median(cpu_b), "µs/packet")
    compare.record("hy2 UDP relay: candidate worker CPU", statistics.median(cpu_c), "µs/packet",
                   baseline="hy2 UDP relay: baseline worker CPU")


@pytest.mark.timeout(600)
def test_short_streams_per_second(tmp_path, compare):
    echo = Echo()
    try:
        result, cpu_b, cpu_c = _paired_setups(
            lambda d, env, tag, py: ShortStreamSetup(d, echo.tcp, env, tag, py), tmp_path,
            "streams_per_s", "cpu_us_per_stream", "streams/s")
    finally:
        echo.close()
    _print("short streams", result, cpu_b, cpu_c, "µs/stream")
    record(compare, "hy2 short streams (official client): candidate",
           "hy2 short streams (official client): baseline", result)
    compare.record("hy2 short streams: baseline worker CPU", statistics.median(cpu_b), "µs/stream")
    compare.record("hy2 short streams: candidate worker CPU", statistics.median(cpu_c),
                   "µs/stream", baseline="hy2 short streams: baseline worker CPU")
