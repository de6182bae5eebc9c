"""The benchmark's files and columns on a tiny budget (never its speed), and the report's pieces."""

import csv
import json
import math
from pathlib import Path

import pytest

import zoo
from zoo.bench import runner as bench
import zoo.bench.report as report


def test_markdown_table_formats_and_marks_references():
    rows = [{"name": "vae", "kind": "model", "psnr": 18.1234, "nll": None, "parameters": 1234567},
            {"name": "ppca-32", "kind": "reference", "psnr": float("nan"), "nll": -455.0}]
    text = report.markdown_table(rows, ("name", "parameters", "psnr", "nll", "absent"))
    lines = text.splitlines()
    assert lines[0] == "| variant | parameters | PSNR dB | NLL nats |"
    assert lines[2] == "| vae | 1,234,567 | 18.12 | — |"
    assert lines[3] == "| *ppca-32* | — | nan | -455.00 |"


def test_csv_has_one_column_per_metric_in_a_stable_order():
    rows = [{"name": "a", "kind": "model", "psnr": 1.0, "zeta": 2, "settings": {"x": 1}},
            {"name": "b", "kind": "reference", "mse": 0.5}]
    parsed = list(csv.DictReader(report.rows_csv(rows).splitlines()))
    assert list(parsed[0]) == ["name", "kind", "mse", "psnr", "zeta"]  # known columns first; nested data left out
    assert parsed[1]["mse"] == "0.5" and parsed[1]["psnr"] == ""


def test_project_2d_handles_small_and_broken_codes():
    import numpy as np

    points = report.project_2d(np.random.default_rng(0).normal(size=(50, 5)))
    assert points.shape == (50, 2)
    assert report.project_2d(np.ones((10, 1))).shape == (10, 2)
    assert np.all(report.project_2d(np.full((4, 3), np.nan)) == 0)


def test_recipes_are_checked_before_anything_trains():
    with pytest.raises(FileNotFoundError, match="No recipe file 'nope'"):
        bench.load_recipes(["basic", "nope"], 1, None, 0)
    with pytest.raises(ValueError, match="Two recipes are named 'basic'"):
        bench.load_recipes(["basic", "basic"], 1, None, 0)
    loaded = bench.load_recipes(["basic", "vae"], 2, 5, 7)
    assert [(r.train.epochs, r.train.steps_per_epoch, r.train.seed) for r in loaded] == [(2, 5, 7)] * 2


def test_a_failing_export_is_reported_not_raised(tmp_path):
    def broken(run_dir, base, format):
        raise RuntimeError("onnx converter missing\nsecond line")

    status = bench.run_export(broken, tmp_path, tmp_path / "saved_models")
    assert status.startswith("failed after") and "RuntimeError: onnx converter missing" in status
    assert "second line" not in status

    def fine(run_dir, base, format):
        return [Path(base) / "m" / "1", Path(base) / "m" / "tflite" / "a.tflite", Path(base) / "m" / "tflite" / "b.tflite"]

    status = bench.run_export(fine, tmp_path, tmp_path / "saved_models")
    assert status.startswith("ok in") and status.endswith("3 artifacts in saved_models/: m/1, m/tflite (2)")


def test_find_export_returns_a_callable_or_says_why():
    fn, note = bench.find_export()
    assert callable(fn) and fn.__name__ == "zoo.export" and "zoo.export(run_dir" in note


def test_bench_command_line_is_recorded_in_full():
    from zoo.cli import _bench_argv, build_parser

    args = build_parser().parse_args(["bench", "basic", "vae", "--epochs", "1", "--steps-per-epoch", "5",
                                      "--no-export"])
    assert _bench_argv(args) == ["zoo", "bench", "basic", "vae", "--epochs", "1", "--steps-per-epoch", "5",
                                 "--out", "bench", "--nll-samples", "1000", "--nll-examples", "0",
                                 "--probe-train-size", "10000", "--seed", "0", "--no-export"]


def test_bench_cli_reports_a_bad_recipe_in_one_line(tmp_path, capsys):
    from zoo.cli import main

    assert main(["bench", "nope", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zoo bench: error: No recipe file 'nope'") and "\n" not in err
    assert not (tmp_path / "b").exists()


TINY = dict(epochs=1, steps_per_epoch=2, nll_samples=5, nll_examples=40, eval_examples=300, probe_train_size=300,
            progress=False)


@pytest.mark.slow
def test_tiny_benchmark_writes_every_file_and_column(tmp_path, monkeypatch):
    calls = []

    def fake_export(run_dir, base, format):
        calls.append((Path(run_dir).name, format))
        return [Path(base) / Path(run_dir).name / "1"]

    monkeypatch.setattr(bench, "find_export", lambda: (fake_export, "Exported by the test's stand-in."))
    monkeypatch.setattr("zoo.evaluation.mppca.MPPCA_TRAIN", 1000)  # the EM fit on 10,000 images takes a minute
    out = tmp_path / "bench"
    results = zoo.benchmark(["basic", "vae", "sparse"], out=out, command="zoo bench basic vae sparse (test)", **TINY)

    for name in ("report.md", "results.json", "results.csv", "figures/codes.png", "figures/curves.png",
                 "figures/bars.png", "figures/basic_reconstructions.png", "figures/vae_samples.png",
                 "figures/vae_interpolation.png", "runs/vae/evaluation.json", "runs/sparse/model.keras"):
        assert (out / name).is_file(), name
    assert calls == [("basic", "all"), ("vae", "all"), ("sparse", "all")]

    with open(out / "results.csv", newline="") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    # One PPCA reference per latent size of the variants: basic 64, vae 32, sparse 196; a mixture with the smallest.
    assert set(rows) == {"basic", "vae", "sparse", "raw-pixels", "ppca-32", "ppca-64", "ppca-196", "mppca-10"}
    columns = set(next(iter(rows.values())))
    for column in ("parameters", "epochs", "steps_per_epoch", "samples_seen", "train_seconds",
                   "train_samples_per_second", "latency_ms", "mse", "bce", "psnr", "psnr_gaussian_0.3",
                   "psnr_gaussian_0.5", "psnr_salt_pepper_0.2", "psnr_salt_pepper_0.4", "psnr_masking_0.3",
                   "psnr_masking_0.5", "robust_psnr_mean", "probe_accuracy", "knn_accuracy", "mean_activation", "rho",
                   "active_units", "neg_elbo", "nll", "export"):
        assert column in columns, column
    assert rows["vae"]["nll"] and rows["ppca-32"]["nll"] and not rows["basic"]["nll"]
    assert rows["mppca-10"]["code_size"] == "32" and rows["mppca-10"]["train_examples"] == "1000"
    assert math.isfinite(float(rows["mppca-10"]["nll"])) and rows["mppca-10"]["nll_data"].startswith("grayscale")
    assert rows["sparse"]["rho"] == "0.05" and rows["basic"]["mean_activation"] == ""
    assert rows["basic"]["epochs"] == "1" and rows["basic"]["steps_per_epoch"] == "2"
    assert rows["sparse"]["samples_seen"] == str(2 * 256)  # the sparse recipe's batch is 256: budgets differ, said so

    text = (out / "report.md").read_text()
    for needle in ("zoo bench basic vae sparse (test)", "## Machine", "### Budget and cost", "### Robustness",
                   "### Likelihood", "### Sparsity", "![Main metrics](figures/bars.png)", "figures/vae_samples.png",
                   "Exported by the test's stand-in.", "| steps_per_epoch | 2 |",
                   "*mppca-K* is a mixture of K", "mppca-10: d = 32, 1,000 training examples",
                   "**A smoke run.** 1 epoch per variant"):
        assert needle in text, needle
    saved = json.loads((out / "results.json").read_text())
    assert saved["settings"]["nll_samples"] == 5 and saved["machine"]["logical CPUs"]
    assert len(saved["rows"]) == len(results["rows"]) == 8

    # Rerunning reuses the finished runs and gives the same numbers.
    again = zoo.benchmark(["basic", "vae", "sparse"], out=out, export=False, **TINY)
    for first, second in zip(results["rows"], again["rows"]):
        for key in ("mse", "psnr", "robust_psnr_mean", "probe_accuracy", "knn_accuracy", "nll", "neg_elbo"):
            a, b = first.get(key), second.get(key)
            assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), (first["name"], key)
    assert all(r["reused_run"] for r in again["rows"] if r["kind"] == "model")
    assert "Export skipped" in (out / "report.md").read_text()


@pytest.mark.slow
def test_same_seed_same_numbers_after_retraining(tmp_path, monkeypatch):
    monkeypatch.setattr("zoo.evaluation.mppca.MPPCA_TRAIN", 1000)
    settings = dict(TINY, export=False)
    first = zoo.benchmark(["basic"], out=tmp_path / "a", **settings)["rows"][0]
    second = zoo.benchmark(["basic"], out=tmp_path / "b", **settings)["rows"][0]
    for key in ("mse", "bce", "psnr", "psnr_masking_0.5", "probe_accuracy", "knn_accuracy"):
        assert first[key] == pytest.approx(second[key], rel=1e-5, abs=1e-6), key


def test_default_recipes_are_the_fashion_mnist_ones_and_with_data_all_of_them():
    default = bench.default_recipes(any_data=False)
    assert {"basic", "vae", "conv_vae", "sparse"} <= set(default)
    assert not {"tabular_ae", "timeseries_ae", "image_folder"} & set(default)
    assert bench.default_recipes(any_data=True) == zoo.list_recipes()


@pytest.mark.slow
def test_bench_on_a_table_compares_the_variants_that_take_it(tmp_path, capsys):
    """`zoo bench --data breast_cancer`: every shipped recipe gets the table; the ones that cannot
    take standardized rows (a conv backbone, a cross-entropy loss, a Bernoulli likelihood) are
    left out with their reason, the others are trained and scored in standardized units."""
    from zoo.cli import main

    out = tmp_path / "b"
    code = main(["bench", "--data", "breast_cancer", "--epochs", "1", "--steps-per-epoch", "2", "--out", str(out),
                 "--nll-samples", "5", "--probe-train-size", "200", "--no-export"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    trained = {r["name"] for r in results["rows"] if r["kind"] == "model"}
    skipped = {s["name"]: s["reason"] for s in results["skipped"]}
    assert {"tabular_ae", "tabular_vae"} <= trained
    assert "backbone='conv' needs images" in skipped["conv_vae"]
    assert "loss='bce' needs values in [0, 1]" in skipped["basic"]
    assert "likelihood='bernoulli'" in skipped["vae"]
    assert trained | set(skipped) == set(zoo.list_recipes())
    assert results["settings"]["data_kind"] == "table"
    assert all("psnr" not in r and math.isfinite(r["mse"]) for r in results["rows"] if r["kind"] == "model")
    report_md = (out / "report.md").read_text()
    assert "Left out, as their model cannot take this data: " in report_md and "Robustness" not in report_md


@pytest.mark.parametrize("spec, smoke", [("epochs=1", True), ("epochs=4", True), ("epochs=5", False),
                                         ("converged=20", False), ("time=3", False)])
def test_short_epoch_budgets_are_marked_as_smoke_runs(spec, smoke):
    note = report.smoke_note({"settings": {"budget_spec": spec}})
    assert bool(note) == smoke
    if smoke:
        assert note.startswith("**A smoke run.**") and "converged=20 --seeds 3" in note
