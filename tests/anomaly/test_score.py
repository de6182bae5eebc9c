"""`zoo score` / `zoo.score`: calibration on held-out normal data, the per-example table, the CLI and
its bad input, and the `score` / `detect` signatures served by TF1's loader and LiteRT."""

import json

import numpy as np
import pandas as pd
import pytest

import zoo
from zoo.anomaly.scores import score_examples
from zoo.anomaly.thresholds import threshold
from zoo.cli import main
from zoo.data.splits import load_splits


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A table autoencoder trained on the benign rows of the breast-cancer table only."""
    recipe = zoo.load_recipe("tabular_ae", overrides=["train.epochs=15", "data.normal_labels=['benign']"])
    return zoo.fit(recipe, out=tmp_path_factory.mktemp("score") / "run", verbose=0)


def test_one_class_training_keeps_the_normal_class_out_of_the_fit_split(run):
    splits = load_splits(run.recipe.data, run.recipe.train.seed)
    assert set(splits.y_fit) == {1} and set(splits.y_val) == {1}  # benign = 1 in scikit-learn's coding
    assert set(splits.y_test) == {0, 1}                          # the test split keeps every row


def test_score_calibrates_on_the_validation_split_and_flags_above_the_threshold(run, tmp_path):
    result = zoo.score(run.dir, rule="quantile", level=0.9, out=tmp_path / "s.csv")
    splits = load_splits(run.recipe.data, run.recipe.train.seed)
    normal = score_examples(run.model, splits.x_val)
    assert result.threshold["threshold"] == pytest.approx(threshold(normal, "quantile", 0.9))
    assert result.threshold["examples"] == len(splits.x_val) and "validation split" in result.threshold["calibration_data"]
    assert json.loads((run.dir / "threshold.json").read_text())["threshold"] == result.threshold["threshold"]
    table = pd.read_csv(tmp_path / "s.csv")
    assert list(table.columns) == ["index", "score", "threshold", "is_anomaly", "label", "anomalous"]
    assert len(table) == len(splits.x_test)
    np.testing.assert_allclose(table["score"], score_examples(run.model, splits.x_test), rtol=1e-6)
    assert (table["is_anomaly"] == (table["score"] > table["threshold"])).all()
    # normal_labels of the recipe define the truth: malignant rows are the anomalies.
    assert (table["anomalous"] == (table["label"] == "malignant")).all()
    s = result.summary
    assert 0.5 < s["auroc"] <= 1 and s["flagged"] == int(table["is_anomaly"].sum()) and s["anomalies"] == 38


def test_a_threshold_is_reused_until_the_rule_changes(run, tmp_path):
    first = zoo.score(run.dir, rule="sigma", level=2.0, out=tmp_path / "a.parquet")
    path = run.dir / "threshold.json"
    stamp = path.stat().st_mtime_ns
    again = zoo.score(run.dir, rule="sigma", level=2.0, out=tmp_path / "b.csv")
    assert path.stat().st_mtime_ns == stamp and again.threshold == first.threshold
    assert pd.read_parquet(tmp_path / "a.parquet").shape == pd.read_csv(tmp_path / "b.csv").shape
    other = zoo.score(run.dir, score="mae", rule="max", out=tmp_path / "c.csv")
    assert other.threshold["rule"] == "max" and other.threshold["score"] == "mae"


def test_new_data_is_read_with_the_runs_settings(run, tmp_path):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.head(40)
    frame.to_csv(tmp_path / "new.csv", index=False)
    result = zoo.score(run.dir, data=str(tmp_path / "new.csv"), anomaly_labels=["0"], out=tmp_path / "n.csv")
    assert result.summary["examples"] == 40 and "csv:" in result.summary["data"]
    assert result.summary["anomalies"] == int((frame["target"] == 0).sum())
    # Without labels given, the run's normal_labels (['benign']) name the normal rows of the new
    # file, whose integer labels are coded as the training data named them (0 malignant, 1 benign).
    default = zoo.score(run.dir, data=str(tmp_path / "new.csv"), out=tmp_path / "d.csv")
    assert default.summary["anomalies"] == int((frame["target"] == 0).sum())
    assert set(default.table["label"]) <= {"malignant", "benign"}


def cli(capsys, *argv):
    code = main(["score", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_a_summary(run, capsys, tmp_path):
    code, out, err = cli(capsys, run.dir, "--rule", "contamination", "--level", "0.3", "--out", tmp_path / "t.csv")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("scored 114 examples of test split of sklearn:breast_cancer")
    assert "contamination 0.3 on the validation split" in lines[1] and lines[2].startswith("flagged ")
    assert lines[3].startswith("AUROC ") and lines[-1] == str(tmp_path / "t.csv")


@pytest.mark.parametrize("argv, fragment", [
    (["{run}", "--score", "nll"], "Unknown score 'nll' for model 'stacked'. Allowed: objective, mse, mae"),
    (["{run}", "--rule", "median"], "Unknown threshold rule 'median'"),
    (["{run}", "--rule", "quantile", "--level", "2"], "rule 'quantile' needs a level in (0, 1)"),
    (["{run}", "--anomaly-labels", "0", "--normal-labels", "1"], "give anomaly labels or normal labels, not both"),
    (["{run}", "--anomaly-labels", "owl"], "label 'owl' is neither a class of the data"),
    (["{run}", "--out", "{tmp}/scores.txt"], "--out must end in .csv or .parquet"),
    (["{run}", "--data", "{tmp}/wide.csv"], "wide.csv has no column 'mean radius'; its columns: a, b"),
    (["{run}", "--data", "{tmp}/x.npy"], "examples of shape (2,) do not fit the model's input (30,)"),
    (["{tmp}/nowhere"], "No run directory"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(run, capsys, tmp_path, argv, fragment):
    (tmp_path / "wide.csv").write_text("a,b\n1,2\n3,4\n")
    np.save(tmp_path / "x.npy", np.ones((4, 2), "float32"))
    before = sorted(tmp_path.rglob("*")), sorted(run.dir.rglob("*"))
    code, out, err = cli(capsys, *[a.format(run=run.dir, tmp=tmp_path) for a in argv])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("zoo score: error: "), err
    assert fragment in lines[0], lines[0]
    assert (sorted(tmp_path.rglob("*")), sorted(run.dir.rglob("*"))) == before


@pytest.mark.slow
def test_score_and_detect_signatures_match_keras(run, tmp_path):
    """The exported `score` signature returns the objective score and per-feature scores; `detect`
    bakes in the calibrated threshold; both through TF1's session loader and LiteRT."""
    from conftest import run_signature, tf1_session

    from zoo.export.runners import TFLiteRunner

    result = zoo.score(run.dir, score="mse", rule="quantile", level=0.8, out=tmp_path / "s.csv")
    paths = zoo.export(run.dir, base=tmp_path / "sm", format="tflite", quantize="none", latency_runs=2)
    zoo.export(run.dir, base=tmp_path / "sm", format="saved_model")
    x = load_splits(run.recipe.data, run.recipe.train.seed).x_test[:32]
    want_score = score_examples(run.model, x)
    want_mse = score_examples(run.model, x, "mse")
    want_features = np.asarray(run.model.feature_scores(x))
    flagged = want_mse > result.threshold["threshold"]
    assert 0 < flagged.sum() < len(x)
    session, signatures = tf1_session(tmp_path / "sm" / "tabular_ae" / "1")
    tflite = TFLiteRunner(next(p for p in paths if str(p).endswith("_float32.tflite")))
    assert {"score", "detect"} <= set(signatures) and {"score", "detect"} <= set(tflite.signatures)
    for got in (run_signature(session, signatures["score"], x=x), tflite("score", x=x)):
        np.testing.assert_allclose(got["score"], want_score, rtol=1e-4)
        np.testing.assert_allclose(got["feature_scores"], want_features, rtol=1e-4, atol=1e-5)
    for got in (run_signature(session, signatures["detect"], x=x), tflite("detect", x=x)):
        np.testing.assert_allclose(got["score"], want_mse, rtol=1e-4)
        np.testing.assert_array_equal(np.asarray(got["is_anomaly"]).astype(bool), flagged)


@pytest.mark.slow
def test_a_dynamically_binarized_run_without_validation_calibrates_on_binarized_images(tmp_path):
    """vae_reference keeps no validation split and binarizes the test set once: the threshold is
    calibrated on a binarized copy of the training split, not on its grayscale pixels (which
    would put every binarized test image above it)."""
    recipe = zoo.load_recipe("vae", overrides=["data.validation_size=0", "train.epochs=1", "train.steps_per_epoch=3",
                                               "model.hidden=[32]"])
    run = zoo.fit(recipe, out=tmp_path / "run", verbose=0)
    result = zoo.score(run.dir, score="mse", rule="quantile", level=0.95, out=tmp_path / "s.csv")
    assert result.threshold["calibration_data"].startswith("training split, binarized once")
    # Calibrated like the test data is prepared, about 5% of the (normal) test images are flagged.
    assert 0.01 < result.summary["flagged_fraction"] < 0.15
