"""Several seeds of one benchmark made into one table, with the spread of every metric.

With S ≥ 2 seeds a metric m of a variant is reported as the mean and the sample standard
deviation over its seeds,

    m̄ = (1/S)·Σ_s m_s,    sd = sqrt( (1/(S−1))·Σ_s (m_s − m̄)² ),

and its interval is [m̄ − sd, m̄ + sd]. With one seed, a metric that is a mean over test images
(PSNR, MSE, an accuracy, the NLL) gets a percentile bootstrap interval instead: B resamples of
the N test images with replacement, the mean of each, and the (1 − level)/2 and (1 + level)/2
quantiles of those B means.

Two variants differ by more than their spread when their intervals do not overlap;
`compare` marks every row against the best one of a column in those terms.

Example:
    >>> rows = aggregate_seeds([[{"name": "a", "psnr": 17.0}], [{"name": "a", "psnr": 17.4}]])
    >>> rows[0]["psnr"], round(rows[0]["psnr_sd"], 3)
    (17.2, 0.283)
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from zoo.evaluation.intervals import BOOTSTRAP_LEVEL, BOOTSTRAP_RESAMPLES, bootstrap_interval  # noqa: F401

#: Columns that are settings or identities, the same for every seed: never averaged.
FIXED_COLUMNS = ("code_size", "parameters", "batch_size", "steps_per_epoch", "seed", "latency_batch_size",
                 "nll_samples", "nll_examples")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def mean_sd(values) -> tuple[float, float | None]:
    """(mean, sample standard deviation with S − 1 in the denominator); sd is None for one value."""
    values = np.asarray(list(values), dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_sd needs at least one value")
    mean = float(values.mean())
    return mean, (float(values.std(ddof=1)) if values.size > 1 else None)


def aggregate_seeds(rows_by_seed: list[list[dict]]) -> list[dict]:
    """One row per variant from the rows of each seed (matched by "name", in the first seed's order).

    A numeric column that varies with the seed becomes its mean over the seeds that have it, with
    "<column>_sd" its standard deviation and "<column>_low"/"<column>_high" = mean ∓ sd; every
    other column is the first seed's. "seeds" counts the seeds of the row, and "seed_values"
    keeps each seed's value of every averaged column.
    """
    if not rows_by_seed:
        raise ValueError("aggregate_seeds needs the rows of at least one seed")
    by_name: dict[str, list[dict]] = {}
    for rows in rows_by_seed:
        for row in rows:
            by_name.setdefault(row["name"], []).append(row)
    out = []
    for name, rows in by_name.items():
        merged = dict(rows[0])
        merged["seeds"] = len(rows)
        per_seed = {}
        for column in rows[0]:
            values = [r.get(column) for r in rows]
            if column in FIXED_COLUMNS or column.endswith(("_sd", "_low", "_high")):
                continue
            if not all(_is_number(v) for v in values):
                continue
            mean, sd = mean_sd(values)
            merged[column] = mean
            if sd is not None:
                merged[f"{column}_sd"] = sd
                merged[f"{column}_low"], merged[f"{column}_high"] = mean - sd, mean + sd
                per_seed[column] = [float(v) for v in values]
        if per_seed:
            merged["seed_values"] = per_seed
        out.append(merged)
    return out


def interval(row: dict, column: str) -> tuple[float, float] | None:
    """The row's interval of `column` ("<column>_low", "<column>_high"), or None without one."""
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    return (float(low), float(high)) if _is_number(low) and _is_number(high) else None


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether the intervals [a₀, a₁] and [b₀, b₁] share a point."""
    return a[0] <= b[1] and b[0] <= a[1]


def compare(rows: list[dict], column: str, higher_is_better: bool = True) -> dict[str, str]:
    """name → "best", "within spread" (its interval overlaps the best's), "below" (it does not),
    or "no interval" (the row or the best has none), for the rows that have `column`."""
    scored = [r for r in rows if _is_number(r.get(column))]
    if not scored:
        return {}
    best = (max if higher_is_better else min)(scored, key=lambda r: float(r[column]))
    best_interval = interval(best, column)
    marks = {}
    for row in scored:
        if row is best:
            marks[row["name"]] = "best"
            continue
        own = interval(row, column)
        if own is None or best_interval is None:
            marks[row["name"]] = "no interval"
        else:
            marks[row["name"]] = "within spread" if overlap(own, best_interval) else "below"
    return marks


def distinguishable(a: dict, b: dict, column: str) -> bool | None:
    """Whether rows a and b differ in `column` by more than their spread (disjoint intervals);
    None when either has no interval."""
    ia, ib = interval(a, column), interval(b, column)
    if ia is None or ib is None:
        return None
    return not overlap(ia, ib)
