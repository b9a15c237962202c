"""Baseline and candidate measured the same way, alternately: the one way benchmarks here compare.

Why a helper: a ratio is only fair when both sides get the same warm-up, the same number of
rounds and the same statistic, and run interleaved so a noisy neighbour on this shared machine
slows both alike.  Written by hand because pytest-benchmark times one function at a time and
has no notion of a pair.

``paired(baseline, candidate)`` calls each side's zero-argument function, which runs one
measurement and returns its figure (seconds per operation, packets per second, ...):

- ``warmup`` calls of each side first, results dropped;
- then ``pairs`` rounds; round i runs baseline then candidate when i is even, candidate then
  baseline when it is odd (so neither side always runs second, on a warmer cache);
- the result has every figure, both sides' median and best, the ratio of medians and of
  bests, and each pair's own ratio.

``better`` says which way a figure improves: "lower" for times, "higher" for rates.  Ratios
are always "how many times better the candidate is than the baseline" (> 1: candidate wins).

``per_op(fn, ops)`` turns "do ``ops`` operations" into one measurement of wall and CPU time per
operation, for benchmarks that also report CPU per unit of work.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Side:
    figures: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.figures)

    def best(self, better: str) -> float:
        return min(self.figures) if better == "lower" else max(self.figures)


@dataclass
class PairedResult:
    baseline: Side
    candidate: Side
    better: str
    unit: str = ""

    def _ratio(self, base: float, cand: float) -> float:
        if not base or not cand:
            return float("nan")
        return base / cand if self.better == "lower" else cand / base

    @property
    def ratio_median(self) -> float:
        return self._ratio(self.baseline.median, self.candidate.median)

    @property
    def ratio_best(self) -> float:
        return self._ratio(self.baseline.best(self.better), self.candidate.best(self.better))

    @property
    def pair_ratios(self) -> list[float]:
        return [self._ratio(b, c) for b, c in zip(self.baseline.figures, self.candidate.figures)]

    def summary(self) -> dict:
        """Figures for ``benchmark.extra_info`` and the printed report."""
        r = lambda x: round(x, 4)  # noqa: E731
        return {
            "unit": self.unit, "better": self.better, "pairs": len(self.pair_ratios),
            "baseline": [r(x) for x in self.baseline.figures],
            "candidate": [r(x) for x in self.candidate.figures],
            "baseline_median": r(self.baseline.median),
            "candidate_median": r(self.candidate.median),
            "baseline_best": r(self.baseline.best(self.better)),
            "candidate_best": r(self.candidate.best(self.better)),
            "ratio_median": r(self.ratio_median), "ratio_best": r(self.ratio_best),
            "pair_ratios": [r(x) for x in self.pair_ratios],
        }


def paired(baseline: Callable[[], float], candidate: Callable[[], float], *, pairs: int = 5,
           warmup: int = 1, better: str = "lower", unit: str = "") -> PairedResult:
    """Measure both sides alternately with the same warm-up; see the module docstring."""
    if better not in ("lower", "higher"):
        raise ValueError("better must be 'lower' or 'higher'")
    if pairs < 1:
        raise ValueError("at least one pair")
    for _ in range(warmup):
        baseline()
        candidate()
    result = PairedResult(Side(), Side(), better, unit)
    for i in range(pairs):
        if i % 2 == 0:
            b = baseline()
            c = candidate()
        else:
            c = candidate()
            b = baseline()
        result.baseline.figures.append(float(b))
        result.candidate.figures.append(float(c))
    return result


@dataclass
class PerOp:
    wall_ns: float
    cpu_ns: float


def per_op(fn: Callable[[], object], ops: int) -> PerOp:
    """Run ``fn`` (which does ``ops`` operations) once: wall and process CPU ns per operation."""
    cpu0, t0 = time.process_time_ns(), time.perf_counter_ns()
    fn()
    t1, cpu1 = time.perf_counter_ns(), time.process_time_ns()
    return PerOp((t1 - t0) / ops, (cpu1 - cpu0) / ops)


def record(compare, name: str, baseline_name: str, result: PairedResult) -> None:
    """Both sides' medians into the session's figures (bench/conftest.py), the candidate
    against the baseline, plus the best-of ratio under its own name."""
    compare.record(baseline_name, result.baseline.median, result.unit, better=result.better)
    compare.record(name, result.candidate.median, result.unit, baseline=baseline_name,
                   better=result.better)
    compare.record(f"{name} [best of {len(result.pair_ratios)} vs best]",
                   result.ratio_best, "x", better="higher")
