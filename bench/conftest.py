"""Benchmark harness glue: a ``compare`` fixture that records figures measured in the same run
and prints the ratios against their baselines at the end of the session (and writes them to
``bench/.last-run.json`` for RESULTS.md)."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

_FIGURES: dict[str, dict] = {}


class Compare:
    def record(self, name: str, value: float, unit: str, *, baseline: str | None = None,
               better: str = "lower") -> None:
        """Record a figure; with ``baseline`` (a name recorded in the same run) a ratio is
        printed: how many times better this figure is than the baseline."""
        _FIGURES[name] = {"value": value, "unit": unit, "baseline": baseline, "better": better}

    @staticmethod
    def per_op_ns(benchmark, ops: int) -> float:
        return benchmark.stats.stats.min / ops * 1e9


@pytest.fixture(scope="session")
def compare() -> Compare:
    return Compare()


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    tr = terminalreporter
    tr.section("fastpath figures (same run)")
    out = {}
    for name, f in _FIGURES.items():
        line = f"{name:<58} {f['value']:>14.3f} {f['unit']}"
        base = _FIGURES.get(f["baseline"]) if f["baseline"] else None
        ratio = None
        if base and base["value"] and f["value"]:
            ratio = (base["value"] / f["value"]) if f["better"] == "lower" else (f["value"] / base["value"])
            line += f"   {ratio:8.2f}x vs {f['baseline']}"
        tr.write_line(line)
        out[name] = {**f, "ratio": ratio}
    meta = {"machine": f"{platform.machine()} {platform.processor() or ''} {platform.python_version()}",
            "cpus": __import__("os").cpu_count()}
    path = Path(__file__).parent / ".last-run.json"
    try:
        previous = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        previous = {}
    previous.update(out)
    previous["_meta"] = meta
    path.write_text(json.dumps(previous, indent=2, sort_keys=True))
