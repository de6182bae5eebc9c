"""What an export wrote, for people and for report.json: sizes, errors against Keras, latency."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from zoo.export.saved_model import signature_names
from zoo.io import write_json

EVAL_BATCH = 500


def serving_feeds(model, x: np.ndarray) -> list[dict]:
    """The serving_default inputs of the examples `x`, batch by batch: the model's own
    `signature_inputs` (x, and the labels a conditional model makes up for them)."""
    return [model.signature_inputs(x[s: s + EVAL_BATCH])["serving_default"] for s in range(0, len(x), EVAL_BATCH)]


def keras_reconstruction(model, feeds: list[dict]) -> np.ndarray:
    """The float Keras model's deterministic reconstruction of the `serving_feeds` (the reference
    of the report): its serving_default function, run by TensorFlow."""
    fn = model.serving_signatures()["serving_default"]
    return np.concatenate([np.asarray(fn(**feed)["reconstruction"], dtype="float32") for feed in feeds])


def measure(runner, x: np.ndarray, reference: np.ndarray, latency_runs: int, feeds: list[dict] | None = None) -> dict:
    """Error of `runner`'s reconstruction of `feeds` (default: x alone, in batches) against the
    clean `x` and the Keras `reference`, and the latency of one example."""
    feeds = feeds or [{"x": x[s: s + EVAL_BATCH]} for s in range(0, len(x), EVAL_BATCH)]
    recon = np.concatenate([runner(**feed)["reconstruction"] for feed in feeds])
    keras_mse = float(np.mean((reference - x) ** 2))
    mse = float(np.mean((recon - x) ** 2))
    one = {key: value[:1] for key, value in feeds[0].items()}
    for _ in range(3):
        runner(**one)
    times = []
    for _ in range(latency_runs):
        start = time.perf_counter()
        runner(**one)
        times.append(time.perf_counter() - start)
    return {
        "mse": mse,
        "keras_mse": keras_mse,
        "mse_ratio": mse / keras_mse if keras_mse > 0 else None,
        "mse_vs_keras": float(np.mean((recon - reference) ** 2)),
        "max_abs_diff": float(np.max(np.abs(recon - reference))),
        "latency_ms_median": float(np.median(times) * 1e3),
        "latency_runs": latency_runs,
    }


def write_report(directory: Path, rows: list[dict]) -> Path:
    """Merges `rows` into `directory/report.json` (one entry per file, files that are gone dropped)."""
    path = Path(directory) / "report.json"
    entries = {}
    if path.is_file():
        try:
            entries = {e["file"]: e for e in json.loads(path.read_text()).get("files", [])
                       if (Path(directory) / e["file"]).is_file()}
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            entries = {}
    for row in rows:
        entries[row["file"]] = row
    write_json(path, {"files": sorted(entries.values(), key=lambda e: e["file"])})
    return path


def describe(paths) -> str:
    """What `export` wrote, for people: the SavedModel and its signatures, a table of the model
    files (size, reconstruction MSE against the clean input, its ratio to the float Keras model's,
    max |Δ| against the Keras outputs, median single-example latency), then every path."""
    paths = [Path(p) for p in paths]
    lines, rows = [], []
    for path in paths:
        if path.is_dir():
            lines.append(f"saved_model  {path}  signatures: {', '.join(signature_names(path))}")
        elif path.name == "report.json":
            names = {p.name for p in paths if p.parent == path.parent}
            rows += [r for r in json.loads(path.read_text())["files"] if r["file"] in names]
    if rows:
        lines.append(format_table(rows))
        lines.append(f"(MSE against the input over {rows[0]['eval_examples']} examples, {rows[0]['eval_data']}; "
                     f"float Keras model: {rows[0]['keras_mse']:.5f})")
    lines += [str(p) for p in paths if not p.is_dir()]
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    """The report rows of `export` as an aligned text table."""
    header = ("file", "quantization", "size", "MSE", "MSE/float", "max |Δ|", "latency")
    lines = [header]
    for r in rows:
        lines.append((
            Path(r["file"]).name, r["quantization"], _size(r["size_bytes"]), f"{r['mse']:.5f}",
            f"{r['mse_ratio']:.4f}" if r.get("mse_ratio") is not None else "-",
            f"{r['max_abs_diff']:.2e}", f"{r['latency_ms_median']:.3f} ms",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
                     for line in lines)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    exp = min(int(math.log(n, 1024)), 3)
    return f"{n / 1024 ** exp:.1f} {'BKMG'[exp]}{'iB' if exp else ''}"
