"""The one-class benchmark: its references by hand, the injected anomalies, its files on a tiny budget, the CLI."""

import csv
import json

import numpy as np
import pytest

from zoo.bench import anomaly


def _correlated(n, dim, seed):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) * np.linspace(2.0, 0.2, dim)
    return rng.normal(size=(n, dim)) @ mixing.T + rng.normal(size=dim)


def test_ppca_reference_is_the_gaussian_log_density_of_the_ml_fit(monkeypatch):
    from scipy.stats import multivariate_normal

    monkeypatch.setitem(anomaly.PPCA_CODE, "co2", 2)
    fit, test = _correlated(300, 6, 0), _correlated(20, 6, 1)
    (name, _, ppca), = [r for r in anomaly.reference_scorers("co2", 0) if r[0].startswith("ppca")]
    assert name == "ppca-2"
    _, scores = ppca(fit, fit[:5], test)
    # The ML solution by hand (Tipping & Bishop): S = (1/N) Σ (x−μ)(x−μ)ᵀ, σ² = mean of the
    # discarded eigenvalues, W = U_q (Λ_q − σ²I)^{1/2}, C = WWᵀ + σ²I.
    mu = fit.mean(axis=0)
    s = (fit - mu).T @ (fit - mu) / len(fit)
    lam, u = np.linalg.eigh(s)
    lam, u = lam[::-1], u[:, ::-1]
    sigma2 = lam[2:].mean()
    w = u[:, :2] * np.sqrt(lam[:2] - sigma2)
    expected = multivariate_normal(mean=mu, cov=w @ w.T + sigma2 * np.eye(6)).logpdf(test)
    np.testing.assert_allclose(scores, -expected, rtol=1e-9, atol=1e-9)


def test_forest_and_svm_references_score_outliers_higher():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    fit = rng.normal(size=(400, 5))
    test = np.concatenate([rng.normal(size=(50, 5)), rng.normal(size=(50, 5)) + 4.0])
    truth = np.r_[np.zeros(50, bool), np.ones(50, bool)]
    for name, _, fn in anomaly.reference_scorers("co2", 0):
        if name.startswith("ppca"):
            continue
        held, scores = fn(fit, fit[:10], test)
        assert held.shape == (10,) and scores.shape == (100,)
        assert roc_auc_score(truth, scores) > 0.99, name


def test_injection_is_seeded_and_touches_only_what_it_records():
    rng = np.random.default_rng(3)
    x_fit = np.cumsum(rng.normal(size=(40, 20, 1)), axis=1).astype("float32")
    x_test = np.cumsum(rng.normal(size=(60, 20, 1)), axis=1).astype("float32")
    x, truth, info = anomaly.inject_anomalies(x_test, x_fit, seed=5)
    again, truth_again, _ = anomaly.inject_anomalies(x_test, x_fit, seed=5)
    np.testing.assert_array_equal(x, again)
    np.testing.assert_array_equal(truth, truth_again)
    assert truth.sum() == round(anomaly.INJECTION["fraction"] * 60)
    kinds, counts = np.unique(info["kind"][truth], return_counts=True)
    assert list(kinds) == ["burst", "shift", "spike"] and counts.max() - counts.min() <= 1
    s = np.std(np.diff(x_fit.astype(np.float64), axis=1))
    np.testing.assert_allclose(info["s"], [s], rtol=1e-5)
    diff = x - x_test
    for i in range(60):
        changed = np.flatnonzero(np.abs(diff[i, :, 0]) > 0)
        if not truth[i]:
            assert changed.size == 0
            continue
        first, steps = info["first_step"][i], info["steps"][i]
        assert set(changed) <= set(range(first, first + steps))
        if info["kind"][i] == "spike":
            np.testing.assert_allclose(abs(diff[i, first, 0]), anomaly.INJECTION["spike"] * s, rtol=1e-4)
        if info["kind"][i] == "shift":
            assert first + steps == 20
            np.testing.assert_allclose(np.abs(diff[i, first:, 0]), anomaly.INJECTION["shift"] * s, rtol=1e-4)


def test_bad_tasks_and_classes_are_refused_before_anything_trains(tmp_path):
    with pytest.raises(ValueError, match="Unknown anomaly task 'mnist'. Known: fashion_mnist, breast_cancer, co2"):
        anomaly.anomaly_benchmark(["basic"], epochs=1, tasks=("mnist",), out=tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="classes must be distinct integers in 0..9"):
        anomaly.anomaly_benchmark(["basic"], epochs=1, classes=(0, 10), out=tmp_path / "a", progress=False)
    with pytest.raises(FileNotFoundError, match="No recipe file 'nope'"):
        anomaly.anomaly_benchmark(["nope"], epochs=1, classes=(0,), out=tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="trains on Fashion-MNIST; tabular_ae uses other data"):
        anomaly.anomaly_benchmark(["tabular_ae"], epochs=1, classes=(0,), out=tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()


def test_cli_task_errors_are_one_line(tmp_path, capsys):
    from zoo.cli import main

    assert main(["bench", "--task", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "argument --task: invalid choice: 'nope'" in err and "\n" not in err
    for argv, message in ((["--classes", "0,x"], "--classes takes comma-separated integers"),
                          (["--classes", "12"], "classes must be distinct integers in 0..9"),
                          (["--datasets", "mnist"], "Unknown anomaly task 'mnist'"),
                          (["--data", "x.csv"], "--data and --data-set apply to --task reconstruction")):
        assert main(["bench", "--task", "anomaly", "--out", str(tmp_path / "b"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("zoo bench: error: ") and message in err and "\n" not in err, err
    assert main(["bench", "--classes", "0", "--out", str(tmp_path / "b")]) == 2
    assert "--classes and --datasets apply to --task anomaly" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_anomaly_command_line_is_recorded_in_full():
    from zoo.cli import _bench_argv, build_parser

    args = build_parser().parse_args(["bench", "--task", "anomaly", "vae", "--classes", "0,1"])
    assert _bench_argv(args) == ["zoo", "bench", "--task", "anomaly", "vae", "--epochs", str(anomaly.DEFAULT_EPOCHS),
                                 "--out", "bench-anomaly", "--nll-samples", str(anomaly.DEFAULT_NLL_SAMPLES),
                                 "--seed", "0", "--classes", "0,1", "--datasets", "fashion_mnist,breast_cancer,co2"]


@pytest.mark.slow
def test_tiny_one_class_benchmark_writes_its_files_and_reuses_its_runs(tmp_path):
    out = tmp_path / "bench"
    settings = dict(epochs=1, steps_per_epoch=2, out=out, classes=(0, 1), tasks=("fashion_mnist",), progress=False)
    results = anomaly.anomaly_benchmark(["basic"], command="zoo bench --task anomaly basic (test)", **settings)

    for name in ("report.md", "results.json", "results.csv", "figures/fashion_mnist_roc.png",
                 "figures/fashion_mnist_histograms.png", "figures/fashion_mnist_class-0_examples.png",
                 "figures/fashion_mnist_class-1_examples.png", "runs/fashion_mnist/class-0/basic/model.keras",
                 f"runs/fashion_mnist/class-1/basic/{anomaly.SCORE_CACHE}"):
        assert (out / name).is_file(), name
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for column in ("task", "class", "normal", "name", "kind", "score", "auroc", "auprc", "precision", "recall", "f1",
                   "threshold", "calibrated_on", "epochs", "samples_seen"):
        assert column in rows[0], column
    scores = {"objective", "mse", "mae", "bce"}
    expected = {(c, "basic", s) for c in ("0", "1") for s in scores}
    expected |= {(c, name, desc) for c in ("0", "1") for name, desc, _ in anomaly.reference_scorers("fashion_mnist", 0)}
    assert {(r["class"], r["name"], r["score"]) for r in rows} == expected
    assert all(0.0 <= float(r["auroc"]) <= 1.0 and r["examples"] == "10000" and r["anomalies"] == "9000" for r in rows)

    by_row = {(r["name"], r["score"], r["class"]): r["auroc"] for r in results["rows"]}
    for s in results["summary"]:
        per_class = [by_row[(s["name"], s["score"], c)] for c in (0, 1)]
        assert s["auroc_by_class"] == {"0": per_class[0], "1": per_class[1]}
        assert s["mean_auroc"] == pytest.approx(np.mean(per_class), abs=1e-12)
    text = (out / "report.md").read_text()
    assert "zoo bench --task anomaly basic (test)" in text and "GEOM (Golan & El-Yaniv, 2018) | 93.5" in text
    assert "second-hand copies of the papers' tables" in text

    again = anomaly.anomaly_benchmark(["basic"], **settings)
    models = [r for r in again["rows"] if r["kind"] == "model"]
    assert models and all(r["reused_run"] for r in models)
    assert [r["auroc"] for r in again["rows"]] == [r["auroc"] for r in results["rows"]]
    assert json.loads((out / "results.json").read_text())["summary"] == again["summary"]
