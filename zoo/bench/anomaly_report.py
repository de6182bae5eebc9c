"""The one-class anomaly benchmark's outputs: report.md, results.json and .csv, the figures, the terminal table.

Everything here draws or formats the rows that `zoo.bench.anomaly` measured; nothing is trained
or scored. The figures per task:

    <task>_roc.png          ROC curves per normal class: each family's best variant and score (by
                            mean AUROC) and every reference (dashed)
    <task>_histograms.png   the scores of the normal and the anomalous test examples, and the threshold
    <key>_examples.png      the `EXAMPLES_SHOWN` most and least anomalous test examples of the best
                            variant, with their per-feature scores

Example:
    >>> write_report(Path("bench-anomaly"), results)  # results.json, results.csv, report.md
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import zoo.bench.report as report
from zoo.io import atomic_path, write_json, write_text

PUBLISHED = (("GEOM (Golan & El-Yaniv, 2018)", 93.5), ("RAW-OC-SVM", 92.8), ("CAE-OC-SVM", 91.7),
             ("Deep SVDD (Ruff et al., 2020)", 89.2), ("ADGAN", 88.4), ("DSEBM", 86.6))
PUBLISHED_NOTE = ("Mean AUROC (%) over the ten one-class problems of Fashion-MNIST as the papers publish it "
                  "(second-hand copies of the papers' tables: Golan & El-Yaniv 2018, Ruff et al. 2020); not "
                  "rerun here, and their budgets, architectures and hyperparameter choices differ from this run's.")
EXAMPLES_SHOWN = 8


def best_rows(summary, task: str) -> list[dict]:
    """The task's summary rows, highest mean AUROC first."""
    return sorted([s for s in summary if s["task"] == task], key=lambda s: -s["mean_auroc"])


# Figures.

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    _plt().close(fig)


def _panels(n: int, width: float = 3.2, height: float = 2.6, most: int = 5):
    plt = _plt()
    cols = min(n, most)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def roc_figure(panels, path: Path) -> None:
    """panels: [(title, [(label, scores, truth)])] → one ROC plot per panel."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, axes = _panels(len(panels))
    for ax, (title, curves) in zip(axes, panels):
        for label, s, y in curves:
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, lw=1, label=f"{label} {100 * roc_auc_score(y, s):.1f}",
                    ls="--" if label.startswith(("ppca", "iforest", "ocsvm")) else "-")
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.5)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("false-positive rate", fontsize=7)
        ax.set_ylabel("true-positive rate", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5, loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def histogram_figure(panels, path: Path) -> None:
    """panels: [(title, scores, truth, threshold)] → normal and anomalous histograms with the threshold."""
    fig, axes = _panels(len(panels))
    for ax, (title, s, y, t) in zip(axes, panels):
        s = np.asarray(s, np.float64)
        low, high = np.quantile(s, [0.001, 0.995])
        bins = np.linspace(min(low, t), max(high, t), 50)
        ax.hist(np.clip(s[~y], bins[0], bins[-1]), bins=bins, density=True, alpha=0.6, label=f"normal ({(~y).sum()})")
        ax.hist(np.clip(s[y], bins[0], bins[-1]), bins=bins, density=True, alpha=0.6, label=f"anomalous ({y.sum()})")
        ax.axvline(t, color="k", lw=1, ls="--", label="threshold")
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5)
    fig.tight_layout()
    _save(fig, path)


def _ranked(scores, k: int):
    order = np.argsort(scores, kind="stable")
    return order[::-1][:k], order[:k]


def examples_figure(kind: str, x, maps, scores, labels, title: str, path: Path, extra=None) -> None:
    """The `EXAMPLES_SHOWN` most and least anomalous test examples with their per-feature scores."""
    plt = _plt()
    most, least = _ranked(scores, EXAMPLES_SHOWN)
    if kind == "images":
        fig, axes = plt.subplots(4, EXAMPLES_SHOWN, figsize=(1.1 * EXAMPLES_SHOWN + 1.4, 5.2), squeeze=False)
        top = max(float(np.max(maps[np.concatenate([most, least])])), 1e-12)
        for r, (what, index) in enumerate((("most anomalous", most), ("least anomalous", least))):
            for c, i in enumerate(index):
                image = np.clip(x[i], 0, 1)
                axes[2 * r, c].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
                axes[2 * r, c].set_title(f"{labels[i]}\n{scores[i]:.4g}", fontsize=6)
                axes[2 * r + 1, c].imshow(maps[i].mean(axis=-1), cmap="magma", vmin=0, vmax=top)
            axes[2 * r, 0].set_ylabel(what, fontsize=7)
            axes[2 * r + 1, 0].set_ylabel("per-pixel score", fontsize=7)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
    elif kind == "table":
        index = np.concatenate([most, least])
        fig, ax = plt.subplots(figsize=(10, 5))
        m = maps.reshape(len(maps), -1)[index]
        im = ax.imshow(m, aspect="auto", cmap="magma")
        ax.set_yticks(range(len(index)))
        ax.set_yticklabels([f"{'most' if j < len(most) else 'least'}: row {i} ({labels[i]}) {scores[i]:.3g}"
                            for j, i in enumerate(index)], fontsize=6)
        names = extra or [str(j) for j in range(m.shape[1])]
        ax.set_xticks(range(m.shape[1]))
        ax.set_xticklabels(names, rotation=90, fontsize=5)
        fig.colorbar(im, ax=ax)
    else:  # series windows: the values, and the per-step score below each
        k = 4
        fig, axes = plt.subplots(4, k, figsize=(3.2 * k, 7), squeeze=False)
        for r, (what, index) in enumerate((("most anomalous", most[:k]), ("least anomalous", least[:k]))):
            for c, i in enumerate(index):
                axes[2 * r, c].plot(x[i][:, 0], lw=1)
                if extra is not None and extra["first_step"][i] >= 0:
                    a = extra["first_step"][i]
                    axes[2 * r, c].axvspan(a - 0.5, a + extra["steps"][i] - 0.5, color="r", alpha=0.2)
                injected = f", {extra['kind'][i]}" if extra is not None and extra["kind"][i] else ""
                axes[2 * r, c].set_title(f"{what}: window {i} ({labels[i]}{injected}) {scores[i]:.3g}", fontsize=6)
                axes[2 * r + 1, c].bar(range(maps.shape[1]), maps[i].mean(axis=-1), color="0.3")
                axes[2 * r + 1, c].set_ylabel("per-step score", fontsize=6)
                for ax in (axes[2 * r, c], axes[2 * r + 1, c]):
                    ax.tick_params(labelsize=5)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def write_figures(problems, summary, kept, out: Path, examples) -> dict:
    """ROC curves, score histograms with the threshold, and the most/least anomalous examples per task.

    Args:
        problems: the benchmark's problems (each with .task, .key and .label).
        summary: `zoo.bench.anomaly.summarize` of the rows.
        kept: (problem key, variant, score) → (test scores, 0/1 truth, threshold).
        out: the output directory; the figures go to <out>/figures.
        examples: fn(problem, variant, score) → {"kind", "x", "maps", "map_name", "labels", "extra"}: the
            test examples of the problem as the variant's run reads them (images in the model's units)
            and their per-feature scores (`zoo.bench.anomaly.example_maps`).

    Returns:
        task → {"roc": path, "histograms": path, "examples": [path per problem]}, relative to `out`.
    """
    figures = {}
    for task in dict.fromkeys(p.task for p in problems):
        ps = [p for p in problems if p.task == task]
        ranked = best_rows(summary, task)
        models = [s for s in ranked if s["kind"] == "model"]
        if not models:
            continue
        # One curve per family (its best variant and score by mean AUROC) and per reference.
        shown, families = [], set()
        for s in ranked:
            if s["kind"] == "reference" or s["family"] not in families:
                shown.append(s)
                families.add(s["family"]) if s["kind"] == "model" else None
        best = models[0]
        f = {"roc": f"figures/{task}_roc.png", "histograms": f"figures/{task}_histograms.png", "examples": []}
        label = {(s["name"], s["score"]): s["name"] if s["kind"] == "reference" else f"{s['name']}/{s['score']}"
                 for s in shown}
        roc_figure([(f"normal: {p.label}", [(label[(s["name"], s["score"])], *kept[(p.key, s["name"], s["score"])][:2])
                                            for s in shown]) for p in ps], out / f["roc"])
        if task == "fashion_mnist":
            hist = [(f"normal {p.label}: {best['name']}/{best['score']}", *kept[(p.key, best["name"], best["score"])])
                    for p in ps]
        else:
            hist = [(label[(s["name"], s["score"])], *kept[(ps[0].key, s["name"], s["score"])]) for s in shown]
        histogram_figure(hist, out / f["histograms"])
        for p in ps:
            ex = examples(p, best["name"], best["score"])
            scores = kept[(p.key, best["name"], best["score"])][0]
            name = f"figures/{p.key.replace('/', '_')}_examples.png"
            title = f"normal: {p.label}. {best['name']}, ranked by '{best['score']}', maps of '{ex['map_name']}'"
            examples_figure(ex["kind"], ex["x"], ex["maps"], scores, ex["labels"], title, out / name, ex["extra"])
            f["examples"].append(name)
        figures[task] = f
    return figures


# The report.

def _steps(steps) -> str:
    return f"{steps} steps per epoch" if isinstance(steps, int) else "whole passes over the class's training images"


def _pct(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _name(s) -> str:
    return f"*{s['name']}*" if s["kind"] == "reference" else s["name"]


def report_markdown(results: dict) -> str:
    """report.md: the tables of every task, the published numbers, the budget, the machine, the figures."""
    rows, summary, st = results["rows"], results["summary"], results["settings"]
    lines = ["# One-class anomaly benchmark", "", f"Command: `{results['command']}`", "",
             f"Started {results['started']}, total running time {results['runtime_seconds'] / 60:.1f} min "
             f"({results['runtime_seconds']:.0f} s) on the machine below, shared with other jobs: times are "
             f"indicative.", "",
             "AUROC in %, anomalies the positive class. Every score of every variant is reported; nothing was "
             "selected after the fact except the ordering of the 'best' tables. *Italic* rows are references "
             "computed by the same metric code on the same test examples.", ""]
    figures = results.get("figures", {})
    if "fashion_mnist" in st["tasks"]:
        classes = st["classes"]
        names = report.CLASS_NAMES["fashion_mnist"]
        fm = [s for s in summary if s["task"] == "fashion_mnist"]
        models = [r for r in rows if r["task"] == "fashion_mnist" and r["kind"] == "model"]
        lines += ["## Fashion-MNIST, one class normal", "",
                  f"Each class in turn is the normal class: every recipe is trained on that class's training images "
                  f"only (`data.normal_labels=[c]`), the whole test set is scored (1,000 normal, 9,000 anomalous "
                  f"images), and the AUROC per class and its mean over the {len(classes)} classes are reported. "
                  f"Budget: {st['epochs']} epochs of every recipe ({_steps(st['steps_per_epoch'])}), "
                  f"seed {st['seed']}; "
                  f"the VAEs' `nll` with k = {st['nll_samples']} importance samples. Recipes that binarize (the VAEs) "
                  f"score their test images binarized once (seed + 1), as they were trained and as `zoo score` "
                  f"reads them; the others and the references score grayscale pixels.", ""]
        head = "| variant | score | " + " | ".join(f"{c} {names[c]}" for c in classes) + " | mean |"
        lines += ["### AUROC per normal class", "", head, "|---|---|" + "---:|" * (len(classes) + 1)]
        for s in fm:
            cells = [_pct(s["auroc_by_class"].get(str(c))) for c in classes]
            lines.append(f"| {_name(s)} | {s['score']} | " + " | ".join(cells) + f" | **{_pct(s['mean_auroc'])}** |")
        lines += ["", "### Best score of each variant, and the published numbers", "",
                  "The zoo's rows are this run (each variant's best score, chosen on the test set, so slightly "
                  "optimistic); the published rows are " + results["published_note"], "",
                  "| method | mean AUROC % | source |", "|---|---:|---|"]
        table, seen = [], set()
        for s in best_rows(summary, "fashion_mnist"):
            if s["name"] not in seen:
                seen.add(s["name"])
                table.append((f"{_name(s)} ({s['score']})", 100 * s["mean_auroc"], "this run"))
        table += [(m, v, "published") for m, v in PUBLISHED]
        for m, v, src in sorted(table, key=lambda t: -t[1]):
            lines.append(f"| {m} | {v:.1f} | {src} |")
        lines += ["", "### Precision, recall and F1 at the threshold (mean over classes)", "",
                  f"Threshold: {st['rule']} {st['level'] if st['level'] is not None else ''} of the scores of the "
                  f"normal class's validation split (its training split for recipes that hold none out).", "",
                  "| variant | score | AUROC | AUPRC | precision | recall | F1 |", "|---|---|---:|---:|---:|---:|---:|"]
        for s in best_rows(summary, "fashion_mnist"):
            lines.append(f"| {_name(s)} | {s['score']} | {_pct(s['mean_auroc'])} | {_pct(s['mean_auprc'])} | "
                         f"{_pct(s['mean_precision'])} | {_pct(s['mean_recall'])} | {_pct(s['mean_f1'])} |")
        lines += ["", "### Budget", "",
                  "| variant | epochs | steps/epoch | batch | samples seen | train s (mean per class) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name in dict.fromkeys(r["name"] for r in models):
            rs = [r for r in models if r["name"] == name and r["score"] == "objective"]
            secs = [r["train_seconds"] for r in rs if r.get("train_seconds") is not None]
            lines.append(f"| {name} | {rs[0]['epochs']} | {rs[0]['steps_per_epoch']} | {rs[0]['batch_size']} | "
                         f"{rs[0]['samples_seen']:,} | {np.mean(secs):.1f} |" if secs else
                         f"| {name} | {rs[0]['epochs']} | {rs[0]['steps_per_epoch']} | {rs[0]['batch_size']} | "
                         f"{rs[0]['samples_seen']:,} | (reused) |")
        lines.append("")
    for task, title in (("breast_cancer", "Breast cancer table: benign normal, malignant anomalous"),
                        ("co2", "CO2 series: anomalies injected into test windows")):
        if task not in st["tasks"]:
            continue
        lines += [f"## {title}", ""]
        if task == "breast_cancer":
            lines += ["scikit-learn's Wisconsin diagnostic table (569 rows, 30 features), standardized in the model; "
                      "trained on the benign rows of the fit split (`data.normal_labels=['benign']`); the seeded "
                      "test split (20%) scored, malignant rows the anomalies. The recipes' own epochs.", ""]
        else:
            p = st["injection"]
            lines += [f"statsmodels' weekly Mauna Loa CO2 (missing weeks interpolated), windows of 52 weeks, stride 1; "
                      f"trained on the windows of the first 80% of the series; in the test windows (the last 20%), a "
                      f"seeded {p['fraction']:.0%} get one injected anomaly each, in equal shares: a spike of "
                      f"±{p['spike']:g}·s at one week, a level shift of ±{p['shift']:g}·s from a week in the "
                      f"middle half to the window's end, or a noise burst N(0, ({p['burst']:g}·s)²) over "
                      f"{p['burst_steps']} weeks, with s the std of the weekly differences of the training series. "
                      f"The injected windows are in `data/co2_test.npz` (x, anomalous, kind, first_step, steps, s).",
                      ""]
        lines += ["| variant | score | AUROC | AUPRC | precision | recall | F1 | threshold |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for s in best_rows(summary, task):
            r = next(r for r in rows if r["task"] == task and r["name"] == s["name"] and r["score"] == s["score"])
            lines.append(f"| {_name(s)} | {s['score']} | {_pct(r['auroc'])} | {_pct(r['auprc'])} | "
                         f"{_pct(r['precision'])} | {_pct(r['recall'])} | {_pct(r['f1'])} | {r['threshold']:.4g} |")
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        for task, f in figures.items():
            lines += [f"### {task}", "", f"![ROC curves]({f['roc']})", "",
                      f"![score histograms]({f['histograms']})", ""]
            lines += [f"![most and least anomalous]({p})" for p in f["examples"]] + [""]
    lines += ["## References", "",
              "*ppca-q*: probabilistic PCA (q = " + ", ".join(f"{q} for {t}" for t, q in st["ppca_code"].items())
              + ") fitted in closed form on the normal training examples, "
              f"scored by −log N(x; μ, WWᵀ + σ²I); *iforest*: IsolationForest ({st['iforest_trees']} trees, "
              f"256 samples each, −score_samples); *ocsvm*: OneClassSVM (RBF, ν = {st['ocsvm']['nu']}, "
              f"γ = {st['ocsvm']['gamma']} = 1/(D·Var x)) on at most {st['ocsvm']['max_train']:,} normal training "
              f"examples (a seeded subsample), −decision_function. On raw pixels, standardized columns and "
              f"flattened windows.", "",
              "## Running time per problem", "", "| problem | s |", "|---|---:|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in results["seconds_per_problem"].items()]
    lines += ["", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {report.fmt(v)} |" for k, v in results["machine"].items()]
    lines += ["", "Files: `results.json` (everything), `results.csv` (one row per task, class, variant and score), "
              "`runs/<task>/<recipe>/` (the runs, with their cached scores), `figures/`.", ""]
    return "\n".join(lines)


def write_report(out: Path, results: dict) -> None:
    """Writes results.json (everything), results.csv (one row per task, class, variant and score) and report.md.

    Args:
        out: the output directory.
        results: what `zoo.bench.anomaly.anomaly_benchmark` assembled.
    """
    write_json(out / "results.json", results)
    write_text(out / "results.csv", report.rows_csv(results["rows"]))
    write_text(out / "report.md", report_markdown(results))


def summary_table(results: dict, out: Path):
    """The terminal table: the six best variants and scores of each task by mean AUROC."""
    shown = [{"name": s["name"], "kind": s["kind"], "task": s["task"], "score": s["score"],
              "mean AUROC %": _pct(s["mean_auroc"])}
             for t in results["settings"]["tasks"] for s in best_rows(results["summary"], t)[:6]]
    return report.rich_table(shown, ("task", "name", "score", "mean AUROC %"),
                             title=f"zoo bench --task anomaly → {out / 'report.md'}")
