"""Test negative log-likelihood of a trained VAE run, by importance sampling.

    python benchmarks/nll.py runs/vae_best                       # k=1000, the full test set
    python benchmarks/nll.py runs/vae_best --k 100 --n 2000      # a quick estimate

The test set is the one `zoo.training.trainer.load_data` gives the run's recipe: for binarized recipes it
is binarized once with the fixed seed `train.seed + 1`, and training never sees it. Each
example's log p(x) is log (1/k)·Σ_i p(x, z_i)/q(z_i|x) with z_i ~ q(z|x) (`VAE.log_likelihood`);
the NLL is the mean of −log p(x). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory written by `zoo fit`")
    parser.add_argument("--k", type=int, default=1000, help="importance samples per example (default 1000)")
    parser.add_argument("--n", type=int, default=0, help="first n test examples (default 0 = all)")
    parser.add_argument("--model", default="model.keras", help="model file in the run (model.keras or best.keras)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the importance samples")
    parser.add_argument("--batch-size", type=int, default=100, help="examples per batch")
    parser.add_argument("--test-binarization-seed", type=int, default=None,
                        help="binarize the raw test images once with this seed instead of the run's own test "
                             "binarization (to compare with a peer that used another seed)")
    args = parser.parse_args(argv)
    if args.k < 1 or args.n < 0:
        parser.error("--k must be >= 1 and --n >= 0")
    run = Path(args.run)
    for name in ("recipe.toml", args.model):
        if not (run / name).is_file():
            parser.error(f"{run / name} does not exist: pass the directory of a finished `zoo fit` run")

    import keras
    import numpy as np

    import zoo  # noqa: F401  (registers the model classes for loading)
    from zoo.configs.recipe import load_recipe
    from zoo.training.trainer import load_data

    recipe = load_recipe(run / "recipe.toml")
    if recipe.model.family != "vae":
        parser.error(f"{run} holds a '{recipe.model.family}' model; the NLL needs a VAE")
    x_test = load_data(recipe).x_test
    binarization = f"{recipe.data.binarize}, test set seed {recipe.train.seed + 1}"
    if args.test_binarization_seed is not None:
        from zoo.data.sources import binarize_static, load_arrays

        d = recipe.data
        grey = load_arrays(d.dataset, data_dir=d.data_dir or None, source=d.source).x_test
        x_test = binarize_static(grey, args.test_binarization_seed)
        binarization = f"test set binarized once with numpy default_rng({args.test_binarization_seed})"
    x = x_test[: args.n] if args.n else x_test
    model = keras.saving.load_model(run / args.model)
    start = time.perf_counter()
    log_px = model.log_likelihood(x, num_samples=args.k, batch_size=args.batch_size, seed=args.seed)
    seconds = time.perf_counter() - start
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    out = {
        "run": str(run), "model": args.model, "test_nll": round(float(-np.mean(log_px)), 3),
        "standard_error": round(float(np.std(log_px, ddof=1) / np.sqrt(len(log_px))), 3) if len(log_px) > 1 else None,
        "k": args.k, "n_test": len(x), "test_binarization": binarization,
        "epochs": metrics.get("epochs"), "train_seconds": metrics.get("train_seconds_this_session"),
        "eval_seconds": round(seconds, 1),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
