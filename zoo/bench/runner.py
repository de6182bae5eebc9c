"""Every recipe, one budget, one seed, one report.

`benchmark` trains each recipe with the same number of epochs (and steps per epoch) from the
same seed, evaluates it with `zoo.evaluation.evaluate` on the same test images, exports it when
`zoo.export` is available, adds the reference rows of `zoo.evaluation.baselines`, and writes:

    <out>/report.md      the tables, the settings, the machine, the command, the figures inline
    <out>/results.json   all of it as data
    <out>/results.csv    one row per variant (and reference), one column per metric
    <out>/figures/*.png  reconstructions under noise, VAE samples and interpolations,
                         2-D projections of the codes, training curves, bar charts
    <out>/runs/<recipe>/ the run directories, each with its evaluation.json

A finished run whose resolved recipe is identical is reused rather than retrained (pass
`fresh=True` to retrain), so an interrupted benchmark continues where it stopped.

Example:
    >>> results = zoo.bench.runner(["basic", "vae"], epochs=1)
    >>> results["rows"][0]["psnr"]
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import gc
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import zoo.bench.report as report
from zoo.bench.aggregate import aggregate_seeds
from zoo.bench.budgets import Budget, parse_budget
from zoo.bench.questions import answers_markdown
from zoo.checks import check_int
from zoo.evaluation.evaluate import (CORRUPTIONS, EvalSettings, corruption_column, evaluate_model, evaluation_source,
                                    load_run, prepare_data, single_thread)
from zoo.io import write_json, write_text

MAIN_METRICS = (("psnr", "PSNR dB (clean)"), ("robust_psnr_mean", "mean PSNR dB under the 6 corruptions"),
                ("probe_accuracy", "linear-probe accuracy"), ("knn_accuracy", "k-NN accuracy"),
                ("latency_ms", "inference ms per batch"), ("parameters", "parameters"))
GRID_IMAGES = 8
PROJECTED_CODES = 2000


def benchmark(recipes=None, epochs: int = 10, steps_per_epoch: int | None = None, out="bench",
              nll_samples: int = 1000, *, seed: int = 0, seeds: int = 1, budget=None, baseline: str = "basic",
              probe_train_size: int = 10_000, nll_examples: int = 0,
              eval_examples: int = 0, export: bool = True, fresh: bool = False, command: str | None = None,
              progress: bool = True, data: str | None = None, data_settings=()) -> dict:
    """Trains, evaluates and exports every recipe with one budget, and writes the report.

    Args:
        recipes: recipe names or paths (default: the shipped recipes of the Fashion-MNIST
            benchmark, or with `data` every shipped recipe whose model can take that data).
        epochs: epochs of every variant (the budget "epochs=N" when `budget` is None).
        steps_per_epoch: steps per epoch of every variant (None: whole passes over the data).
        out: the output directory.
        nll_samples: k of the VAEs' importance-sampled NLL.
        seed: `train.seed` of every variant's first seed, and the evaluation seed.
        seeds: training seeds per variant, seed, seed + 1, ...; with more than one, every metric
            is the mean over them with its standard deviation (`zoo.bench.aggregate`), runs go
            to <out>/runs/<recipe>/seed-<s>, and the figures and exports are the first seed's.
        budget: the training rule of every variant (`zoo.bench.budgets`): "epochs=N",
            "converged", "converged=CAP" or "time=MIN", or a `Budget`.
        baseline: the variant the report compares noise-trained variants with on their own noise.
        probe_train_size: training images whose codes train the probes.
        nll_examples: test images for the NLL (0: all).
        eval_examples: test images for the other metrics (0: all).
        export: call `zoo.export` on every run.
        fresh: retrain runs that are already finished with the same recipe.
        command: the command line to record in the report (default: this call, as Python).
        progress: show a progress bar and the final table in the terminal.
        data: compare the variants on this instead of their recipes' data: a file or folder of
            your own, or a dataset's name (`zoo.configs.recipe.data_config`). Every recipe then
            reads the one [data] table this and `data_settings` make, and the recipes whose model
            cannot take that data (a conv backbone on table rows, a Bernoulli likelihood on
            standardized columns, ...) are left out, with the reason in the report.
        data_settings: `KEY=VALUE` strings for that [data] table, e.g. "window=52".

    Returns:
        The results (what results.json holds): "rows", "settings", "machine", "command", ...

    Raises:
        ValueError, FileNotFoundError: a bad recipe or setting, before anything is trained.
    """
    from rich.console import Console

    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    clock = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; choose a directory")
    settings = EvalSettings(nll_samples=nll_samples, nll_examples=nll_examples, eval_examples=eval_examples,
                            probe_train_size=probe_train_size, seed=seed)
    budget = parse_budget(budget) if isinstance(budget, str) else budget or parse_budget(f"epochs={epochs}")
    check_int("seeds", seeds, 1)
    seed_list = [seed + i for i in range(1, seeds)] + [seed]  # rows and runs per seed; the first seed last
    by_seed = {s: load_recipes(recipes, budget, steps_per_epoch, s, data, data_settings) for s in seed_list}
    loaded = by_seed[seed]
    command = command or _python_command(recipes, budget, steps_per_epoch, out, nll_samples, seeds)
    console = Console(quiet=not progress, width=None if sys.stdout.isatty() else 150)

    d = loaded[0].data
    source = evaluation_source(d, seed)
    loaded, skipped = fitting_recipes(loaded, source)
    kept = {r.name for r in loaded}  # every seed's list keeps the same recipes, in the same order
    by_seed = {s: [r for r in recipes_of_seed if r.name in kept] for s, recipes_of_seed in by_seed.items()}
    machine = machine_info()
    data = prepare_data(source, settings)
    class_names = getattr(source, "class_names", ()) or report.CLASS_NAMES.get(d.dataset, ())
    figures_dir = out / "figures"
    export_fn, export_note = find_export()
    rows, exports, histories, projections, variant_figures = [], {}, {}, {}, {}
    rows_by_seed = {s: [] for s in seed_list}
    with progress_bar(console) as bar:
        task = bar.add_task("benchmark", total=len(loaded) * seeds + 1)
        for index, recipe in enumerate(loaded):
            for this in seed_list:  # the first seed last: its model stays for the figures and the export
                seeded, label = by_seed[this][index], recipe.name + (f" seed {this}" if seeds > 1 else "")
                run_dir = out / "runs" / recipe.name / (f"seed-{this}" if seeds > 1 else "")
                bar.update(task, description=f"{label}: training")
                model, metrics, reused = fit_or_reuse(seeded, run_dir, fresh)
                bar.update(task, description=f"{label}: evaluating")
                row, codes = score_run(model, seeded, metrics, data, settings, budget, run_dir, out, reused)
                rows_by_seed[this].append(row)
                if this == seed:
                    break
                del model, codes
                release_memory()
                bar.advance(task)
            bar.update(task, description=f"{recipe.name}: figures")
            variant_figures[recipe.name] = {k: report.relative(p, out)
                                            for k, p in variant_plots(model, recipe.name, data, figures_dir).items()}
            labels = data.y_test if data.y_test is not None else np.zeros(len(codes), "int64")
            projections[recipe.name] = (report.project_2d(codes[:PROJECTED_CODES]), labels[:PROJECTED_CODES])
            histories[recipe.name] = selection_curves(read_history(run_dir / "history.csv"), model.selection_metric)
            del model, codes
            release_memory()
            if export and export_fn is not None:
                bar.update(task, description=f"{recipe.name}: exporting")
                exports[recipe.name] = run_export(export_fn, run_dir, out / "saved_models")
                row["tflite_bytes"] = tflite_bytes(out / "saved_models" / recipe.name)
            row["export"] = exports.get(recipe.name, "skipped" if not export else "not available")
            bar.advance(task)
        rows = aggregate_seeds([rows_by_seed[s] for s in sorted(seed_list)]) if seeds > 1 else rows_by_seed[seed]
        bar.update(task, description="references: raw pixels, PPCA, mixtures of PPCA")
        rows += reference_rows(sorted({r["code_size"] for r in rows}), data, settings, training_examples(source, seed))
        bar.advance(task)
    figures = {"variants": variant_figures}
    report.codes_figure(projections, figures_dir / "codes.png", class_names)
    report.curves_figure(histories, figures_dir / "curves.png")
    report.bars_figure(rows, MAIN_METRICS, figures_dir / "bars.png")
    figures.update({"codes": "figures/codes.png", "curves": "figures/curves.png", "bars": "figures/bars.png"})
    if report.pareto_figure(rows, figures_dir / "pareto.png"):
        figures["pareto"] = "figures/pareto.png"
    results = {
        "command": command,
        "started": started,
        "runtime_seconds": round(time.perf_counter() - clock, 1),
        "skipped": skipped,
        "settings": {"recipes": [r.name for r in loaded], "dataset": d.path or d.dataset, "data_source": source.source,
                     "data_kind": data.kind,
                     "budget": budget.describe(), "budget_spec": budget.spec(), "seeds": seeds,
                     "train_seeds": sorted(seed_list), "baseline": baseline,
                     "steps_per_epoch": steps_per_epoch or "whole epochs", "train_seed": seed,
                     **settings.to_dict()},
        "machine": machine,
        "rows": rows,
        "exports": exports,
        "export_note": export_note if export else "Export skipped (--no-export).",
        "figures": figures,
        "questions": answers_markdown(rows, baseline),
    }
    if hasattr(os, "getloadavg"):
        machine["load average at end (1, 5, 15 min)"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    write_json(out / "results.json", results)
    write_text(out / "results.csv", report.rows_csv(rows))
    report.write_report(out / "report.md", results)
    console.print(report.rich_table(rows, report.MAIN_COLUMNS, title=f"zoo bench → {out / 'report.md'}"))
    return results


def load_recipes(recipes, budget, steps_per_epoch, seed, data=None, data_settings=()) -> list:
    """The recipes with the shared budget (a `Budget`, or a number of epochs) and seed applied
    (and the shared data, if given); every problem is raised before training."""
    from zoo.configs.recipe import data_config, load_recipe

    names = list(recipes) if recipes else default_recipes(data is not None)
    if not names:
        raise ValueError("No recipes to benchmark")
    budget = budget if isinstance(budget, Budget) else parse_budget(f"epochs={budget}")
    overrides = [*budget.overrides(), f"train.seed={seed}"]
    if steps_per_epoch is not None:
        overrides.append(f"train.steps_per_epoch={steps_per_epoch}")
    loaded = [load_recipe(name, overrides=overrides) for name in names]
    if data is not None:  # one [data] table for every variant: the recipes' own data is set aside
        shared = data_config(data, data_settings, "--data")
        loaded = [dataclasses.replace(r, data=shared) for r in loaded]
    seen = {}
    for recipe in loaded:
        if recipe.name in seen:
            raise ValueError(f"Two recipes are named {recipe.name!r} ({seen[recipe.name]}, {recipe.path}); "
                             f"rename one with `name = ...`")
        seen[recipe.name] = recipe.path
    datasets = {r.data.path or r.data.dataset for r in loaded}
    if len(datasets) > 1:
        raise ValueError(f"A benchmark compares variants on one dataset; these recipes use {', '.join(sorted(datasets))}")
    return loaded


#: The dataset of the shipped recipes `zoo bench` compares by default.
DEFAULT_DATASET = "fashion_mnist"


def default_recipes(any_data: bool) -> list[str]:
    """Every shipped recipe (`any_data`: they are all pointed at the same data), else those on
    Fashion-MNIST (the others train on tables, series or folders)."""
    from zoo.configs.recipe import list_recipes, load_recipe

    names = list_recipes()
    if any_data:
        return names
    return [n for n in names if (lambda d: not d.path and d.dataset == DEFAULT_DATASET)(load_recipe(n).data)]


def fitting_recipes(loaded: list, source) -> tuple[list, list]:
    """(the recipes whose model can take the data of `source`, [{"name", "reason"}] of the others).

    Raises:
        ValueError: no recipe fits.
    """
    from zoo.configs.recipe import RecipeError, check_model_for_data

    if not hasattr(source, "preprocessing"):  # a catalog dataset: the recipes were checked on load
        return loaded, []
    fitting, skipped = [], []
    for recipe in loaded:
        try:
            check_model_for_data(recipe.model, source.input_shape, source.bounded, recipe.name,
                                 labels=source.y_fit if source.labelled else None)
            fitting.append(recipe)
        except RecipeError as e:
            skipped.append({"name": recipe.name, "reason": str(e).split(": ", 1)[-1]})
    if not fitting:
        raise ValueError(f"No recipe's model can take {source.source}: " + "; ".join(
            f"{s['name']}: {s['reason']}" for s in skipped[:3]))
    return fitting, skipped


def training_examples(source, seed: int, most: int = 20_000) -> np.ndarray:
    """Training examples for the references' moments, in the model's units (at most `most`)."""
    if not hasattr(source, "preprocessing"):
        return source.x_train
    from zoo.data.splits import to_model_units

    n = len(source.x_fit)
    index = np.sort(np.random.default_rng(seed).choice(n, min(n, most), replace=False))
    return to_model_units(source.fit_arrays(index)[0], source.preprocessing)


def fit_or_reuse(recipe, run_dir: Path, fresh: bool):
    """(model, metrics, reused): a finished run of the identical recipe is loaded, anything else is (re)trained."""
    from zoo.training.run_dir import run_state, same_recipe
    from zoo.training.trainer import fit_recipe

    state = run_state(run_dir) if run_dir.is_dir() else "empty"
    same = (run_dir / "recipe.toml").is_file() and same_recipe((run_dir / "recipe.toml").read_text(), recipe)
    if state == "finished" and same and not fresh:
        model, _, _, metrics = load_run(run_dir)
        return model, metrics, True
    # A partial run of the same recipe resumes; anything else starts again.
    overwrite = fresh or state == "finished" or (state == "partial" and not same)
    with warnings.catch_warnings():
        # Every recipe trains in this one process, on TensorFlow's default threads: a recipe's
        # batch shards still give the batch's gradient, only without the threads that run them
        # side by side, which `zoo fit` would set. Known here, so not worth a warning per run.
        warnings.filterwarnings("ignore", message=r"batch_shards = \d+: TensorFlow was already running")
        run = fit_recipe(recipe, out=run_dir, overwrite=overwrite, verbose=0)
    return run.model, dict(run.metrics), False


def score_run(model, recipe, metrics, data, settings, budget, run_dir: Path, out: Path, reused: bool):
    """(row, test codes) of one trained run, with its budget and why it stopped; writes its evaluation.json."""
    row, codes = evaluate_model(model, recipe, metrics, data, settings)
    row.update({"budget": budget.spec(), "stop": budget.stop_reason(int(row["epochs"])), "run": report.relative(
        run_dir, out), "reused_run": reused})
    if model.training_noise:
        row["train_noise"] = model.training_noise
    write_json(run_dir / "evaluation.json", {**row, "run": str(run_dir), "settings": settings.to_dict()})
    return row, codes


def tflite_bytes(export_dir: Path) -> int | None:
    """The size of the float32 TFLite file an export wrote under `export_dir`, or None."""
    files = sorted(export_dir.glob("tflite/*_float32.tflite"))
    return files[0].stat().st_size if files else None


def reference_rows(code_sizes, data, settings, x_train) -> list[dict]:
    """The raw-pixel row, one PPCA row per latent size of the benchmarked variants, and one
    mixture-of-PPCA row per K in `MPPCA_COMPONENTS`, with the smallest of those latent sizes."""
    from zoo.evaluation.baselines import ppca_reference, raw_pixel_reference, sample_moments
    from zoo.evaluation.mppca import MPPCA_COMPONENTS, mppca_reference

    with single_thread():  # numpy's BLAS threads fight TensorFlow's on a small machine
        rows = [raw_pixel_reference(data, settings)]
        dim = int(np.prod(data.x_test.shape[1:]))
        code_sizes = [q for q in code_sizes if q < dim]
        if code_sizes:
            moments = sample_moments(x_train)
            rows += [ppca_reference(q, data, settings, moments) for q in code_sizes]
            # K components of q + 1 parameters' worth of points each at least, or the row means little.
            rows += [mppca_reference(k, min(code_sizes), data, settings, x_train) for k in MPPCA_COMPONENTS
                     if len(x_train) >= k * (min(code_sizes) + 1)]
    return rows


def variant_plots(model, name: str, data, figures_dir: Path) -> dict:
    """The per-variant figures: test/corrupted/reconstructed grid, then the family's own
    (`Autoencoder.figures`), for images (shown in the model's [0, 1] units); none for tables and series."""
    if data.kind != "images":
        return {}
    x = data.x_test[:GRID_IMAGES]
    y = None if data.y_test is None else data.y_test[:GRID_IMAGES]  # given to a model that takes labels

    def recon(images):
        return np.asarray(model.normalize(model.reconstruct(model.inputs_of(data.raw(images), y))))

    rows = [("test", x), ("reconstruction", recon(x))]
    for kind, level in CORRUPTIONS[::2]:  # the first level of each noise
        noisy = data.corrupted[corruption_column(kind, level)][:GRID_IMAGES]
        rows += [(f"{kind} {level:g}", noisy), ("reconstruction", recon(noisy))]
    paths = {"reconstructions": figures_dir / f"{name}_reconstructions.png"}
    report.image_rows_figure(rows, paths["reconstructions"], title=f"{name}: test images, corrupted inputs, reconstructions")
    if data.y_test is None or data.preprocessing["kind"] != "none":
        return paths  # the family's figures show labelled images in [0, 1]
    for key, figure in model.figures(data.x_test, data.y_test).items():
        paths[key] = figures_dir / f"{name}_{key}.png"
        title = f"{name}: {figure['title']}"
        if figure["kind"] == "grid":
            report.image_grid_figure(figure["images"], paths[key], title=title)
        else:
            report.image_rows_figure(figure["rows"], paths[key], title=title)
    return paths


def selection_curves(history: list[dict], metric: str) -> list[dict]:
    """The rows of a history with "loss" and "val_loss" set to the metric that early stopping
    watched (`Autoencoder.selection_metric`, e.g. the unannealed objective of a KL warm-up)."""
    return [{**r, "loss": r.get(metric, r.get("loss")), "val_loss": r.get("val_" + metric, r.get("val_loss"))}
            for r in history]


def read_history(path: Path) -> list[dict]:
    """history.csv as a list of rows of floats (empty if missing)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def find_export():
    """(the export function, a sentence for the report)."""
    import zoo.export

    return zoo.export, "Each run exported with `zoo.export(run_dir, base=<out>/saved_models, format=\"all\")`."


def run_export(export_fn, run_dir: Path, base: Path) -> str:
    """Calls the export step; a failure is reported, not raised, so one format cannot sink the benchmark."""
    start = time.perf_counter()
    try:
        result = export_fn(run_dir, base=base, format="all")
    except Exception as e:  # noqa: BLE001 (any failure of the export step belongs in the report)
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return f"failed after {time.perf_counter() - start:.0f} s: {type(e).__name__}: {message}"[:300]
    summary = _summarize_export(result, base)
    return f"ok in {time.perf_counter() - start:.0f} s" + (f": {summary}" if summary else "")


def _summarize_export(result, base: Path) -> str:
    """What the export step wrote, grouped by directory under the export base, e.g. "vae/1, vae/tflite (5)"."""
    items = list(result.values()) if isinstance(result, dict) else list(result) \
        if isinstance(result, (list, tuple)) else [result] if result is not None else []
    groups = {}
    for item in items:
        try:
            parts = Path(str(item)).relative_to(base).parts
        except ValueError:
            parts = (str(item),)
        key = "/".join(parts[:2])
        groups[key] = groups.get(key, 0) + 1
    summary = ", ".join(f"{k} ({n})" if n > 1 else k for k, n in groups.items())
    return f"{len(items)} artifacts in saved_models/: {summary}" if items else ""


def machine_info() -> dict:
    """The machine and the software versions, for the report."""
    import keras
    import sklearn
    import tensorflow as tf

    info = {"platform": platform.platform(), "processor": _cpu_model(), "logical CPUs": os.cpu_count(),
            "CPUs usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "memory GB": _memory_gb(),
            "GPUs": ", ".join(d.name for d in tf.config.list_physical_devices("GPU")) or "none",
            "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}
    if hasattr(os, "getloadavg"):
        info["load average at start (1, 5, 15 min)"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return None


def _python_command(recipes, budget, steps_per_epoch, out, nll_samples, seeds) -> str:
    return (f"zoo.benchmark(recipes={list(recipes) if recipes else None!r}, budget={budget.spec()!r}, "
            f"seeds={seeds}, steps_per_epoch={steps_per_epoch}, out={str(out)!r}, nll_samples={nll_samples})")


def progress_bar(console):
    """A rich progress bar (spinner, description, bar, count, time) on `console`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def release_memory() -> None:
    """Frees what the last variant left: Keras's global state and unreachable objects."""
    import keras

    keras.backend.clear_session()
    gc.collect()
