"""Batch size against throughput and likelihood: the reference VAE at batch 128 to 4,096, three learning-rate rules.

    python benchmarks/batch_scaling.py                      # 4 epochs each, all batches and rules
    python benchmarks/batch_scaling.py --batches 128,1024 --rules sqrt --epochs 8 --json /tmp/scaling.json

For every batch B of `--batches` and learning-rate rule of `--rules`, `zoo fit
recipes/vae_reference.toml` trains for `--epochs` epochs (the same number of training samples,
60,000 per epoch, at every batch: fewer steps at bigger batches) with

* `constant`: learning rate 1e-3 at every batch;
* `linear`: 1e-3 · B / 128 (Goyal et al. 2017's rule for SGD);
* `sqrt`: 1e-3 · √(B / 128) (the rule that keeps the variance of Adam's update per sample,
  Krizhevsky 2014; Hoffer et al. 2017);

and reports the steady-state samples/s (the epochs after the first, `train_samples_per_second`)
and the test NLL (importance-sampled, k = `--k` on the first `--ntest` test images binarized
once with numpy `default_rng(0)`, `benchmarks/nll.py`, as `benchmarks/speed.py` does). At B = 128
the three rules are the same run, made once. A run whose loss diverges (`zoo fit` exits 3) is
reported as diverged. Runs are subprocesses, in the order given.

Prints a markdown table and one JSON line (also written to --json).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from speed import matmul_gflops, run_zoo  # noqa: E402

RECIPE = "recipes/vae_reference.toml"
BASE_BATCH, BASE_LR = 128, 1e-3
RULES = {"constant": lambda b: BASE_LR, "linear": lambda b: BASE_LR * b / BASE_BATCH,
         "sqrt": lambda b: BASE_LR * math.sqrt(b / BASE_BATCH)}


def learning_rate(rule: str, batch: int) -> float:
    """The learning rate `rule` gives batch `batch`, from 1e-3 at batch 128."""
    return RULES[rule](batch)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="128,256,512,1024,2048,4096")
    parser.add_argument("--rules", default="constant,linear,sqrt", help=f"of {', '.join(RULES)}")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (default 4); the first is not timed")
    parser.add_argument("--k", type=int, default=100, help="importance samples of the NLL (default 100)")
    parser.add_argument("--ntest", type=int, default=2000, help="test images of the NLL (default 2000)")
    parser.add_argument("--json", default="", help="also write the result to this file")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",") if b]
    rules = [r for r in args.rules.split(",") if r]
    unknown = [r for r in rules if r not in RULES]
    if unknown or args.epochs < 2 or any(b < 1 for b in batches) or args.k < 1:
        parser.error(f"--rules must be of {', '.join(RULES)}, --epochs >= 2, batches and --k >= 1")
    rate = matmul_gflops()
    rows, made = [], {}
    with tempfile.TemporaryDirectory(prefix="zoo-scaling-") as tmp:
        for batch in batches:
            for rule in rules:
                lr = learning_rate(rule, batch)
                key = (batch, round(lr, 12))
                if key in made:  # B = 128: every rule gives 1e-3, one run
                    rows.append({**made[key], "rule": rule, "same_run_as": made[key]["rule"]})
                    continue
                sets = [f"train.batch_size={batch}", f"train.learning_rate={lr!r}"]
                load = os.getloadavg()[0]
                started = time.perf_counter()
                row = {"batch": batch, "rule": rule, "learning_rate": lr, "load_before": round(load, 2)}
                try:
                    row.update(run_zoo(RECIPE, sets, args.epochs, args.k, args.ntest, Path(tmp) / f"b{batch}-{rule}"))
                except RuntimeError as e:
                    if "(3)" not in str(e).split(":")[0]:
                        raise
                    row.update(diverged=True, samples_per_s=None, test_nll=None)
                row["seconds"] = round(time.perf_counter() - started, 1)
                made[key] = row
                rows.append(row)
                print(f"batch_scaling.py: B={batch} {rule} lr={lr:.3g}: {row.get('samples_per_s')} samples/s, "
                      f"NLL {row.get('test_nll')} (load {load:.1f}, {row['seconds']:.0f} s)", file=sys.stderr,
                      flush=True)
    result = {"recipe": RECIPE, "epochs": args.epochs, "samples_per_run": 60000 * args.epochs, "k": args.k,
              "n_test": args.ntest, "cpus": os.cpu_count(), "matmul_gflops": round(rate, 1),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}
    print(f"{RECIPE}, {args.epochs} epochs ({60000 * args.epochs:,} training samples) per run; test NLL with "
          f"k = {args.k} on {args.ntest} test images; matmul rate {rate:.0f} GFLOP/s\n")
    print("| batch | steps | samples/s | " + " | ".join(f"NLL, {r} (lr)" for r in rules) + " |")
    print("|---|---|---|" + "---|" * len(rules))
    for batch in batches:
        mine = {r["rule"]: r for r in rows if r["batch"] == batch}
        speeds = [r["samples_per_s"] for r in mine.values() if r.get("samples_per_s")]
        cells = []
        for rule in rules:
            r = mine[rule]
            nll = "diverged" if r.get("diverged") else f"{r['test_nll']:.2f}"
            cells.append(f"{nll} ({r['learning_rate']:.3g})")
        speed = f"{sorted(speeds)[len(speeds) // 2]:,.0f}" if speeds else "–"
        print(f"| {batch} | {args.epochs * math.ceil(60000 / batch):,} | {speed} | " + " | ".join(cells) + " |")
    return emit(result, args.json)


if __name__ == "__main__":
    main()
