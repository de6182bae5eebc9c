"""Percentile bootstrap intervals of a mean over test images.

A metric that is a mean over the N test images, m = (1/N)·Σ_i v_i (the PSNR of each image, the
0/1 correctness of a probe's prediction), gets the interval of B resamples: draw N images with
replacement B times, take the mean of each draw, and report the (1 − level)/2 and (1 + level)/2
quantiles of those B means. It says how much the figure would move on another test set of the
same size, which is the spread a single-seed benchmark row has (`zoo.bench.aggregate` puts the
seeds' spread in its place when there are several).
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_LEVEL = 0.95


def bootstrap_interval(per_example, *, resamples: int = BOOTSTRAP_RESAMPLES, level: float = BOOTSTRAP_LEVEL,
                       seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of `per_example` (one value per test image)."""
    x = np.asarray(per_example, dtype=np.float64).ravel()
    if x.size < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 values. Received: {x.size}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1). Received: level={level}")
    rng = np.random.default_rng(seed)
    means = np.empty(int(resamples))
    for start in range(0, len(means), 200):  # 200 resamples at a time: N·200 indices in memory
        count = min(200, len(means) - start)
        means[start:start + count] = x[rng.integers(0, x.size, size=(count, x.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def add_intervals(row: dict, per_example: dict, *, resamples: int, seed: int = 0) -> dict:
    """Sets row["<column>_low"], row["<column>_high"] to the bootstrap interval of every column of
    `per_example` (column → one value per test image) whose values are all finite; returns row."""
    if resamples < 1:
        return row
    for column, values in per_example.items():
        values = np.asarray(values, np.float64)
        if values.size >= 2 and np.all(np.isfinite(values)):
            row[f"{column}_low"], row[f"{column}_high"] = bootstrap_interval(values, resamples=resamples, seed=seed)
    return row
