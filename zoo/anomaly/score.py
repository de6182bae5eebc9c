"""`zoo score`: score examples with a trained run, against a threshold calibrated on held-out normal data.

Example:
    >>> result = zoo.score("runs/tabular_ae", data="new_rows.csv", rule="quantile", level=0.99)
    >>> result.table[result.table.is_anomaly]          # the flagged rows
    >>> result.summary["flagged_fraction"]

The threshold (`zoo.anomaly.thresholds`) is calibrated once on the run's validation split, the
held-out part of the training data (its training split if the recipe kept none), and stored in
<run>/threshold.json; a later call with the same score, rule and level reuses it, and the exported
`detect` signature bakes it in. Scored examples: the run's test split, or every example of `data`
read with the run's own [data] settings (columns, window, image size, ...).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from zoo.anomaly.metrics import detection_metrics
from zoo.anomaly.scores import score_examples
from zoo.anomaly.thresholds import THRESHOLD_FILE, calibration, check_rule, read_threshold
from zoo.io import atomic_path, write_json

#: [data] keys that name the source; `score(data=...)` replaces them and keeps the rest of the run's table.
SOURCE_KEYS = ("dataset", "path", "format", "test_path", "data_dir", "source", "binarize", "x_key", "labels")
OUTPUT_SUFFIXES = (".csv", ".parquet")


@dataclasses.dataclass
class Scored:
    """The outcome of `score`.

    Attributes:
        table: a pandas DataFrame, one row per example: index, score, threshold, is_anomaly, and
            label / anomalous when the data has labels (anomalous when anomaly or normal labels are given).
        summary: examples, flagged, flagged_fraction, the threshold's provenance, and with known
            anomalies auroc, auprc, precision, recall, f1.
        path: the file the table was written to.
        threshold: the calibration (threshold.json).
    """

    table: object
    summary: dict
    path: Path | None
    threshold: dict


def scoring_data(recipe, data: str, splits=None):
    """The run's [data] table reading `data` instead (`zoo.configs.recipe.data_table`): a table
    or series is read by the training columns (`splits.feature_names`), and by its label column
    when the new file has one."""
    from zoo.configs.recipe import DataConfig, data_table

    kept = {k: v for k, v in recipe.data.to_dict().items() if k not in SOURCE_KEYS}
    kept["normal_labels"] = []  # everything the new data holds is scored
    table = data_table(data)
    if splits is not None and splits.feature_names and "path" in table:
        from zoo.data.catalog import TABLE_SUFFIXES
        from zoo.data.tables import column_names

        if Path(table["path"]).suffix.lower() in TABLE_SUFFIXES:
            kept["columns"] = list(splits.feature_names)
            kept["label_column"] = splits.label_name if splits.label_name in column_names(table["path"]) else ""
    try:
        return DataConfig(**{**kept, **table})
    except (TypeError, ValueError) as e:
        raise ValueError(f"--data {data}: {e}") from None


def _labels_to_truth(y, class_names, anomaly_labels, normal_labels):
    if anomaly_labels and normal_labels:
        raise ValueError("give anomaly labels or normal labels, not both")
    if not (anomaly_labels or normal_labels):
        return None
    if y is None:
        raise ValueError("anomaly or normal labels were given, but the scored data has no labels")
    names = {str(n): i for i, n in enumerate(class_names)}

    def code(label):
        text = str(label)
        if text in names:
            return names[text]
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"label {label!r} is neither a class of the data ({', '.join(names) or 'integers'}) "
                             f"nor an integer") from None

    chosen = {code(v) for v in (anomaly_labels or normal_labels)}
    unknown = sorted(chosen - set(np.unique(y).tolist()))
    if unknown:
        raise ValueError(f"label {unknown[0]} does not occur in the scored data (its labels: "
                         f"{', '.join(map(str, np.unique(y).tolist()))})")
    member = np.isin(y, sorted(chosen))
    return member if anomaly_labels else ~member


def score(run, data: str | None = None, *, score: str = "objective", rule: str = "quantile", level=None,
          anomaly_labels=(), normal_labels=(), out=None, nll_samples: int = 100, seed: int = 0,
          recalibrate: bool = False) -> Scored:
    """Scores examples with a finished run and flags those above the calibrated threshold.

    Args:
        run: a run directory of `zoo fit`.
        data: what to score: a file or folder, or a dataset name (default: the run's test split).
        score: the per-example score (`Autoencoder.anomaly_score_names`): objective, mse, mae,
            bce, and for the VAE elbo and nll.
        rule, level: the threshold rule and its level (`zoo.anomaly.thresholds`).
        anomaly_labels / normal_labels: labels (ints or class names) of the anomalous / normal
            examples, for AUROC, AUPRC, precision, recall and F1 (default: the recipe's
            `data.normal_labels`, for a run trained on one class).
        out: the table's file (.csv or .parquet; default <run>/scores.csv).
        nll_samples, seed: importance samples of the "nll" score.
        recalibrate: calibrate again even if threshold.json has this score, rule and level.

    Raises:
        FileNotFoundError: not a finished run.
        ValueError: a bad score, rule, level, label or output path; data that cannot be read or
            does not fit the model (one line, nothing written).
    """
    import pandas as pd

    from zoo.data.examples import DataError
    from zoo.data.splits import load_splits, read_source
    from zoo.evaluation.evaluate import load_run

    model, recipe, run_dir, _ = load_run(run)
    model.check_score_name(score)
    level = check_rule(rule, level)
    out = Path(out) if out is not None else run_dir / "scores.csv"
    if out.suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"--out must end in {' or '.join(OUTPUT_SUFFIXES)}. Received: {out}")
    if out.exists() and out.is_dir():
        raise ValueError(f"--out {out} is a directory; name a .csv or .parquet file")
    splits = load_splits(recipe.data, recipe.train.seed)
    if data is None:
        parts, class_names, what = [(splits.x_test, splits.y_test)], splits.class_names, f"test split of {splits.source}"
    else:
        loaded = read_source(scoring_data(recipe, data, splits))
        if tuple(loaded.input_shape) != tuple(model.input_shape_):
            raise DataError(f"{data}: examples of shape {loaded.input_shape} do not fit the model's input "
                            f"{tuple(model.input_shape_)}")
        parts = [(loaded.x, loaded.y)] + ([(loaded.x_test, loaded.y_test)] if loaded.x_test is not None else [])
        class_names, what = loaded.class_names, loaded.source  # everything the source holds is scored
        codes = [] if loaded.y is None else np.unique(np.concatenate([p[1] for p in parts if p[1] is not None]))
        if not class_names and len(codes) and codes.min() >= 0 and codes.max() < len(splits.class_names):
            class_names = splits.class_names  # integer labels, coded as the training data named them
    y = None if any(p[1] is None for p in parts) else np.concatenate([p[1] for p in parts])
    for x, labels in parts:  # a model that takes labels refuses data without them, before anything is written
        model.inputs_of(x, labels)
    if not (anomaly_labels or normal_labels) and recipe.data.normal_labels and y is not None:
        normal_labels = recipe.data.normal_labels  # a one-class run knows what is normal
    truth = _labels_to_truth(y, class_names, tuple(anomaly_labels), tuple(normal_labels))
    calib = read_threshold(run_dir)
    if recalibrate or calib is None or (calib.get("score"), calib.get("rule"), calib.get("level")) != (score, rule, level):
        held, name = (splits.x_val, "validation split") if splits.x_val is not None else (splits.x_fit, "training split")
        held_labels = splits.y_val if splits.x_val is not None else splits.y_fit
        if splits.x_val is None and recipe.data.binarize == "dynamic":
            # The fit split stays grayscale for the pipeline to resample; the test split was
            # binarized once: calibrate on a binarized copy (seed + 2, as a validation split would be).
            from zoo.data.sources import binarize_static

            held, name = binarize_static(held, recipe.train.seed + 2), "training split, binarized once"
        normal = score_examples(model, held, score, nll_samples=nll_samples, seed=seed, labels=held_labels)
        calib = calibration(normal, score, rule, level, f"{name} of {splits.source} ({len(held):,} examples)")
        write_json(run_dir / THRESHOLD_FILE, calib)
    s = np.concatenate([score_examples(model, x, score, nll_samples=nll_samples, seed=seed, labels=labels)
                        for x, labels in parts])
    t = calib["threshold"]
    table = pd.DataFrame({"index": np.arange(len(s)), "score": s, "threshold": t, "is_anomaly": s > t})
    if y is not None:
        table["label"] = [class_names[v] if class_names else int(v) for v in y]
    summary = {"examples": int(len(s)), "flagged": int((s > t).sum()), "flagged_fraction": float(np.mean(s > t)),
               "data": what, **{k: calib[k] for k in ("score", "rule", "level", "threshold", "calibration_data")}}
    if truth is not None:
        table["anomalous"] = truth
        summary.update(detection_metrics(s, truth, t))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False) if out.suffix == ".csv" else table.to_parquet(tmp, index=False)
    return Scored(table=table, summary=summary, path=out, threshold=calib)
