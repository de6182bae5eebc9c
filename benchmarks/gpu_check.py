"""The GPU check: every family trains on the GPU, the VAEs' throughput grid, a GPU-trained export checked on CPU.

    python benchmarks/gpu_check.py                          # on a machine with a GPU: < 8 minutes
    python benchmarks/gpu_check.py --out /tmp/gpu-check --steps 400
    python benchmarks/gpu_check.py --cpu --steps 2          # the same plan on the CPU, tiny (a smoke test)

Without a GPU (`tf.config.list_physical_devices("GPU")` empty) it exits with status 2 and one
line, unless `--cpu` is given. Everything goes through the trainer's own settings, nothing
re-implemented: `train.strategy` (one_device, mirrored), `train.mixed_precision`,
`train.jit_compile` (XLA), `train.batch_size`, `train.steps_per_epoch`.

What it runs, in one process (the export check in a second one):

1. **Families**: for every registered family (`zoo.list_models()`), its shipped recipe (the one
   named after the family, else the first shipped recipe of that family on built-in data)
   trained by `zoo.fit` for `--steps` steps (2 epochs), once with `strategy = "one_device"` (the
   first GPU) and once with `"mirrored"` (all GPUs; on `--cpu`, two logical CPU devices). Each
   row: the loss of both epochs (finite, and the second below the first), steady-state samples/s
   (the second epoch), the replicas, seconds.
2. **Throughput**: `recipes/vae_reference.toml` and `recipes/conv_vae.toml`, each in float32,
   mixed_float16 and mixed_bfloat16, with XLA off and on, at batch 128 and at RECOMMENDED_BATCH:
   the model built and compiled by `zoo.training.trainer.build_model` on one device, fed by the
   trainer's pipeline (`zoo.data.pipeline.make_dataset`, dynamic binarization), one warm-up
   epoch (tracing, XLA compilation) and two timed epochs of ⌈steps/2⌉ steps, rounded up to the
   recipe's `steps_per_execution` (on `--cpu` the latter is capped at the steps, so the smoke
   test stays small). No run directory is written for these rows.
3. **Export**: the vae family's GPU-trained run of step 1 is exported (`zoo.export`: the
   SavedModel and the float32 LiteRT file); a child process with no GPU visible
   (CUDA_VISIBLE_DEVICES=-1) loads the SavedModel through TF1's session loader (as TF Serving
   does, `zoo.export.runners.SavedModelRunner`) and the .tflite file on the LiteRT interpreter
   (`TFLiteRunner`), runs every signature of each on the same inputs, and compares them with the
   model reloaded on that CPU, and the reconstruction with the one computed on the GPU before
   export (looser: GPUs may round matmuls through TF32).

Sizing: `--max-minutes` (default 8) is a hard budget: before each row the check projects its
duration from the rows of the same kind so far, and a row that would end past the budget is
recorded as skipped, never silently dropped. The defaults (200 family steps, 100 throughput
steps per timed epoch) were sized from the `--cpu` run's host-side costs (tracing, XLA
compilation, checkpoints, the model file and figure of each `zoo fit`), which do not get
faster on a GPU, plus the steps at the CPU's measured step time divided by 10; see
docs/performance.md, "The GPU check".

Writes OUT/gpu_check.json (every row, the devices, versions, date) and OUT/gpu_check.md (the
tables), and prints the markdown. Exit status 0 when every row that ran passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parent.parent
THROUGHPUT_RECIPES = ("vae_reference", "conv_vae")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
#: The batch recommended for a GPU (docs/performance.md, "Batch size"), beside the reference 128.
RECOMMENDED_BATCH = 1024
BATCHES = (128, RECOMMENDED_BATCH)
STRATEGIES = ("one_device", "mirrored")
DEFAULT_STEPS = {"gpu": 200, "cpu": 4}
#: Tolerances of the export check: the same float32 graph on the same CPU, and against the GPU's numbers.
SAME_CPU_TOL = {"saved_model": 1e-5, "tflite": 1e-4}
GPU_TOL = 1e-2
EXPORT_EXAMPLES = 64
#: Steps per epoch from which a family row must show its loss falling from epoch 1 to epoch 2.
LEARNING_STEPS = 10


def no_gpu_line() -> str:
    return ("gpu_check: no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') is empty); "
            "run it where one is, or pass --cpu to run the same plan on the CPU")


def family_recipes(families, recipes) -> dict:
    """family → the shipped recipe that stands for it: the one named after it, else the first of that family.

    `recipes` maps each shipped recipe's name to its family; only families with a recipe are returned.
    """
    chosen = {}
    for family in families:
        mine = sorted(name for name, f in recipes.items() if f == family)
        if mine:
            chosen[family] = family if family in mine else mine[0]
    return chosen


def throughput_steps(steps: int, steps_per_execution: int, cpu: bool) -> tuple[int, int]:
    """(steps per timed epoch, steps per execution): ⌈steps/2⌉ rounded up to a multiple of the
    recipe's steps_per_execution, which `--cpu` caps at that count so a smoke run stays small."""
    per_epoch = max(1, -(-steps // 2))
    spe = min(steps_per_execution, per_epoch) if cpu else steps_per_execution
    return -(-per_epoch // spe) * spe, spe


#: `--quick`'s throughput rows: each precision, XLA setting, batch and recipe at least once.
QUICK_GRID = (("vae_reference", "mixed_float16", False, 128),
              ("vae_reference", "mixed_bfloat16", False, RECOMMENDED_BATCH),
              ("conv_vae", "float32", True, 128))


def plan(families: dict, export_family: str, quick: bool = False) -> list[dict]:
    """Every row the check runs, in order: families on one device, the export of `export_family`'s
    run, the families mirrored, the throughput grid.

    `quick` (the smoke test's plan) keeps every family on one device and the export, mirrors the
    first family only and runs QUICK_GRID instead of the whole grid."""
    rows = [{"kind": "family", "family": f, "recipe": r, "strategy": "one_device"} for f, r in families.items()]
    if export_family in families:
        rows.append({"kind": "export", "family": export_family, "recipe": families[export_family]})
    mirrored = list(families.items())[:1] if quick else families.items()
    rows += [{"kind": "family", "family": f, "recipe": r, "strategy": "mirrored"} for f, r in mirrored]
    grid = QUICK_GRID if quick else [(r, p, x, b) for r in THROUGHPUT_RECIPES for p in PRECISIONS
                                     for x in (False, True) for b in BATCHES]
    rows += [{"kind": "throughput", "recipe": r, "precision": p, "xla": x, "batch": b} for r, p, x, b in grid]
    return rows


def finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


# Device setup: before TensorFlow's runtime starts.
def setup_devices(cpu: bool) -> list[str]:
    """Memory growth on every GPU (the export check's child and others may share it); on `--cpu`,
    two logical CPU devices so that the mirrored rows run two replicas, as the test suite does.
    Returns the physical GPUs' names."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):
            pass
    if cpu:
        cpus = tf.config.list_physical_devices("CPU")
        if len(cpus) == 1 and not tf.config.get_logical_device_configuration(cpus[0]):
            tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    return [g.name for g in gpus]


def gpu_details() -> list[dict]:
    import tensorflow as tf

    out = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except (RuntimeError, ValueError):
            details = {}
        out.append({"name": gpu.name, "model": details.get("device_name", ""),
                    "compute_capability": list(details.get("compute_capability", ()))})
    return out


# The rows.
def run_family(row: dict, steps: int, out: Path) -> dict:
    """`zoo.fit` of the family's recipe for `steps` steps over 2 epochs, under `row["strategy"]`."""
    import zoo

    per_epoch = max(1, -(-steps // 2))
    recipe = zoo.load_recipe(row["recipe"], overrides=[f"train.strategy={row['strategy']}", "train.epochs=2",
                                                      f"train.steps_per_epoch={per_epoch}"])
    run_dir = out / "runs" / f"{row['family']}-{row['strategy']}"
    run = zoo.fit(recipe, out=run_dir, overwrite=True, verbose=0)
    losses = [float(v) for v in run.history["loss"]]
    from zoo.training.trainer import make_strategy

    fell = losses[-1] < losses[0]
    return {"steps": per_epoch * 2, "batch": recipe.train.batch_size,
            "replicas": int(make_strategy(row["strategy"]).num_replicas_in_sync),
            "samples_per_s": run.metrics["train_samples_per_second"], "loss": losses, "loss_fell": fell,
            "test_loss": float(run.metrics["test_loss"]), "run_dir": str(run_dir),
            # A fall of the epoch-mean loss is required only where an epoch has steps enough to show one.
            "passed": all(math.isfinite(v) for v in losses + [run.metrics["test_loss"]])
            and (fell or per_epoch < LEARNING_STEPS) and finite_positive(run.metrics["train_samples_per_second"])}


def run_throughput(row: dict, steps: int, cpu: bool, splits_cache: dict) -> dict:
    """Steady-state samples/s of a recipe at one precision, XLA setting and batch, on one device."""
    import keras

    import zoo
    import zoo.data.pipeline as zdata
    from zoo.training import trainer
    from zoo.training.callbacks import EpochTimer

    base = zoo.load_recipe(row["recipe"])
    per_epoch, spe = throughput_steps(steps, base.train.steps_per_execution, cpu)
    recipe = zoo.load_recipe(row["recipe"], overrides=[
        f"train.mixed_precision={row['precision']}", f"train.jit_compile={str(row['xla']).lower()}",
        f"train.batch_size={row['batch']}", f"train.steps_per_execution={spe}", "train.strategy=one_device"])
    if row["recipe"] not in splits_cache:
        splits_cache[row["recipe"]] = trainer.load_data(recipe)
    splits = splits_cache[row["recipe"]]
    keras.utils.set_random_seed(recipe.train.seed)
    keras.mixed_precision.set_global_policy(row["precision"])  # what zoo.fit does with train.mixed_precision
    try:
        strategy = trainer.make_strategy("one_device")
        model = trainer.build_model(recipe, strategy, per_epoch * 3, splits.input_shape, splits.preprocessing)
        binarize = "dynamic" if recipe.data.binarize == "dynamic" else "none"
        ds = zdata.make_dataset(splits.x_fit, batch_size=row["batch"], seed=recipe.train.seed, binarize=binarize,
                                repeat=True)
        timer = EpochTimer()
        history = model.fit(ds, epochs=3, steps_per_epoch=per_epoch, callbacks=[timer], verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    steady = timer.times[1:]
    sps = per_epoch * row["batch"] * len(steady) / sum(steady)
    losses = [float(v) for v in history.history["loss"]]
    return {"steps_per_epoch": per_epoch, "steps_per_execution": spe, "samples_per_s": round(sps, 1),
            "ms_per_step": round(sum(steady) / (per_epoch * len(steady)) * 1e3, 3),
            "first_epoch_s": round(timer.times[0], 2), "loss": losses,
            "passed": all(math.isfinite(v) for v in losses) and finite_positive(sps)}


def run_export(row: dict, out: Path, done: list) -> dict:
    """Exports the family's one-device run and starts its check in a child process on the CPU
    (`finish_export` collects it; the plan goes on meanwhile)."""
    import keras
    import numpy as np

    import zoo

    source = next((r for r in done if r.get("kind") == "family" and r.get("family") == row["family"]
                   and r.get("strategy") == "one_device" and r.get("passed")), None)
    if source is None:
        raise RuntimeError(f"no trained one_device run of {row['family']} to export")
    run_dir = Path(source["run_dir"])
    base = out / "exports"
    shutil.rmtree(base, ignore_errors=True)  # this check's own exports: version 1 every time
    from zoo.configs.recipe import load_recipe
    from zoo.training.trainer import load_data

    x = np.asarray(load_data(load_recipe(run_dir / "recipe.toml")).x_test[:EXPORT_EXAMPLES], "float32")
    paths = zoo.export(run_dir, base=base, format="saved_model")
    # The export's own report (error against Keras, latency) on the same test images.
    paths += zoo.export(run_dir, base=base, format="tflite", quantize="none", test_data=x,
                         representative_data=x, latency_runs=5)
    saved_model = next(p for p in paths if p.is_dir())
    tflite = next(p for p in paths if p.suffix == ".tflite")
    model = keras.saving.load_model(run_dir / "model.keras")
    on_device = np.asarray(model.serving_signatures()["serving_default"](x)["reconstruction"])
    reference = out / "export_reference.npz"
    np.savez(reference, x=x, reconstruction=on_device)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--verify-export", str(run_dir),
                              str(saved_model), str(tflite), str(reference)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    return {"trained_on": source["device"], "run_dir": str(run_dir), "saved_model": str(saved_model),
            "tflite": str(tflite), "passed": False, "child": child, "child_started": time.perf_counter()}


def finish_export(row: dict, timeout: float = 600) -> dict:
    """The export row with its CPU check's result (waiting for the child started by `run_export`)."""
    child = row.pop("child")
    started = row.pop("child_started")
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return {**row, "passed": False, "error": f"the CPU check took more than {timeout:.0f} s"}
    row["check_seconds"] = round(time.perf_counter() - started, 2)
    if child.returncode:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        return {**row, "passed": False, "error": f"the CPU check failed ({child.returncode}): {last[:300]}"}
    return {**row, **json.loads(stdout.strip().splitlines()[-1])}


def verify_export(run_dir: str, saved_model: str, tflite: str, reference: str) -> dict:
    """In a process without GPUs: every signature of the SavedModel (TF1 loader) and of the .tflite
    file (LiteRT) against the model reloaded here, and the reconstruction against the GPU's."""
    import keras
    import numpy as np
    import tensorflow as tf

    import zoo  # noqa: F401  (registers the model classes)
    from zoo.export.runners import SavedModelRunner, TFLiteRunner

    devices = [d.device_type for d in tf.config.list_logical_devices()]
    ref = np.load(reference)
    x = ref["x"]
    model = keras.saving.load_model(Path(run_dir) / "model.keras")
    inputs = model.signature_inputs(x)
    functions = model.serving_signatures()
    out = {"checked_on": sorted(set(devices)), "formats": {}}
    passed = "GPU" not in devices
    for name, runner, tol in (("saved_model", SavedModelRunner(saved_model), SAME_CPU_TOL["saved_model"]),
                              ("tflite", TFLiteRunner(tflite), SAME_CPU_TOL["tflite"])):
        diffs = {}
        for signature in sorted(runner.signatures):
            got = runner(signature, **inputs[signature])
            want = {k: np.asarray(v) for k, v in functions[signature](**inputs[signature]).items()}
            diffs[signature] = max(float(np.max(np.abs(got[k].astype("float64") - want[k].astype("float64"))
                                            / (1.0 + np.abs(want[k].astype("float64"))))) for k in want)
        gpu_diff = float(np.max(np.abs(runner(x=x)["reconstruction"] - ref["reconstruction"])))
        ok = all(d <= tol for d in diffs.values()) and gpu_diff <= GPU_TOL
        out["formats"][name] = {"signatures": sorted(diffs), "max_rel_diff_vs_cpu_keras": diffs,
                                "tolerance": tol, "max_abs_diff_vs_device_reconstruction": gpu_diff,
                                "device_tolerance": GPU_TOL, "passed": ok}
        passed = passed and ok
        if hasattr(runner, "close"):
            runner.close()
    out["passed"] = passed
    return out


# Reporting.
def _num(x, digits=0) -> str:
    if not isinstance(x, (int, float)):
        return "–"
    return f"{x:,.{digits}f}"


def markdown(result: dict) -> str:
    lines = [f"# GPU check ({result['mode']})", "",
             f"{result['date']}; devices: {result['device']}; TensorFlow {result['tensorflow']}, "
             f"Keras {result['keras']}; "
             f"`{result['command']}`; {result['seconds']:.0f} s in all (budget {result['max_minutes']:g} min).", ""]
    fam = [r for r in result["rows"] if r["kind"] == "family"]
    lines += ["## Every family, trained by `zoo fit`", "",
              "| family | recipe | strategy | replicas | steps | batch | loss, epoch 1 → 2 | test loss | samples/s "
              "| s | passed |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in fam:
        loss = " → ".join(f"{v:.2f}" for v in r.get("loss", [])) or "–"
        lines.append(f"| {r['family']} | {r['recipe']} | {r['strategy']} | {r.get('replicas', '–')} | "
                     f"{r.get('steps', '–')} | {r.get('batch', '–')} | {loss} | {_num(r.get('test_loss'), 2)} | "
                     f"{_num(r.get('samples_per_s'))} | {_num(r.get('seconds'), 1)} | {_status(r)} |")
    thr = [r for r in result["rows"] if r["kind"] == "throughput"]
    lines += ["", "## Training throughput on one device (samples/s, steady state)", "",
              "| recipe | precision | XLA | " + " | ".join(f"batch {b}" for b in BATCHES)
              + " | first epoch s (compile) |",
              "|---|---|---|" + "---|" * len(BATCHES) + "---|"]
    for recipe in THROUGHPUT_RECIPES:
        for precision in PRECISIONS:
            for xla in (False, True):
                cells = [r for r in thr if (r["recipe"], r["precision"], r["xla"]) == (recipe, precision, xla)]
                by_batch = {r["batch"]: r for r in cells}
                if not cells:
                    continue  # a cell --quick leaves out
                values = [(_num(by_batch[b].get("samples_per_s")) if by_batch.get(b, {}).get("passed")
                           else _status(by_batch[b])) if b in by_batch else "–" for b in BATCHES]
                first = ", ".join(_num(by_batch[b].get("first_epoch_s"), 1) for b in BATCHES if b in by_batch)
                lines.append(f"| {recipe} | {precision} | {'on' if xla else 'off'} | " + " | ".join(values)
                             + f" | {first} |")
    exp = [r for r in result["rows"] if r["kind"] == "export"]
    lines += ["", "## A model trained on the device, exported, checked on the CPU", ""]
    for r in exp:
        if "formats" not in r:
            lines.append(f"{r['recipe']}: {_status(r)}")
            continue
        lines += [f"`{r['recipe']}` trained on {r['trained_on']}, checked in a process that sees "
                  f"{', '.join(r['checked_on'])}:", "",
                  "| format | loader | signatures | max relative diff against Keras on the CPU | "
                  "max abs diff against the device's reconstruction | passed |", "|---|---|---|---|---|---|"]
        for name, f in r["formats"].items():
            loader = "TF1 session loader (TF Serving's path)" if name == "saved_model" else "LiteRT interpreter"
            worst = max(f["max_rel_diff_vs_cpu_keras"].values())
            lines.append(f"| {name} | {loader} | {', '.join(f['signatures'])} | {worst:.2e} (tol {f['tolerance']:g}) | "
                         f"{f['max_abs_diff_vs_device_reconstruction']:.2e} (tol {f['device_tolerance']:g}) | "
                         f"{'yes' if f['passed'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def _status(row: dict) -> str:
    if "child" in row:
        return "exported; checking on the CPU in a child process"
    if row.get("skipped"):
        return f"skipped ({row['skipped']})"
    if row.get("error"):
        return f"error: {row['error']}"
    return "yes" if row.get("passed") else "NO"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gpu_check", help="directory of gpu_check.json, gpu_check.md, runs")
    parser.add_argument("--cpu", action="store_true", help="run the same plan on the CPU (no GPU needed)")
    parser.add_argument("--steps", type=int,
                        help=f"training steps per family fit and per throughput row "
                             f"(default {DEFAULT_STEPS['gpu']}, {DEFAULT_STEPS['cpu']} with --cpu)")
    parser.add_argument("--quick", action="store_true",
                        help="the smoke test's plan: every family on one device, the export, one family mirrored, "
                             "3 throughput rows")
    parser.add_argument("--max-minutes", type=float, default=8.0, help="time budget; rows past it are skipped (8)")
    parser.add_argument("--verify-export", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.verify_export:
        print(json.dumps(verify_export(*args.verify_export)))
        return 0
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be >= 1")
    start = time.perf_counter()
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # the CPU plan even where a GPU is, before TensorFlow loads CUDA
    gpus = setup_devices(args.cpu)
    if not gpus and not args.cpu:
        print(no_gpu_line(), file=sys.stderr)
        return 2
    steps = args.steps or DEFAULT_STEPS["cpu" if args.cpu else "gpu"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    sys.path.insert(0, str(ROOT))
    import keras
    import tensorflow as tf

    import zoo
    from zoo.training import trainer

    # The threads of train.batch_shards (a CPU-only machine) must be set before TensorFlow starts.
    trainer.early_strategy("vae_reference", [])
    shipped = {name: zoo.load_recipe(name) for name in zoo.list_recipes()}
    families = family_recipes(zoo.list_models(), {n: r.model.family for n, r in shipped.items()
                                                  if not r.data.path and r.data.kind == "images"})
    device = "CPU (--cpu)" if args.cpu else ", ".join(f"{g['name']} {g['model']}".strip() for g in gpu_details())
    rows, splits_cache, durations = [], {}, {}
    export_family = shipped[THROUGHPUT_RECIPES[0]].model.family
    for row in plan(families, export_family, args.quick):
        kind = row["kind"]
        elapsed = time.perf_counter() - start
        projected = max(durations.get(kind, [0.0]))
        if elapsed + projected > args.max_minutes * 60:
            rows.append({**row, "skipped": f"budget: {elapsed:.0f} s + {projected:.0f} s > {args.max_minutes:g} min"})
            continue
        began = time.perf_counter()
        label = " ".join(str(v) for k, v in row.items() if k != "kind")
        try:
            if kind == "family":
                result = run_family(row, steps, out)
                result["device"] = ("CPU" if args.cpu else "GPU") + (" ×" + str(result["replicas"]) if
                                                                     row["strategy"] == "mirrored" else "")
            elif kind == "export":
                result = run_export(row, out, rows)
            else:
                result = run_throughput(row, steps, args.cpu, splits_cache)
        except Exception as e:  # one failing row is reported, and the others still run
            result = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300],
                      "passed": False}
            keras.mixed_precision.set_global_policy("float32")
        seconds = time.perf_counter() - began
        durations.setdefault(kind, []).append(seconds)
        rows.append({**row, **result, "seconds": round(seconds, 2)})
        print(f"gpu_check: {kind:10s} {label}: {_status(rows[-1])} ({seconds:.1f} s)", file=sys.stderr, flush=True)
    rows = [finish_export(r) if "child" in r else r for r in rows]
    for r in rows:
        if r["kind"] == "export":
            print(f"gpu_check: export     CPU check: {_status(r)} ({r.get('check_seconds', 0):.1f} s)", file=sys.stderr)
    result = {
        "mode": ("cpu" if args.cpu else "gpu") + (", quick" if args.quick else ""), "device": device,
        "gpus": gpu_details(), "steps": steps,
        "recommended_batch": RECOMMENDED_BATCH, "max_minutes": args.max_minutes,
        "command": "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(), "cpu_cores": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2),
        "tensorflow": tf.__version__, "keras": keras.__version__, "families": families,
        "rows": rows, "seconds": round(time.perf_counter() - start, 1),
    }
    result["passed"] = all(r.get("passed") for r in rows if not r.get("skipped"))
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    (out / "gpu_check.md").write_text(text)
    print(text)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
