"""The benchmark's outputs: PNG figures, report.md, results.csv and terminal tables.

Everything here draws or formats results that `zoo.bench.runner` computed; nothing is measured.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from zoo.io import atomic_path, write_text

CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "mnist": tuple(str(i) for i in range(10)),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}

# Column → (header, format). The order is the order of results.csv.
COLUMNS = {
    "name": ("variant", "s"), "kind": ("kind", "s"), "family": ("family", "s"), "code_size": ("code", "d"),
    "parameters": ("parameters", ","), "epochs": ("epochs", "d"), "steps_per_epoch": ("steps/epoch", "d"),
    "batch_size": ("batch", "d"), "samples_seen": ("samples seen", ","), "seed": ("seed", "d"),
    "train_seconds": ("train s", ".1f"), "train_samples_per_second": ("train samples/s", ",.0f"),
    "timed_epochs": ("timed epochs", "d"), "latency_ms": ("latency ms/batch", ".2f"),
    "latency_batch_size": ("latency batch", "d"),
    "mse": ("MSE", ".4f"), "bce": ("BCE/pixel", ".4f"), "psnr": ("PSNR dB", ".2f"),
    "robust_psnr_mean": ("robust PSNR dB", ".2f"),
    "psnr_gaussian_0.3": ("gauss σ0.3", ".2f"), "psnr_gaussian_0.5": ("gauss σ0.5", ".2f"),
    "psnr_salt_pepper_0.2": ("s&p 0.2", ".2f"), "psnr_salt_pepper_0.4": ("s&p 0.4", ".2f"),
    "psnr_masking_0.3": ("mask 0.3", ".2f"), "psnr_masking_0.5": ("mask 0.5", ".2f"),
    "probe_accuracy": ("linear probe", ".4f"), "probe_converged": ("probe converged", "s"),
    "knn_accuracy": ("k-NN", ".4f"),
    "mean_activation": ("mean ρ̂", ".4f"), "rho": ("ρ", ".4f"), "active_units": ("active units", "d"),
    "neg_elbo": ("−ELBO nats", ".2f"), "nll": ("NLL nats", ".2f"), "nll_samples": ("k", "d"),
    "nll_examples": ("NLL images", "d"), "nll_data": ("likelihood of", "s"), "sigma2": ("σ²", ".5f"),
    "eval_seconds": ("eval s", ".1f"), "export": ("export", "s"), "run": ("run", "s"),
    "budget": ("budget", "s"), "stop": ("stopped by", "s"), "seeds": ("seeds", "d"),
    "tflite_bytes": ("TFLite bytes", ","),
}
MAIN_COLUMNS = ("name", "code_size", "parameters", "mse", "psnr", "robust_psnr_mean", "probe_accuracy",
                "knn_accuracy", "nll")


def fmt(value, spec: str = "s") -> str:
    """A cell: "—" for missing, "nan" for NaN, otherwise `format(value, spec)`."""
    if value is None or value == "":
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        return format(value, spec) if spec != "s" else str(value)
    except (ValueError, TypeError):
        return str(value)


def ordered_columns(rows) -> list[str]:
    """The columns present in `rows`: known ones in `COLUMNS` order, then the rest sorted."""
    present = {k for r in rows for k, v in r.items() if not isinstance(v, (dict, list))}
    return [c for c in COLUMNS if c in present] + sorted(present - set(COLUMNS))


def markdown_table(rows, columns) -> str:
    """A GitHub-flavoured markdown table of `columns` (only those some row has)."""
    columns = [c for c in columns if any(r.get(c) is not None for r in rows)]
    head = "| " + " | ".join(COLUMNS.get(c, (c,))[0] for c in columns) + " |"
    align = "|" + "|".join("---" if COLUMNS.get(c, ("", "s"))[1] == "s" else "---:" for c in columns) + "|"
    body = ["| " + " | ".join(_cell(r, c) for c in columns) + " |" for r in rows]
    return "\n".join([head, align, *body])


def _cell(row, column) -> str:
    spec = COLUMNS.get(column, ("", "s"))[1]
    text = fmt(row.get(column), spec)
    sd, low, high = row.get(f"{column}_sd"), row.get(f"{column}_low"), row.get(f"{column}_high")
    if isinstance(sd, float) and not math.isnan(sd):  # several seeds: mean ± standard deviation
        text = f"{text} ± {fmt(sd, spec.replace(',', '') if spec in (',', ',.0f') else spec)}"
    elif isinstance(low, float) and isinstance(high, float):  # one seed: the bootstrap interval over test images
        text = f"{text} [{fmt(low, spec)}, {fmt(high, spec)}]"
    if column == "name" and row.get("kind") == "reference":
        return f"*{text}*"
    return text.replace("|", "\\|")


def rows_csv(rows) -> str:
    """The rows as CSV text, one column per metric."""
    columns = ordered_columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c) for c in columns})
    return buffer.getvalue()


def rich_table(rows, columns, title: str = ""):
    """A `rich.table.Table` of `columns` for the terminal."""
    from rich.table import Table

    columns = [c for c in columns if any(r.get(c) is not None for r in rows)]
    table = Table(title=title or None)
    for c in columns:
        table.add_column(COLUMNS.get(c, (c,))[0], justify="left" if COLUMNS.get(c, ("", "s"))[1] == "s" else "right")
    for r in rows:
        table.add_row(*(_cell(r, c).strip("*") for c in columns), style="dim" if r.get("kind") == "reference" else None)
    return table


def evaluation_table(result: dict):
    """A two-column rich table of one evaluation (`zoo evaluate`)."""
    from rich.table import Table

    table = Table(title=f"{result.get('name', '')} ({result.get('family', '')})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for c in ordered_columns([result]):
        if c in ("name", "family", "kind", "run") or c.endswith(("_low", "_high", "_sd")):
            continue  # an interval is shown beside its metric (`_cell`)
        table.add_row(COLUMNS.get(c, (c,))[0], _cell(result, c))
    return table


# Figures.

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def _show(ax, image) -> None:
    image = np.clip(np.asarray(image, np.float32), 0, 1)
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def image_rows_figure(rows, path, title: str = "") -> None:
    """A grid with one labelled row per (label, images) pair, all rows equally long."""
    plt = _pyplot()
    n = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.0 * n + 1.6, 1.0 * len(rows) + 0.4), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            if c < len(images):
                _show(ax, images[c])
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def image_grid_figure(images, path, title: str = "", columns: int = 8) -> None:
    """Images in a grid of `columns` columns (e.g. samples from the prior)."""
    rows = [("", images[i: i + columns]) for i in range(0, len(images), columns)]
    image_rows_figure(rows, path, title)


def codes_figure(projections: dict, path, class_names=()) -> None:
    """One scatter per variant: 2-D PCA of the test codes, coloured by class.

    Args:
        projections: variant name → (points of shape (N, 2), labels of shape (N,)).
    """
    plt = _pyplot()
    n = len(projections)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows + 0.6), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (name, (points, labels)) in zip(axes.flat, projections.items()):
        ax.scatter(points[:, 0], points[:, 1], c=[cmap(int(y) % 10) for y in labels], s=3, alpha=0.6, linewidths=0)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if class_names:
        handles = [plt.Line2D([], [], marker="o", linestyle="", color=cmap(i), label=c) for i, c in enumerate(class_names)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(class_names), 5), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    else:
        fig.tight_layout()
    _save(fig, path)


def project_2d(codes) -> np.ndarray:
    """The first two principal components of the codes (zeros where the codes have fewer dimensions)."""
    codes = np.asarray(codes, np.float64).reshape(len(codes), -1)
    centred = codes - codes.mean(axis=0)
    if not np.all(np.isfinite(centred)):
        return np.zeros((len(codes), 2))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    points = centred @ vt[:2].T
    return np.pad(points, ((0, 0), (0, 2 - points.shape[1])))


def curves_figure(histories: dict, path) -> None:
    """Training and validation objective per epoch of every variant on one figure (log scale).

    With a single epoch per run there is no curve to draw; the figure then shows the final
    values as points per variant, and says so.

    Args:
        histories: variant name → list of history rows (dicts with "epoch", "loss", maybe "val_loss").
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    longest = max((len(h) for h in histories.values()), default=0)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), squeeze=False)
    cmap = plt.get_cmap("tab10")
    markers = "os^Dv<>ph*"
    for i, key in enumerate(("loss", "val_loss")):
        ax = axes[0, i]
        for j, (name, history) in enumerate(histories.items()):
            points = [(r["epoch"], r[key]) for r in history if r.get(key) is not None and np.isfinite(r[key])]
            if not points:
                continue
            style = {"color": cmap(j % 10), "marker": markers[(j // 10) % len(markers)], "markersize": 4, "label": name}
            if longest > 1:
                ax.plot(*zip(*points), **style)
            else:
                ax.plot([j], [points[-1][1]], linestyle="", **style)
        ax.set_yscale("log")
        if longest > 1:
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            ax.set_xticks(range(len(histories)), list(histories), rotation=60, ha="right", fontsize=7)
        what = "training" if key == "loss" else "validation"
        ax.set_title(f"{what} objective per example (scales differ by family)"
                     + ("" if longest > 1 else ": one epoch, final values"), fontsize=9)
        ax.grid(alpha=0.3)
    if longest > 1:
        axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def bars_figure(rows, metrics, path) -> None:
    """One horizontal bar chart per metric, variants as bars, reference rows hatched.

    Args:
        rows: result rows.
        metrics: (column, label) pairs; rows without the column are left out of that chart.
    """
    plt = _pyplot()
    cols = min(len(metrics), 3)
    nrows = -(-len(metrics) // cols)
    height = max(2.5, 0.28 * len(rows) + 1.2)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, height * nrows), squeeze=False)
    for ax, (column, label) in zip(axes.flat, metrics):
        shown = [r for r in rows if isinstance(r.get(column), (int, float)) and np.isfinite(r[column])]
        names = [r["name"] for r in shown]
        values = [r[column] for r in shown]
        bars = ax.barh(range(len(shown)), values, color=["#bbbbbb" if r.get("kind") == "reference" else "#4477aa"
                                                         for r in shown])
        for bar, r in zip(bars, shown):
            if r.get("kind") == "reference":
                bar.set_hatch("//")
        ax.set_yticks(range(len(shown)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(label, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    _save(fig, path)


def pareto_figure(rows, path, quality: str = "psnr", label: str = "PSNR dB (clean)") -> bool:
    """Quality against cost, one panel per cost (parameters, inference latency), the models that no
    other model beats on both (`zoo.bench.questions.pareto_front`) joined by a line and named;
    error bars are the quality's standard deviation over seeds. False (nothing drawn) when fewer
    than two models have the quality."""
    from zoo.bench.questions import pareto_front

    models = [r for r in rows if r.get("kind") == "model" and isinstance(r.get(quality), (int, float))
              and np.isfinite(r[quality])]
    if len(models) < 2:
        return False
    plt = _pyplot()
    costs = [(c, name) for c, name in (("parameters", "parameters"), ("latency_ms", "inference ms per batch"))
             if all(isinstance(r.get(c), (int, float)) for r in models)]
    fig, axes = plt.subplots(1, len(costs), figsize=(5.2 * len(costs), 4.2), squeeze=False)
    for ax, (cost, cost_label) in zip(axes.flat, costs):
        x = np.array([float(r[cost]) for r in models])
        y = np.array([float(r[quality]) for r in models])
        err = np.array([float(r.get(f"{quality}_sd") or 0.0) for r in models])
        ax.errorbar(x, y, yerr=err, fmt="o", color="#4477aa", ecolor="#999999", capsize=2, markersize=4)
        front = pareto_front(zip(x, y))
        ax.plot(x[front], y[front], "-", color="#cc6677", linewidth=1.2, label="Pareto front")
        for i, r in enumerate(models):
            ax.annotate(r["name"], (x[i], y[i]), fontsize=6, xytext=(3, 3), textcoords="offset points",
                        color="#cc6677" if i in front else "#444444")
        if cost == "parameters":
            ax.set_xscale("log")
        ax.set_xlabel(cost_label + (" (log)" if cost == "parameters" else ""), fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{label} against cost; higher and further left is better", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return True


# The report.

def mppca_sentence(refs) -> str:
    """The references sentence's part on the `mppca-K` rows (empty without them)."""
    mixtures = [r for r in refs if r.get("family") == "mppca"]
    if not mixtures:
        return ""
    fits = "; ".join(f"{r['name']}: d = {r['code_size']}, {r['train_examples']:,} training examples, "
                     f"{r['em_iterations']} EM iterations{'' if r['em_converged'] else ' (not converged)'}, "
                     f"{r['fit_seconds']:g} s" for r in mixtures)
    return (" *mppca-K* is a mixture of K such analysers with d latent dimensions each (Tipping & Bishop, 1999), "
            "fitted by EM from a seeded k-means++ start on a seeded subsample of the training images "
            f"({fits}); its reconstruction is V_k·E[z|x, k] + μ_k of the responsible component k, its code the "
            "responsibility-weighted posterior means of all K components, and its NLL the exact "
            "−log Σ_k π_k N(x; μ_k, V_kV_kᵀ + σ_k²I), in nats like PPCA's.")


def write_report(path, results: dict) -> None:
    """Writes report.md from the results `zoo.bench.runner` assembled (see `benchmark.py`)."""
    rows = results["rows"]
    models = [r for r in rows if r.get("kind") == "model"]
    refs = [r for r in rows if r.get("kind") == "reference"]
    s = results["settings"]
    figures = results.get("figures", {})
    out = [f"# Autoencoder benchmark: {', '.join(r['name'] for r in models)}", ""]
    out += [f"Command: `{results['command']}`", "",
            f"Started {results['started']}, total running time {results['runtime_seconds'] / 60:.1f} min "
            f"({results['runtime_seconds']:.0f} s) on the machine below.", ""]
    out += [f"Data: {s.get('data_source', s.get('dataset'))} ({s.get('data_kind', 'images')}).", ""]
    if smoke_note(results):
        out += [smoke_note(results), ""]
    if results.get("skipped"):
        out += ["Left out, as their model cannot take this data: " + "; ".join(
            f"{k['name']} ({k['reason']})" for k in results["skipped"]) + ".", ""]
    if results.get("questions"):
        out += ["## Which autoencoder for what", "",
                f"Computed from the tables below ({_budget_phrase(results)}). A difference is *larger than the "
                "spread* when the two variants' intervals (mean ± one standard deviation over seeds) do not "
                "overlap.", "", results["questions"], ""]
    out += ["## Results", "",
            f"Every variant was trained on the same data with the same budget ({_budget_phrase(results)}); "
            "nothing was selected after the fact. *Italic* rows are references computed by the "
            "same evaluation code. Higher is better except for MSE, BCE, NLL and −ELBO."
            + (" Values are mean ± standard deviation over the seeds." if s.get("seeds", 1) > 1 else ""), "",
            markdown_table(rows, ("name", "family", "code_size", "mse", "bce", "psnr", "robust_psnr_mean",
                                  "probe_accuracy", "knn_accuracy")), ""]
    out += ["### Budget and cost", "",
            markdown_table(models, ("name", "parameters", "budget", "epochs", "stop", "seeds", "steps_per_epoch",
                                    "batch_size", "samples_seen", "seed", "train_seconds",
                                    "train_samples_per_second", "timed_epochs", "latency_ms", "latency_batch_size",
                                    "eval_seconds")), "",
            "Throughput is steady-state (first epoch excluded) when more than one epoch ran; with "
            "`timed epochs` = 1 it includes tracing and compilation. Latency is the median of 20 compiled "
            "inference calls on one batch. The machine was shared with other jobs, so times are indicative.", ""]
    corruption_columns = [c for c in COLUMNS if c.startswith("psnr_")]
    if any(r.get("robust_psnr_mean") is not None for r in rows):
        out += ["### Robustness: PSNR (dB) of the clean image vs the reconstruction of a corrupted input", "",
                markdown_table(rows, ("name", "psnr", *corruption_columns, "robust_psnr_mean")), "",
                "Gaussian noise is clipped to [0, 1]; salt-and-pepper sets a fraction p of pixels to 0 or 1; masking "
                "zeroes a fraction p. The *raw-pixels* row is the PSNR of the corrupted input itself: what doing "
                "nothing achieves.", ""]
    sparse = [r for r in models if r.get("mean_activation") is not None]
    if sparse:
        out += ["### Sparsity", "", markdown_table(sparse, ("name", "code_size", "mean_activation", "rho")), "",
                "mean ρ̂ is the mean over code units of their mean activation on the test set.", ""]
    likely = [r for r in rows if r.get("nll") is not None]
    if likely:
        out += ["### Likelihood", "",
                markdown_table(likely, ("name", "code_size", "active_units", "neg_elbo", "nll", "nll_samples",
                                        "nll_examples", "nll_data")), "",
                "NLL is −log p(x) per test image in nats: importance-sampled with k samples from q(z|x) for the "
                "VAEs, exact for PPCA. A Bernoulli NLL on binarized pixels and a Gaussian density on grayscale "
                "pixels are different quantities: compare VAEs with VAEs. Active units: posterior-mean variance "
                "over the test set above 0.01.", ""]
    if refs:
        out += ["References: *raw-pixels* runs the probes on the flattened image; *ppca-q* is probabilistic PCA "
                "with q latent dimensions, fitted by closed-form maximum likelihood on the training images, its "
                "code the posterior mean E[z|x] and its reconstruction W·E[z|x] + μ." + mppca_sentence(refs), ""]
    exports = results.get("exports", {})
    out += ["### Export", ""]
    if results.get("export_note"):
        out += [results["export_note"], ""]
    for name, status in exports.items():
        out.append(f"- {name}: {status}")
    out.append("")
    if figures:
        out += ["## Figures", ""]
        for key, title in (("pareto", "Quality against cost"), ("bars", "Main metrics"), ("curves", "Training curves"),
                           ("codes", "Codes of the test set, first two principal components, coloured by class")):
            if key in figures:
                out += [f"### {title}", "", f"![{title}]({figures[key]})", ""]
        for name, paths in figures.get("variants", {}).items():
            out += [f"### {name}", ""] + [f"![{name} {what}]({p})" for what, p in paths.items()] + [""]
    out += ["## Settings", "", "| setting | value |", "|---|---|"]
    out += [f"| {k} | {fmt(v if not isinstance(v, list) else ', '.join(map(str, v)))} |" for k, v in s.items()]
    out += ["", "Definitions are in the docstring of `zoo/evaluate.py` and in docs/benchmark.md.", ""]
    out += ["## Machine", "", "| | |", "|---|---|"]
    out += [f"| {k} | {fmt(v)} |" for k, v in results["machine"].items()]
    out += ["", "Files: `results.json` (everything above), `results.csv` (one row per variant), `runs/` (the run "
            "directories, each with its evaluation.json).", ""]
    write_text(path, "\n".join(out))


#: An epoch budget below this many epochs is a smoke run: it tests the pipeline, not the variants.
SMOKE_EPOCHS = 5
#: Where the comparison at a converged budget is published, and the command that made it.
CONVERGED_TABLE = ("docs/benchmark.md, section \"The converged table\", of the zoo's source "
                   "(`zoo bench --budget converged=20 --seeds 3 --nll-samples 100 --nll-examples 2000`)")


def smoke_note(results: dict) -> str:
    """A warning paragraph for a run with an epoch budget under `SMOKE_EPOCHS` epochs, else ""."""
    spec = results["settings"].get("budget_spec", "")
    if not spec.startswith("epochs="):
        return ""
    epochs = int(spec.split("=", 1)[1])
    if epochs >= SMOKE_EPOCHS:
        return ""
    return (f"**A smoke run.** {epochs} epoch{'s' if epochs != 1 else ''} per variant shows that every recipe fits, "
            "evaluates and exports; its numbers describe that budget, not the variants (networks this short "
            f"of training trail PPCA). Which variant to pick: the converged comparison in {CONVERGED_TABLE}.")


def _budget_phrase(results: dict) -> str:
    s = results["settings"]
    seeds = s.get("seeds", 1)
    return f"budget {s.get('budget', str(s.get('epochs')) + ' epochs')}, {seeds} seed{'s' if seeds != 1 else ''}"


def relative(path, base) -> str:
    """`path` relative to `base`, with forward slashes (for links in report.md)."""
    return Path(path).relative_to(base).as_posix()
