"""Thresholds calibrated on held-out normal data, and the run's threshold.json (numpy only).

With s_1..s_n the scores of held-out normal examples:

    quantile:       t = the level-quantile of s (default 0.95: 5% of normal data flagged)
    sigma:          t = mean(s) + level·std(s) (default k = 1, the TensorFlow autoencoder tutorial's rule)
    contamination:  t = the (1 − level)-quantile of s, for a data set where a fraction `level` is
                    expected to be anomalous (PyOD's `contamination`, default 0.1)
    max:            t = max(s) (keras-io's time-series example: nothing normal is flagged)

An example is anomalous when its score is above t. Quantiles are numpy's linear interpolation.
"""

from __future__ import annotations

import math

import numpy as np

from zoo.training.run_dir import THRESHOLD_FILE, read_threshold  # noqa: F401  (where a run keeps it)

RULES = ("quantile", "sigma", "contamination", "max")
DEFAULT_LEVELS = {"quantile": 0.95, "sigma": 1.0, "contamination": 0.1, "max": None}


def check_rule(rule: str, level):
    """The level of `rule` (its default when None), checked; ValueError in one line."""
    if rule not in RULES:
        raise ValueError(f"Unknown threshold rule {rule!r}. Allowed: {', '.join(RULES)}")
    if rule == "max":
        if level is not None:
            raise ValueError("the threshold rule 'max' takes no level")
        return None
    level = DEFAULT_LEVELS[rule] if level is None else level
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not math.isfinite(level):
        raise ValueError(f"threshold level must be a number. Received: level={level!r}")
    if rule == "quantile" and not 0 < level < 1:
        raise ValueError(f"rule 'quantile' needs a level in (0, 1), e.g. 0.95. Received: level={level}")
    if rule == "contamination" and not 0 < level < 1:
        raise ValueError(f"rule 'contamination' needs the expected fraction of anomalies in (0, 1), e.g. 0.05. "
                         f"Received: level={level}")
    if rule == "sigma" and level < 0:
        raise ValueError(f"rule 'sigma' needs k >= 0 (threshold = mean + k·std). Received: level={level}")
    return float(level)


def threshold(scores, rule: str = "quantile", level=None) -> float:
    """The threshold of `rule` at `level` over the normal scores `scores` (see the module docstring).

    Raises:
        ValueError: an unknown rule, a bad level, or no finite score.
    """
    level = check_rule(rule, level)
    s = np.asarray(scores, np.float64).ravel()
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError(f"calibration needs finite scores; received {s.size} scores, "
                         f"{int(np.sum(~np.isfinite(s)))} of them NaN or inf")
    if rule == "quantile":
        return float(np.quantile(s, level))
    if rule == "contamination":
        return float(np.quantile(s, 1.0 - level))
    if rule == "sigma":
        return float(s.mean() + level * s.std())
    return float(s.max())


def calibration(scores, score: str, rule: str, level, data: str) -> dict:
    """What threshold.json holds: the threshold and how it was obtained."""
    level = check_rule(rule, level)
    s = np.asarray(scores, np.float64)
    return {"score": score, "rule": rule, "level": level, "threshold": threshold(s, rule, level),
            "calibration_data": data, "examples": int(s.size), "mean": float(s.mean()), "std": float(s.std()),
            "flagged_fraction": float(np.mean(s > threshold(s, rule, level)))}
