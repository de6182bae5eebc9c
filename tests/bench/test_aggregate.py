"""Seeds aggregated into mean ± sd, bootstrap intervals, and which differences exceed the spread,
each against a hand computation."""

import math

import numpy as np
import pytest

from zoo.bench.aggregate import aggregate_seeds, bootstrap_interval, compare, distinguishable, mean_sd


def test_mean_sd_by_hand():
    mean, sd = mean_sd([17.0, 17.4, 16.9])
    assert mean == pytest.approx(51.3 / 3)
    m = 51.3 / 3  # sample sd: sqrt(Σ(x − m)² / (S − 1))
    assert sd == pytest.approx(math.sqrt(((17.0 - m) ** 2 + (17.4 - m) ** 2 + (16.9 - m) ** 2) / 2))
    assert mean_sd([3.0]) == (3.0, None)
    with pytest.raises(ValueError):
        mean_sd([])


def test_aggregate_seeds_by_hand():
    seeds = [[{"name": "a", "kind": "model", "psnr": 17.0, "code_size": 32, "nll_data": "x"},
              {"name": "b", "kind": "model", "psnr": 15.0, "code_size": 32}],
             [{"name": "a", "kind": "model", "psnr": 18.0, "code_size": 32, "nll_data": "x"},
              {"name": "b", "kind": "model", "psnr": 15.5, "code_size": 32}]]
    rows = aggregate_seeds(seeds)
    assert [r["name"] for r in rows] == ["a", "b"]
    a = rows[0]
    assert a["seeds"] == 2 and a["psnr"] == pytest.approx(17.5)
    assert a["psnr_sd"] == pytest.approx(math.sqrt(0.5))  # ((0.5)² + (0.5)²) / 1
    assert (a["psnr_low"], a["psnr_high"]) == pytest.approx((17.5 - math.sqrt(0.5), 17.5 + math.sqrt(0.5)))
    assert a["code_size"] == 32 and a["nll_data"] == "x"  # settings and text are the first seed's
    assert a["seed_values"]["psnr"] == [17.0, 18.0]


def test_one_seed_has_no_interval():
    rows = aggregate_seeds([[{"name": "a", "psnr": 17.0}]])
    assert rows[0]["psnr"] == 17.0 and "psnr_sd" not in rows[0] and rows[0]["seeds"] == 1


def test_bootstrap_interval_against_the_normal_approximation():
    """For a mean of N values the bootstrap interval is close to m ± 1.96·s/√N."""
    x = np.random.default_rng(3).normal(10.0, 2.0, size=2000)
    low, high = bootstrap_interval(x, resamples=4000, seed=0)
    half = 1.96 * x.std(ddof=0) / math.sqrt(len(x))
    assert low == pytest.approx(x.mean() - half, abs=0.25 * half)
    assert high == pytest.approx(x.mean() + half, abs=0.25 * half)
    assert bootstrap_interval(x, seed=1) != bootstrap_interval(x, seed=2)
    assert bootstrap_interval(x, seed=5) == bootstrap_interval(x, seed=5)


def test_bootstrap_interval_by_hand_on_two_values():
    """Two values {0, 1}: a resample's mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4, so the
    2.5% and 97.5% quantiles are 0 and 1."""
    assert bootstrap_interval([0.0, 1.0], resamples=4000, seed=0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_interval([1.0])


def test_compare_marks_differences_larger_than_the_spread():
    rows = [{"name": "a", "psnr": 18.0, "psnr_low": 17.8, "psnr_high": 18.2},
            {"name": "b", "psnr": 17.9, "psnr_low": 17.5, "psnr_high": 18.3},   # overlaps a
            {"name": "c", "psnr": 16.0, "psnr_low": 15.9, "psnr_high": 16.1},   # disjoint
            {"name": "d", "psnr": 15.0},                                        # no interval
            {"name": "e"}]                                                       # no value
    assert compare(rows, "psnr") == {"a": "best", "b": "within spread", "c": "below", "d": "no interval"}
    assert compare(rows, "psnr", higher_is_better=False)["d"] == "best"
    assert distinguishable(rows[0], rows[2], "psnr") is True
    assert distinguishable(rows[0], rows[1], "psnr") is False
    assert distinguishable(rows[0], rows[3], "psnr") is None
