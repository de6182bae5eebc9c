"""Bootstrap intervals over test images in every evaluation row (issue 16: the spread of a
single-seed row), checked against a hand computation of the same resampling."""

from types import SimpleNamespace

import numpy as np
import pytest

import zoo
from conftest import build_tiny, tiny_images, tiny_labels
from zoo.bench.report import _cell
from zoo.evaluation.evaluate import EvalData, EvalSettings, family_metrics, score_representation
from zoo.evaluation.intervals import add_intervals, bootstrap_interval
from zoo.models.base import PER_EXAMPLE


def hand_bootstrap(values, resamples, seed, level=0.95):
    """The percentile bootstrap of the mean, written out: B draws of N indices with replacement."""
    rng = np.random.default_rng(seed)
    values = np.asarray(values, np.float64)
    means = []
    for start in range(0, resamples, 200):  # the same stream of draws, 200 resamples at a time
        count = min(200, resamples - start)
        means.extend(values[rng.integers(0, len(values), size=(count, len(values)))].mean(axis=1))
    return tuple(np.quantile(means, [(1 - level) / 2, (1 + level) / 2]))


def test_add_intervals_is_the_bootstrap_of_each_column_and_skips_what_it_cannot_resample():
    rng = np.random.default_rng(0)
    values = rng.normal(10.0, 2.0, size=300)
    row = add_intervals({"psnr": values.mean()}, {"psnr": values, "nan": [1.0, np.nan], "one": [3.0]},
                        resamples=600, seed=4)
    assert (row["psnr_low"], row["psnr_high"]) == pytest.approx(hand_bootstrap(values, 600, 4), abs=1e-12)
    assert row["psnr_low"] < values.mean() < row["psnr_high"]
    assert not {"nan_low", "one_low"} & set(row)  # a non-finite value or a single one: no interval
    assert add_intervals({}, {"psnr": values}, resamples=0) == {}  # switched off
    # Its width is the normal approximation's, 2·1.96·s/√N, within a few percent for N = 300.
    assert row["psnr_high"] - row["psnr_low"] == pytest.approx(2 * 1.96 * values.std() / np.sqrt(300), rel=0.1)
    assert bootstrap_interval(values, resamples=600, seed=4) == (row["psnr_low"], row["psnr_high"])


def test_evaluation_rows_carry_intervals_of_psnr_and_accuracies():
    rng = np.random.default_rng(1)
    x = rng.random((60, 4, 4, 1)).astype("float32")
    y = (x.reshape(60, -1).mean(axis=1) > 0.5).astype(int)
    noisy = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype("float32")
    data = EvalData(x_test=x, y_test=y, x_probe=x, y_probe=y, corrupted={"psnr_noise": noisy})
    settings = EvalSettings(probe_train_size=60, knn_k=1, bootstrap_resamples=500, seed=2)

    def reconstruct(images):
        return np.clip(images * 0.9 + 0.05, 0, 1)  # a fixed, imperfect "model"

    row = score_representation(lambda images: images.reshape(len(images), -1), reconstruct, data, settings)
    mse = ((x.astype(np.float64) - reconstruct(x)) ** 2).reshape(60, -1).mean(axis=1)
    want = hand_bootstrap(10 * np.log10(1 / mse), 500, 2)
    assert (row["psnr_low"], row["psnr_high"]) == pytest.approx(want, rel=1e-9)
    assert row["mse_low"] < row["mse"] < row["mse_high"]
    assert row["psnr_noise_low"] <= row["psnr_noise"] <= row["psnr_noise_high"]
    # 1-NN on the probe set itself is always right: every resample's mean is 1.
    assert row["knn_accuracy"] == row["knn_accuracy_low"] == row["knn_accuracy_high"] == 1.0
    assert 0.0 <= row["probe_accuracy_low"] <= row["probe_accuracy"] <= row["probe_accuracy_high"] <= 1.0
    # The report shows a one-seed row's interval beside its value; several seeds' sd wins over it.
    assert _cell(row, "psnr") == f"{row['psnr']:.2f} [{row['psnr_low']:.2f}, {row['psnr_high']:.2f}]"
    assert _cell({**row, "psnr_sd": 0.5}, "psnr") == f"{row['psnr']:.2f} ± 0.50"
    quiet = score_representation(lambda images: images.reshape(len(images), -1), reconstruct, data,
                                 EvalSettings(probe_train_size=60, knn_k=1, bootstrap_resamples=0))
    assert not [c for c in quiet if c.endswith(("_low", "_high"))]


@pytest.mark.parametrize("family", zoo.list_models())
def test_family_metrics_give_intervals_of_their_per_example_values(family):
    """A family's own per-example metrics (the VAEs' −log p(x) and −ELBO, the VQ-VAE prior's
    −log p(k)) get the same bootstrap interval as the images' metrics; the arrays leave the row."""
    model = build_tiny(family)
    x = tiny_images(12, seed=5)
    y = tiny_labels(12)
    settings = EvalSettings(nll_samples=3, batch_size=5, bootstrap_resamples=400, seed=7)
    hook = model.evaluation_metrics(model.inputs_of(x, y), settings)
    recipe = SimpleNamespace(data=SimpleNamespace(binarize="none"), train=SimpleNamespace(seed=0))
    row = family_metrics(model, recipe, EvalData(x_test=x, y_test=y, x_probe=x, y_probe=y, corrupted={}), settings)
    assert PER_EXAMPLE not in row and not any(isinstance(v, np.ndarray) for v in row.values())
    for column, values in hook.get(PER_EXAMPLE, {}).items():
        assert len(values) == 12
        assert row[column] == pytest.approx(np.mean(values), rel=1e-6)  # the row's figure is their mean
        assert (row[f"{column}_low"], row[f"{column}_high"]) == pytest.approx(hand_bootstrap(values, 400, 7), rel=1e-9)
    if "nll" in row:  # every family with a likelihood gives its per-example values
        assert row["nll_low"] <= row["nll"] <= row["nll_high"]
