"""The one-class anomaly benchmark: `zoo bench --task anomaly`.

Three tasks, one protocol: train on normal data only, score every test example with every score
the model offers (`Autoencoder.anomaly_score_names`), and measure how well the scores rank the
anomalies above the normal examples (`zoo.anomaly.metrics.detection_metrics`).

    fashion_mnist  each class c in turn is normal: the recipe is trained with
                   data.normal_labels = [c] (its fit and validation splits keep class c only),
                   the whole test set (10,000 images, 1,000 normal) is scored, anomalous = y ≠ c;
                   AUROC per class and the mean over the classes
    breast_cancer  scikit-learn's table, benign rows normal (data.normal_labels = ['benign']),
                   the seeded test split scored, malignant rows the anomalies
    co2            Mauna Loa's weekly CO2 cut into 52-week windows; the test windows (the last 20%
                   of the series, never trained on) get anomalies injected into a seeded quarter
                   of them (`inject_anomalies`), written to <out>/data/co2_test.npz

Scores are computed on the test split exactly as `zoo score RUN` reads it (`load_splits` of the
run's recipe; binarized once with seed train.seed + 1 when the recipe binarizes), so any cell can
be checked with `zoo score`. The threshold of the precision, recall and F1 columns is a
`zoo.anomaly.thresholds` rule (quantile 0.95 by default) on the scores of the normal class's
validation split (the training split when the recipe holds none out).

Reference rows, scored by the same metric code on the same test examples (grayscale pixels,
standardized columns):

    ppca-q     −log N(x; μ, WWᵀ + σ²I) of the maximum-likelihood PPCA (`zoo.evaluation.baselines`)
               fitted on the normal training examples, q in `PPCA_CODE`
    iforest    scikit-learn's IsolationForest (100 trees, 256 samples per tree), −score_samples
    ocsvm      scikit-learn's OneClassSVM, RBF kernel, ν = 0.1, γ = "scale" = 1/(D·Var(x)), on at
               most 2,000 normal training examples (a seeded subsample), −decision_function

Runs live in <out>/runs/<task>/<recipe> (one per class for Fashion-MNIST); a finished run of the
identical recipe is reused (`zoo.bench.runner.fit_or_reuse`) together with its cached scores, so
an interrupted benchmark continues where it stopped. The report (report.md, results.json and .csv,
the figures) is written by `zoo.bench.anomaly_report`.

Example:
    >>> results = anomaly_benchmark(["vae"], epochs=5, classes=(0, 1), tasks=("fashion_mnist",))
    >>> results["summary"][0]["mean_auroc"]
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import zoo.bench.report as report
from zoo.bench.anomaly_report import PUBLISHED, PUBLISHED_NOTE, summary_table, write_figures, write_report
from zoo.bench.runner import default_recipes, fit_or_reuse, machine_info, progress_bar, release_memory
from zoo.io import atomic_path

TASKS = ("fashion_mnist", "breast_cancer", "co2")
TABLE_RECIPES = ("tabular_ae", "tabular_vae")
SERIES_RECIPES = ("timeseries_ae",)
#: The budget of the measured benchmark (docs/anomaly.md): epochs of every Fashion-MNIST run and k of "nll".
DEFAULT_EPOCHS = 5
DEFAULT_NLL_SAMPLES = 10
#: Latent size q of the PPCA reference per task.
PPCA_CODE = {"fashion_mnist": 32, "breast_cancer": 8, "co2": 8}
OCSVM_NU, OCSVM_GAMMA, OCSVM_MAX_TRAIN = 0.1, "scale", 2000
IFOREST_TREES = 100
#: What `inject_anomalies` adds, in units of s, the std of the training series' one-step differences.
INJECTION = {"fraction": 0.25, "spike": 10.0, "shift": 6.0, "burst": 4.0, "burst_steps": 8}
SCORE_CACHE = "anomaly_scores.npz"


@dataclasses.dataclass
class Problem:
    """One train-on-normal, score-the-test problem: a task, and for Fashion-MNIST one class."""

    task: str
    key: str  # the runs' folder under <out>/runs
    label: str  # what is normal, for tables and figures
    recipes: list
    cls: int | None = None
    splits: dict = dataclasses.field(default_factory=dict)


def anomaly_benchmark(recipes=None, *, epochs: int = DEFAULT_EPOCHS, steps_per_epoch: int | None = None,
                      out="bench-anomaly", seed: int = 0, classes=tuple(range(10)),
                      nll_samples: int = DEFAULT_NLL_SAMPLES, rule: str = "quantile", level=None,
                      tasks=TASKS, references: bool = True, fresh: bool = False, progress: bool = True,
                      command: str | None = None) -> dict:
    """Trains every recipe on normal data, scores the test data, and writes the one-class report.

    Args:
        recipes: the Fashion-MNIST recipes (default: every shipped one, `default_recipes(False)`);
            the table and series tasks use `TABLE_RECIPES` and `SERIES_RECIPES`.
        epochs, steps_per_epoch: the budget of every Fashion-MNIST run (the table and series runs
            keep their recipes' epochs: their data is a few hundred rows).
        out: the output directory.
        seed: `train.seed` of every run and the seed of the references, the injection and "nll".
        classes: the Fashion-MNIST classes that take turns as the normal class.
        nll_samples: k, importance samples per example of the VAE's "nll" score.
        rule, level: the threshold rule and level (`zoo.anomaly.thresholds`) for precision/recall/F1.
        tasks: any of `TASKS`.
        references: add the PPCA, isolation-forest and one-class-SVM rows.
        fresh: retrain finished runs (and score them again).
        progress: show a progress bar.
        command: the command line to record (default: this call, as Python).

    Returns:
        What results.json holds: "rows" (one per task, class, variant and score), "summary" (one per
        task, variant and score, with the per-class AUROC and their mean), "settings", "machine", ...

    Raises:
        ValueError, FileNotFoundError: a bad recipe, task, class or setting, before anything trains.
    """
    from rich.console import Console

    from zoo.anomaly.thresholds import check_rule

    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    clock = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; choose a directory")
    level = check_rule(rule, level)
    for what, value in (("epochs", epochs), ("nll_samples", nll_samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{what} must be a positive integer. Received: {what}={value!r}")
    problems = plan(recipes, tasks, classes, epochs, steps_per_epoch, seed)
    command = command or (f"zoo.bench.anomaly.anomaly_benchmark({list(recipes) if recipes else None!r}, "
                          f"epochs={epochs}, steps_per_epoch={steps_per_epoch}, out={str(out)!r}, seed={seed}, "
                          f"classes={tuple(classes)!r}, nll_samples={nll_samples}, tasks={tuple(tasks)!r})")
    console = Console(quiet=not progress, width=None if sys.stdout.isatty() else 150)
    machine = machine_info()
    rows, kept, seconds = [], {}, {}
    with progress_bar(console) as bar:
        job = bar.add_task("anomaly benchmark", total=sum(len(p.recipes) + references for p in problems))
        for problem in problems:
            start = time.perf_counter()
            for recipe in problem.recipes:
                bar.update(job, description=f"{problem.key}/{recipe.name}: training")
                run_dir = out / "runs" / problem.key / recipe.name
                model, metrics, reused = fit_or_reuse(recipe, run_dir, fresh)
                bar.update(job, description=f"{problem.key}/{recipe.name}: scoring")
                data = model_data(problem, recipe, seed, out)
                scored = scores_of(model, data, run_dir, reused and not fresh, nll_samples, seed)
                rows += result_rows(problem, recipe, model, metrics, data, scored, rule, level, kept,
                                    run=report.relative(run_dir, out), reused=reused)
                del model
                release_memory()
                bar.advance(job)
            if references:
                bar.update(job, description=f"{problem.key}: references")
                rows += reference_rows(problem, seed, out, rule, level, kept)
                bar.advance(job)
            seconds[problem.key] = round(time.perf_counter() - start, 1)
            problem.splits.clear()
    summary = summarize(rows)
    figures = write_figures(problems, summary, kept, out, lambda p, name, score: example_maps(p, name, score, out))
    results = {"command": command, "started": started, "runtime_seconds": round(time.perf_counter() - clock, 1),
               "seconds_per_problem": seconds, "machine": machine,
               "settings": {"tasks": list(dict.fromkeys(p.task for p in problems)),
                            "classes": [p.cls for p in problems if p.cls is not None],
                            "recipes": {t: [r.name for r in next(p for p in problems if p.task == t).recipes]
                                        for t in dict.fromkeys(p.task for p in problems)},
                            "epochs": epochs, "steps_per_epoch": steps_per_epoch or "whole epochs", "seed": seed,
                            "nll_samples": nll_samples, "rule": rule, "level": level, "ppca_code": PPCA_CODE,
                            "ocsvm": {"nu": OCSVM_NU, "gamma": OCSVM_GAMMA, "max_train": OCSVM_MAX_TRAIN},
                            "iforest_trees": IFOREST_TREES, "injection": INJECTION},
               "published": [{"method": m, "mean_auroc": v} for m, v in PUBLISHED], "published_note": PUBLISHED_NOTE,
               "rows": rows, "summary": summary, "figures": figures}
    if hasattr(os, "getloadavg"):
        machine["load average at end (1, 5, 15 min)"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    write_report(out, results)
    console.print(summary_table(results, out))
    return results


def plan(recipes, tasks, classes, epochs, steps_per_epoch, seed) -> list[Problem]:
    """The problems, with every recipe loaded (and so checked) before anything trains."""
    from zoo.configs.recipe import load_recipe

    tasks = tuple(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"Unknown anomaly task {unknown[0] if unknown else ''!r}. Known: {', '.join(TASKS)}")
    classes = tuple(classes)
    if "fashion_mnist" in tasks:
        bad = [c for c in classes if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c <= 9]
        if bad or not classes or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be distinct integers in 0..9 (the Fashion-MNIST classes). "
                             f"Received: {', '.join(map(str, classes)) or 'none'}")
    budget = [f"train.epochs={epochs}", f"train.seed={seed}"]
    if steps_per_epoch is not None:
        budget.append(f"train.steps_per_epoch={steps_per_epoch}")
    problems = []
    for task in tasks:
        if task == "fashion_mnist":
            names = list(recipes) if recipes else default_recipes(False)
            for c in classes:
                loaded = [load_recipe(n, overrides=[*budget, f"data.normal_labels=[{int(c)}]"]) for n in names]
                wrong = [r.name for r in loaded if r.data.path or r.data.dataset != "fashion_mnist"]
                if wrong:
                    raise ValueError(f"the one-class benchmark trains on Fashion-MNIST; {wrong[0]} uses other data")
                problems.append(Problem(task, f"fashion_mnist/class-{c}",
                                        f"{c} {report.CLASS_NAMES['fashion_mnist'][c]}", loaded, cls=int(c)))
        elif task == "breast_cancer":
            loaded = [load_recipe(n, overrides=[f"train.seed={seed}", "data.normal_labels=['benign']"])
                      for n in TABLE_RECIPES]
            problems.append(Problem(task, task, "benign", loaded))
        else:
            series = [f"train.seed={seed}", 'data.dataset="co2"', 'data.missing="interpolate"']
            loaded = [load_recipe(n, overrides=series) for n in SERIES_RECIPES]
            problems.append(Problem(task, task, "uninjected windows", loaded))
    for problem in problems:
        names = [r.name for r in problem.recipes]
        if len(set(names)) != len(names):
            raise ValueError(f"Two recipes are named {next(n for n in names if names.count(n) > 1)!r}; rename one")
    return problems


# Data.

def _splits(problem: Problem, data, seed: int):
    """`load_splits` of a [data] table, once per problem (recipes often share one)."""
    from zoo.data.splits import load_splits

    key = repr(data)
    if key not in problem.splits:
        problem.splits[key] = load_splits(data, seed)
    return problem.splits[key]


def model_data(problem: Problem, recipe, seed: int, out: Path) -> dict:
    """held (normal, for the threshold), its name, test examples and their 0/1 truth, as the run reads them."""
    splits = _splits(problem, recipe.data, recipe.train.seed)
    data = _examples(problem, splits, seed, out)
    if splits.x_val is None and recipe.data.binarize == "dynamic":
        # Without a validation split the threshold comes from the training split, which dynamic
        # binarization leaves grayscale (the pipeline samples each batch) while the test split was
        # sampled once: sample it once too (seed + 2, the validation split's seed), or the threshold
        # would be calibrated on other data than the one it is applied to.
        from zoo.data.examples import materialize
        from zoo.data.sources import binarize_static

        data["held"] = binarize_static(materialize(splits.x_fit), recipe.train.seed + 2)
        data["held_name"] = f"training split of the normal class, binarized once ({len(data['held']):,})"
    return data


def _examples(problem: Problem, splits, seed: int, out: Path) -> dict:
    held, held_name = (splits.x_val, "validation") if splits.x_val is not None else (splits.x_fit, "training")
    x_test, y_test = splits.test_arrays()
    if problem.task == "co2":
        x_test, truth, info = inject_anomalies(x_test, splits.x_fit, seed)
        with atomic_path(out / "data" / "co2_test.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, x=x_test, anomalous=truth, **info)
        labels = np.where(truth, "injected", "clean")
    else:
        normal = [list(splits.class_names).index(str(v)) if str(v) in splits.class_names else int(v)
                  for v in recipe_normal(problem)]
        truth = ~np.isin(y_test, normal)
        names = splits.class_names or report.CLASS_NAMES.get("fashion_mnist")
        labels = np.asarray([str(names[v]) for v in y_test])
    return {"held": held, "held_name": f"{held_name} split of the normal class ({len(held):,})", "x_test": x_test,
            "anomalous": truth, "labels": labels, "splits": splits}


def recipe_normal(problem: Problem):
    return problem.recipes[0].data.normal_labels


def inject_anomalies(x_test, x_fit, seed: int, settings=None):
    """Copies of the test windows with anomalies added to a seeded subset; returns (x, truth, info).

    With s = the std of the one-step differences of the training windows (per channel), a
    fraction `fraction` of the windows (chosen by `numpy.random.default_rng(seed + 11)`) get, in
    turn, one of three kinds (equal shares, in a seeded order):

        spike   one step t (uniform) moved by ±`spike`·s
        shift   every step from t (uniform in [W/4, 3W/4)) to the window's end moved by ±`shift`·s
        burst   `burst_steps` consecutive steps from a uniform start plus N(0, (`burst`·s)²) noise

    the signs uniform. The others are left as they are. `info` holds per window the kind ("" for
    none), the first step and the number of steps touched, and s.
    """
    p = {**INJECTION, **(settings or {})}
    x = np.array(x_test, np.float32, copy=True)
    n, w = x.shape[0], x.shape[1]
    s = np.std(np.diff(np.asarray(x_fit, np.float64), axis=1), axis=(0, 1)).astype(np.float32)
    rng = np.random.default_rng(seed + 11)
    chosen = np.sort(rng.choice(n, int(round(p["fraction"] * n)), replace=False))
    kinds = np.array(["spike", "shift", "burst"])[rng.permutation(len(chosen)) % 3]
    kind, first, length = np.full(n, "", "<U5"), np.full(n, -1), np.zeros(n, int)
    for i, k in zip(chosen, kinds):
        sign = rng.choice((-1.0, 1.0))
        if k == "spike":
            t, steps = int(rng.integers(w)), 1
            x[i, t] += sign * p["spike"] * s
        elif k == "shift":
            t = int(rng.integers(w // 4, 3 * w // 4))
            steps = w - t
            x[i, t:] += sign * p["shift"] * s
        else:
            steps = min(p["burst_steps"], w)
            t = int(rng.integers(w - steps + 1))
            x[i, t:t + steps] += (p["burst"] * s * rng.standard_normal((steps, x.shape[2]))).astype(np.float32)
        kind[i], first[i], length[i] = k, t, steps
    truth = kind != ""
    return x, truth, {"kind": kind, "first_step": first, "steps": length, "s": s}


# Scores.

def _digest(*arrays) -> str:
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def scores_of(model, data: dict, run_dir: Path, reuse: bool, nll_samples: int, seed: int) -> dict:
    """name → (held scores, test scores, seconds) for every score of the model; cached beside the run."""
    from zoo.anomaly.scores import score_examples

    from zoo.data.examples import materialize

    held = materialize(data["held"])
    key = {"names": list(model.anomaly_score_names()), "nll_samples": nll_samples, "seed": seed,
           "data": _digest(held, data["x_test"])}
    cache = run_dir / SCORE_CACHE
    if reuse and cache.is_file():
        with np.load(cache, allow_pickle=False) as f:
            if json.loads(str(f["key"])) == key:
                return {n: (f[f"{n}.held"], f[f"{n}.test"], float(f[f"{n}.seconds"])) for n in key["names"]}
    scored = {}
    for name in key["names"]:
        start = time.perf_counter()
        both = [score_examples(model, x, name, nll_samples=nll_samples, seed=seed) for x in (held, data["x_test"])]
        scored[name] = (*both, time.perf_counter() - start)
    arrays = {f"{n}.{part}": v[i] for n, v in scored.items() for i, part in enumerate(("held", "test", "seconds"))}
    with atomic_path(cache) as tmp, open(tmp, "wb") as f:
        np.savez(f, key=json.dumps(key), **arrays)
    return scored


def _metrics(held, test, truth, rule, level, held_name) -> dict:
    from zoo.anomaly.metrics import detection_metrics
    from zoo.anomaly.thresholds import threshold

    t = threshold(held, rule, level)
    return {**detection_metrics(test, truth, t), "threshold": t, "calibrated_on": held_name}


def result_rows(problem, recipe, model, metrics, data, scored, rule, level, kept, run, reused) -> list[dict]:
    from zoo.evaluation.evaluate import budget

    base = {"task": problem.task, "class": problem.cls, "normal": problem.label, "name": recipe.name,
            "family": recipe.model.family, "kind": "model", **budget(recipe, metrics), "run": run, "reused_run": reused}
    rows = []
    for name, (held, test, seconds) in scored.items():
        row = {**base, "score": name, **_metrics(held, test, data["anomalous"], rule, level, data["held_name"]),
               "score_seconds": round(seconds, 2)}
        kept[(problem.key, recipe.name, name)] = (test, data["anomalous"], row["threshold"])
        rows.append(row)
    return rows


def reference_rows(problem: Problem, seed: int, out: Path, rule, level, kept) -> list[dict]:
    """PPCA log-density, isolation forest and one-class SVM on the task's normal training data."""
    from zoo.configs.recipe import DataConfig
    from zoo.data.splits import to_model_units

    if problem.task == "fashion_mnist":  # grayscale pixels, whatever the recipes binarize
        data = DataConfig(dataset="fashion_mnist", normal_labels=(problem.cls,))
    else:
        data = problem.recipes[0].data
    splits = _splits(problem, data, seed)
    ex = _examples(problem, splits, seed, out)

    def units(x):
        x = to_model_units(x, splits.preprocessing)
        return x.reshape(len(x), -1).astype(np.float64)

    fit, held, test = units(splits.x_fit), units(ex["held"]), units(ex["x_test"])
    rows = []
    for name, settings, fn in reference_scorers(problem.task, seed):
        start = time.perf_counter()
        held_s, test_s = fn(fit, held, test)
        row = {"task": problem.task, "class": problem.cls, "normal": problem.label, "name": name, "family": "reference",
               "kind": "reference", "score": settings, **_metrics(held_s, test_s, ex["anomalous"], rule, level,
                                                                  ex["held_name"]),
               "score_seconds": round(time.perf_counter() - start, 2), "fit_examples": len(fit)}
        kept[(problem.key, name, settings)] = (test_s, ex["anomalous"], row["threshold"])
        rows.append(row)
    return rows


def reference_scorers(task: str, seed: int):
    """(name, score description, fn(fit, held, test) → (held scores, test scores)) of the references."""
    from sklearn.ensemble import IsolationForest
    from sklearn.svm import OneClassSVM

    from zoo.evaluation.baselines import PPCA
    from zoo.evaluation.evaluate import single_thread

    q = PPCA_CODE[task]

    def ppca(fit, held, test):
        model = PPCA.fit(fit, q)
        return -model.log_likelihood(held), -model.log_likelihood(test)

    def iforest(fit, held, test):
        model = IsolationForest(n_estimators=IFOREST_TREES, random_state=seed).fit(fit)
        return -model.score_samples(held), -model.score_samples(test)

    def ocsvm(fit, held, test):
        if len(fit) > OCSVM_MAX_TRAIN:
            fit = fit[np.sort(np.random.default_rng(seed).choice(len(fit), OCSVM_MAX_TRAIN, replace=False))]
        with single_thread():
            model = OneClassSVM(kernel="rbf", nu=OCSVM_NU, gamma=OCSVM_GAMMA).fit(fit)
            return -model.decision_function(held), -model.decision_function(test)

    return [(f"ppca-{q}", "−log N(x; μ, WWᵀ+σ²I)", ppca),
            ("iforest", f"IsolationForest, {IFOREST_TREES} trees", iforest),
            ("ocsvm", f"OC-SVM ν={OCSVM_NU}, γ={OCSVM_GAMMA}", ocsvm)]


def summarize(rows) -> list[dict]:
    """One row per task, variant and score: AUROC per class, their mean, the mean precision/recall/F1."""
    groups = {}
    for r in rows:
        groups.setdefault((r["task"], r["name"], r["score"]), []).append(r)
    summary = []
    for (task, name, score), rs in groups.items():
        out = {"task": task, "name": name, "score": score, "kind": rs[0]["kind"], "family": rs[0]["family"],
               "problems": len(rs), "mean_auroc": float(np.mean([r["auroc"] for r in rs]))}
        for m in ("auprc", "precision", "recall", "f1"):
            out[f"mean_{m}"] = float(np.mean([r[m] for r in rs]))
        if task == "fashion_mnist":
            out["auroc_by_class"] = {str(r["class"]): r["auroc"] for r in rs}
        summary.append(out)
    return summary


# The examples figure's data.

def example_maps(problem: Problem, name: str, score: str, out: Path) -> dict:
    """The test examples of a problem as run `name` reads them, and their per-feature maps of `score`.

    Args:
        problem: the problem; its cached splits are dropped afterwards.
        name: the recipe whose run (<out>/runs/<problem.key>/<name>) is loaded.
        score: the score to map; one that does not split over features (the VAE's nll) maps "objective".
        out: the output directory.

    Returns:
        {"kind", "x" (images in the model's units), "maps", "map_name", "labels", "extra"}: what
        `zoo.bench.anomaly_report.examples_figure` draws; "extra" is the feature names of a table, the
        injected kinds and steps of the co2 windows, None otherwise.
    """
    from zoo.evaluation.evaluate import load_run

    model, recipe, _, _ = load_run(out / "runs" / problem.key / name)
    data = model_data(problem, recipe, recipe.train.seed, out)
    try:
        map_name = model.check_score_name(score)
        maps = _feature_maps(model, data["x_test"], map_name)
    except ValueError:  # a score that does not split over features (the VAE's nll)
        map_name = "objective"
        maps = _feature_maps(model, data["x_test"], map_name)
    kind = data["splits"].kind
    extra = list(data["splits"].feature_names) if kind == "table" else None
    if problem.task == "co2":
        with np.load(out / "data" / "co2_test.npz") as z:
            extra = {k: z[k] for k in ("kind", "first_step", "steps")}
    x = data["x_test"] if kind != "images" else _unit_images(model, data["x_test"])
    problem.splits.clear()
    del model
    release_memory()
    return {"kind": kind, "x": x, "maps": maps, "map_name": map_name, "labels": data["labels"], "extra": extra}


def _feature_maps(model, x, name):
    from zoo.anomaly.scores import feature_score_examples

    return feature_score_examples(model, x, name)


def _unit_images(model, x):
    return np.asarray(x, np.float32) if model.preprocessing["kind"] == "none" else np.asarray(model.normalize(x))
