"""Peak memory of a reference fit and of the importance-sampled likelihood, each in a process of its own.

    python benchmarks/memory.py                       # fit 2 epochs, NLL k = 1000 on all 10,000 test images
    python benchmarks/memory.py --epochs 1 --ks 10,100,1000 --n-sweep 1000 --full-ks 1000 --json /tmp/memory.json

Every figure is the peak resident set size (`ru_maxrss` of the child, read with `os.wait4`, so
each child's own peak) of one command:

* `import`: `python -c "import zoo, tensorflow, keras"`, the floor every other row stands on;
* `fit`: `zoo fit recipes/vae_reference.toml --epochs E` (all 60,000 training images, the recipe's
  batch 128 and batch shards);
* `nll floor`: `benchmarks/nll.py RUN --k 1 --n 100`: the same process as the rows below (the
  data loaded, the model reloaded, the estimator traced) with almost no estimation;
* `nll k=K, n=N`: `benchmarks/nll.py RUN --k K --n N`, for each K of `--ks` on the first
  `--n-sweep` test images, and for each K of `--full-ks` (100 and 1000) on the full test set.
  The estimator (`zoo.models.estimators.importance_sampled_log_likelihood`) keeps
  batch_size × min(k, chunk) = 100 × min(k, 100) samples in flight, so these rows should
  grow with k up to 100 and not beyond.

Prints a markdown table and one JSON line (also written to --json).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, emit, quiet_env, zoo_cli  # noqa: E402
from speed import matmul_gflops  # noqa: E402


def peak_rss_mib(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(peak RSS in MiB, wall seconds, stdout) of `cmd` run as a child; raises on a non-zero exit."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT,
                                 env=quiet_env(**(env or {})))
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited with {child.returncode}: {stderr.strip()[-1500:]}")
    return usage.ru_maxrss / 1024, seconds, stdout  # ru_maxrss is in KiB on Linux


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/vae_reference.toml")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the fit (default 2)")
    parser.add_argument("--ks", default="10,100,1000", help="importance samples of the sweep (default 10,100,1000)")
    parser.add_argument("--n-sweep", type=int, default=1000, help="test images of the sweep (default 1000)")
    parser.add_argument("--full-ks", default="100,1000", help="k on the full test set (default 100,1000; '' skips)")
    parser.add_argument("--json", default="", help="also write the result to this file")
    args = parser.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",") if k]
    full_ks = [int(k) for k in args.full_ks.split(",") if k]
    if args.epochs < 1 or args.n_sweep < 1 or any(k < 1 for k in ks + full_ks):
        parser.error("--epochs, --n-sweep and every k must be >= 1")
    python, zoo = sys.executable, zoo_cli()
    nll = str(ROOT / "benchmarks" / "nll.py")
    rows = []

    def measure(name, cmd, **extra):
        load = os.getloadavg()[0]
        mib, seconds, stdout = peak_rss_mib(cmd)
        shown = shlex.join("python" if c == python else "zoo" if c == zoo else "RUN" if c == run
                           else str(Path(c).relative_to(ROOT)) if c.startswith(str(ROOT)) else c for c in cmd)
        rows.append({"what": name, "command": shown,
                     "peak_rss_mib": round(mib, 1), "seconds": round(seconds, 1), "load_before": round(load, 2),
                     **extra})
        print(f"memory.py: {name}: {mib:,.0f} MiB, {seconds:.0f} s (load {load:.1f})", file=sys.stderr, flush=True)
        return stdout

    tmp = tempfile.TemporaryDirectory(prefix="zoo-memory-")
    run = str(Path(tmp.name) / "run")
    with tmp:
        measure("import", [python, "-c", "import zoo, tensorflow, keras"])
        measure("fit", [zoo, "fit", args.recipe, "--epochs", str(args.epochs), "--out", run, "--quiet"],
                epochs=args.epochs)
        metrics = json.loads((Path(run) / "metrics.json").read_text())
        measure("nll floor", [python, nll, run, "--k", "1", "--n", "100"], k=1, n=100)
        for k in ks:
            out = measure(f"nll k={k}, n={args.n_sweep}", [python, nll, run, "--k", str(k), "--n", str(args.n_sweep)],
                          k=k, n=args.n_sweep)
            rows[-1]["test_nll"] = json.loads(out.strip().splitlines()[-1])["test_nll"]
        for k in full_ks:
            out = measure(f"nll k={k}, all test images", [python, nll, run, "--k", str(k)], k=k, n=None)
            line = json.loads(out.strip().splitlines()[-1])
            rows[-1].update(test_nll=line["test_nll"], n=line["n_test"])
    # After the children, not before: a child forked from a parent that holds TensorFlow could count the
    # parent's pages in its ru_maxrss (Linux keeps the pre-exec high-water mark).
    rate = matmul_gflops()
    sweep = [r for r in rows if r["what"].startswith("nll k=") and r.get("n") == args.n_sweep]
    full = [r for r in rows if r["what"].endswith("all test images")]
    floor = next(r for r in rows if r["what"] == "nll floor")["peak_rss_mib"]
    result = {
        "recipe": args.recipe, "epochs": args.epochs, "cpus": os.cpu_count(), "matmul_gflops_after": round(rate, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows,
        "fit_train_samples_per_second": metrics.get("train_samples_per_second"),
        "nll_sweep_spread_mib": round(max(r["peak_rss_mib"] for r in sweep) - min(r["peak_rss_mib"] for r in sweep), 1)
        if sweep else None,
        "full_set_spread_mib": round(max(r["peak_rss_mib"] for r in full) - min(r["peak_rss_mib"] for r in full), 1)
        if full else None,
        "nll_above_floor_mib": {r["what"]: round(r["peak_rss_mib"] - floor, 1) for r in rows
                                if r["what"].startswith("nll k=")},
    }
    print(f"matmul rate after the runs {rate:.0f} GFLOP/s\n")
    print("| what | peak RSS (MiB) | above the nll floor (MiB) | s | load before | command |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        above = f"{r['peak_rss_mib'] - floor:+,.0f}" if r["what"].startswith("nll") else ""
        print(f"| {r['what']} | {r['peak_rss_mib']:,.0f} | {above} | {r['seconds']:.0f} | {r['load_before']:.1f} | "
              f"`{r['command']}` |")
    if sweep:
        print(f"\nThe sweep's peaks (k = {', '.join(str(r['k']) for r in sweep)} on {args.n_sweep} images) span "
              f"{result['nll_sweep_spread_mib']:.0f} MiB.")
    if full:
        print(f"On all test images (k = {', '.join(str(r['k']) for r in full)}) they span "
              f"{result['full_set_spread_mib']:.0f} MiB.")
    return emit(result, args.json)


if __name__ == "__main__":
    main()
