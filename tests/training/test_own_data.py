"""Training on your own data: a folder of images, a table, a series, arrays; from Python and the CLI.

The data are real and offline: Fashion-MNIST written out as PNG files, scikit-learn's breast-
cancer table and 8×8 digits, statsmodels' weekly CO2 series. Bad data are refused in one line
before anything is written.
"""

import json
import os

import keras
import numpy as np
import pytest
from conftest import write_breast_cancer, write_co2, write_fashion_folder

import zoo
from zoo.cli import main
from zoo.data.splits import load_splits

SHORT = ["--epochs", "2", "--steps-per-epoch", "3", "--quiet"]


def fit_cli(capsys, *argv):
    code = main(["fit", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_fashion_folder(tmp_path_factory.mktemp("own") / "fashion", n_train=200, n_test=60)


def test_a_conv_vae_trains_on_a_png_folder_and_serves_raw_pixels(folder, tmp_path, capsys):
    """`zoo fit conv_vae --data FOLDER`: 32×32 RGB PNGs (not the recipe's 28×28×1), pixels scaled
    inside the model, reconstructions in 0..255, labels from the class folders."""
    code, out, err = fit_cli(capsys, "conv_vae", "--data", folder, "--out", tmp_path / "run", *SHORT)
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["input_shape"] == [32, 32, 3] and metrics["preprocessing"] == "scale"
    assert (metrics["fit_examples"], metrics["validation_examples"], metrics["test_examples"]) == (180, 20, 60)
    assert np.isfinite(metrics["test_loss"])
    model = zoo.load_model(tmp_path / "run" / "model.keras")
    x = np.asarray(load_splits(zoo.load_recipe(tmp_path / "run" / "recipe.toml").data, 0).test_arrays(8)[0])
    assert x.max() > 1.5  # raw pixels
    recon = np.asarray(model(x))
    assert recon.shape == (8, 32, 32, 3) and recon.max() <= 255.0 + 1e-3 and recon.max() > 1.5
    # The objective is computed on pixels in [0, 1]: the same model fed x/255 without its
    # preprocessing would not be asked for; scale it by hand instead.
    np.testing.assert_allclose(np.asarray(model.normalize(x)), x / 255.0, rtol=1e-6)


def test_a_table_trains_standardized_and_returns_its_units(tmp_path, capsys):
    table = write_breast_cancer(tmp_path / "cancer.csv")
    code, out, err = fit_cli(capsys, "tabular_ae", "--data", table, "--set", "data.label_column='target'",
                             "--out", tmp_path / "run", *SHORT)
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data_kind"] == "table" and metrics["input_shape"] == [30]
    model = zoo.load_model(tmp_path / "run" / "model.keras")
    splits = load_splits(zoo.load_recipe(tmp_path / "run" / "recipe.toml").data, 0)
    assert splits.labelled and splits.feature_names[0] == "mean radius"
    # The model standardizes with the fit split's own mean and variance (what Normalization.adapt gives).
    fit = np.asarray(splits.x_fit, np.float64)
    np.testing.assert_allclose(model.preprocessing["mean"], fit.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(model.preprocessing["variance"], fit.var(axis=0), rtol=1e-6)
    recon = np.asarray(model(splits.x_test[:16]))
    # In the table's units: column 'mean area' is in the hundreds, 'mean smoothness' about 0.1.
    assert 100 < recon[:, 3].mean() < 2000 and 0.01 < recon[:, 4].mean() < 1.0


def test_a_series_trains_on_windows_with_one_dimensional_convolutions(tmp_path, capsys):
    series = write_co2(tmp_path / "co2.csv")
    code, out, err = fit_cli(capsys, "timeseries_ae", "--data", series, "--out", tmp_path / "run", *SHORT)
    assert code == 0, err
    model = zoo.load_model(tmp_path / "run" / "model.keras")
    assert model.input_shape_ == (52, 1)
    assert any(type(layer).__name__ == "Conv1D" for layer in model.encoder.layers)
    splits = load_splits(zoo.load_recipe(tmp_path / "run" / "recipe.toml").data, 0)
    # Chronological: every test window comes after every training window (CO2 rises every year).
    assert splits.x_test.mean() > splits.x_fit.mean() + 10
    assert np.asarray(model(splits.x_test[:4])).shape == (4, 52, 1)


def test_digits_as_arrays_train_and_keep_their_labels(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "digits.npz", x=digits.images.astype("uint8"), y=digits.target)
    recipe = zoo.load_recipe("vae", data=str(tmp_path / "digits.npz"),
                             overrides=["train.epochs=1", "train.steps_per_epoch=3", "model.hidden=[32]"])
    run = zoo.fit(recipe, out=tmp_path / "run", verbose=0)
    assert run.model.input_shape_ == (8, 8, 1)
    # uint8 arrays take 1/255 (their dtype's range); the bundled digits (0..16) take 1/16.
    assert run.model.preprocessing == {"kind": "scale", "scale": 1 / 255}
    assert run.metrics["test_examples"] == round(1797 * 0.2)
    result = zoo.evaluate(run.dir, nll_samples=5, probe_train_size=200)
    assert 0.1 <= result["knn_accuracy"] <= 1.0 and "psnr" in result and "nll" in result


def test_the_bundled_datasets_need_no_file(tmp_path):
    run = zoo.fit(zoo.load_recipe("tabular_vae", overrides=["train.epochs=1"]), out=tmp_path / "run", verbose=0)
    # 569 rows: 114 (20%) held out for testing, then 46 of the other 455 (10%) for validation.
    assert run.metrics["data_source"].startswith("sklearn:breast_cancer")
    assert (run.metrics["fit_examples"], run.metrics["validation_examples"], run.metrics["test_examples"]) == (409, 46, 114)
    result = zoo.evaluate(run.dir, nll_samples=5, probe_train_size=200)
    assert "psnr" not in result and "robust_psnr_mean" not in result  # no pixels in a table
    assert np.isfinite(result["mse"]) and np.isfinite(result["nll"]) and "probe_accuracy" in result


# Bad data: one line naming the file (and row, column), exit 2, nothing written.
def _bad_inputs(tmp_path):
    from PIL import Image

    (tmp_path / "empty").mkdir()
    broken = tmp_path / "broken"
    (broken / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), "uint8")).save(broken / "cat" / "a.png")
    (broken / "cat" / "b.png").write_bytes(os.urandom(64))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((8, 8), "uint8")).save(mixed / "a.png")
    Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(mixed / "b.png")
    (tmp_path / "gaps.csv").write_text("a,b\n1,2\n3,\n5,6\n")
    (tmp_path / "words.csv").write_text("a,b\n1,x\n3,4\n")
    (tmp_path / "short.csv").write_text("v\n" + "\n".join(str(i) for i in range(20)) + "\n")
    np.save(tmp_path / "x.npy", np.zeros((10, 4), "float32"))
    np.save(tmp_path / "y.npy", np.zeros(9, "int64"))


@pytest.mark.parametrize("argv, fragments", [
    (["basic", "--data", "{tmp}/nowhere"], ["no file or folder", "nowhere"]),
    (["basic", "--data", "{tmp}/empty"], ["empty: no images (PNG, JPEG, BMP, GIF) found"]),
    (["basic", "--data", "{tmp}/broken"], ["broken/cat/b.png: not a readable image"]),
    (["basic", "--data", "{tmp}/mixed"], ["mixed channel counts", "set data.color_mode"]),
    (["tabular_ae", "--data", "{tmp}/gaps.csv"], ["gaps.csv: missing value at row 2, column 'b'"]),
    (["tabular_ae", "--data", "{tmp}/words.csv", "--set", "data.columns=['a','b']"],
     ["words.csv: column 'b' is not numeric (row 1: 'x')"]),
    (["timeseries_ae", "--data", "{tmp}/short.csv"], ["short.csv: window = 52 is longer than the training part"]),
    (["tabular_ae", "--data", "{tmp}/x.npy", "--set", "data.labels='{tmp}/y.npy'"],
     ["y.npy has 9 labels but", "x.npy has 10 examples"]),
    (["basic", "--data", "{tmp}/gaps.csv", "--set", "data.missing='mean'"],
     ["loss='bce' needs values in [0, 1]", "use loss='mse'"]),
    (["conv_vae", "--data", "breast_cancer"], ["backbone='conv' needs images"]),
    (["tabular_ae", "--set", "data.validation_size=2.5"], ["validation_size as a fraction must be in (0, 1)"]),
    (["tabular_ae", "--set", "data.window=4"], ["window applies to series"]),
    (["vae", "--data", "breast_cancer"], ["likelihood='bernoulli' needs values in [0, 1]"]),
])
def test_bad_data_is_one_line_and_writes_nothing(tmp_path, capsys, argv, fragments):
    _bad_inputs(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    argv = [a.format(tmp=tmp_path) for a in argv] + ["--out", str(tmp_path / "run"), "--quiet"]
    code, out, err = fit_cli(capsys, *argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo fit: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in err and sorted(tmp_path.rglob("*")) == before


def test_throughput_counts_the_examples_of_a_whole_pass(tmp_path, monkeypatch):
    """train_samples_per_second counts the examples an epoch sees: with 409 fit rows and batch
    32, an epoch is 13 steps but 409 samples, not 13·32 = 416. (Timed epochs of exactly 1 s.)"""
    from zoo.training.callbacks import EpochTimer

    monkeypatch.setattr(EpochTimer, "steady_state_seconds", lambda self: [1.0, 1.0])
    run = zoo.fit(zoo.load_recipe("tabular_ae", overrides=["train.epochs=3"]), out=tmp_path / "run", verbose=0)
    assert run.metrics["fit_examples"] == 409 and run.metrics["train_samples_per_second"] == 409.0
