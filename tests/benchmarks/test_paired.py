"""bench/paired.py: alternation, equal warm-up, and which way a ratio points."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from paired import paired  # noqa: E402


def test_sides_alternate_with_the_same_warmup():
    calls = []
    figures = {"b": iter([9, 9, 10, 12, 14, 16]), "c": iter([9, 9, 5, 6, 7, 8])}

    def side(name):
        def measure():
            calls.append(name)
            return next(figures[name])
        return measure

    r = paired(side("b"), side("c"), pairs=4, warmup=2, better="lower")
    assert calls[:4] == ["b", "c", "b", "c"]                 # warm-up: two of each
    assert calls[4:] == ["b", "c", "c", "b", "b", "c", "c", "b"]   # order flips every pair
    assert r.baseline.figures == [10, 12, 14, 16] and r.candidate.figures == [5, 6, 7, 8]
    assert r.ratio_median == pytest.approx(13 / 6.5)
    assert r.ratio_best == pytest.approx(10 / 5)
    assert r.pair_ratios == [2.0, 2.0, 2.0, 2.0]


def test_higher_is_better_for_rates():
    r = paired(lambda: 100.0, lambda: 50.0, pairs=3, warmup=0, better="higher")
    assert r.ratio_median == pytest.approx(0.5) and r.ratio_best == pytest.approx(0.5)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        paired(lambda: 1, lambda: 1, better="faster")
    with pytest.raises(ValueError):
        paired(lambda: 1, lambda: 1, pairs=0)
