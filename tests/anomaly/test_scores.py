"""Anomaly scores against hand computations on tiny models, threshold rules and detection metrics by hand."""

import math

import numpy as np
import pytest
from conftest import build_tiny, fed, tiny_images, tiny_labels

import zoo
from zoo.anomaly.metrics import detection_metrics
from zoo.anomaly.scores import feature_score_examples, score_examples
from zoo.anomaly.thresholds import RULES, calibration, threshold
from zoo.models.vae import VariationalAutoencoder

FAMILIES = zoo.list_models()
X = tiny_images(12)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


@pytest.mark.parametrize("family", FAMILIES)
def test_reconstruction_scores_by_hand(family):
    """mse, mae, bce: means over the D features of (x − x̂)², |x − x̂| and the clipped cross-entropy,
    with x̂ = reconstruct(x) computed here by the model and then scored in numpy."""
    model = build_tiny(family)
    labels = tiny_labels(len(X))  # given with the examples to a model that takes labels, ignored by the others
    x_hat = np.asarray(model.reconstruct(fed(model, X, labels)), np.float64).reshape(len(X), -1)
    x = X.reshape(len(X), -1).astype(np.float64)
    p = np.clip(x_hat, 1e-7, 1 - 1e-7)
    by_hand = {"mse": ((x - x_hat) ** 2).mean(1), "mae": np.abs(x - x_hat).mean(1),
               "bce": -(x * np.log(p) + (1 - x) * np.log(1 - p)).mean(1)}
    for name, want in by_hand.items():
        np.testing.assert_allclose(score_examples(model, X, name, batch_size=5, labels=labels), want, rtol=2e-4,
                                   atol=1e-6)
        per_feature = feature_score_examples(model, X, name, batch_size=5, labels=labels)
        assert per_feature.shape == X.shape
        np.testing.assert_allclose(per_feature.reshape(len(X), -1).mean(1), want, rtol=2e-4, atol=1e-6)
    assert set(model.anomaly_score_names()) >= {"objective", "mse", "mae", "bce"}


@pytest.mark.parametrize("family", [f for f in FAMILIES if not issubclass(zoo.registry.get(f), VariationalAutoencoder)])
def test_the_objective_score_is_the_reconstruction_term_of_the_loss(family):
    """objective = Σ_d of the loss's per-feature term at inference: with loss='bce' the
    cross-entropy of the logits, −Σ_d [x_d log σ(l_d) + (1 − x_d) log(1 − σ(l_d))]."""
    model = build_tiny(family, loss="bce")
    logits = np.asarray(model.forward(X, training=False)["logits"], np.float64).reshape(len(X), -1)
    x = X.reshape(len(X), -1).astype(np.float64)
    want = -(x * np.log(sigmoid(logits)) + (1 - x) * np.log(1 - sigmoid(logits))).sum(1)
    np.testing.assert_allclose(score_examples(model, X), want, rtol=1e-4)


def test_vae_elbo_score_by_hand():
    """−ELBO at z = μ: −log p(x | z = μ) + KL(N(μ, σ²) ‖ N(0, I)) = Σ_d bce_d + ½·Σ_j (μ² + σ² − 1 − log σ²)."""
    model = build_tiny("vae")
    mu, sigma = (np.asarray(t, np.float64) for t in model.posterior_params(X))
    logits = np.asarray(model.decoder(mu.astype("float32")), np.float64).reshape(len(X), -1)
    x = X.reshape(len(X), -1).astype(np.float64)
    reconstruction = -(x * logits - np.logaddexp(0, logits)).sum(1)
    kl = 0.5 * (mu ** 2 + sigma ** 2 - 1 - np.log(sigma ** 2)).sum(1)
    np.testing.assert_allclose(score_examples(model, X, "elbo"), reconstruction + kl, rtol=1e-4)
    np.testing.assert_allclose(score_examples(model, X, "objective"), reconstruction + kl, rtol=1e-4)
    # nll: the importance-sampled −log p(x), the same estimate as log_likelihood with the same seed.
    np.testing.assert_allclose(score_examples(model, X, "nll", nll_samples=50, seed=3),
                               -model.log_likelihood(X, num_samples=50, seed=3), rtol=1e-6)
    with pytest.raises(ValueError, match="score 'nll' is per example only"):
        feature_score_examples(model, X, "nll")


def test_an_unknown_score_lists_the_allowed_ones():
    message = r"^Unknown score 'nll' for model 'stacked'\. Allowed: objective, mse, mae, bce$"
    with pytest.raises(ValueError, match=message):
        score_examples(build_tiny("stacked"), X, "nll")


def test_standardized_data_has_no_cross_entropy_score():
    model = zoo.build("stacked", input_shape=(3,), code_size=2, hidden=[4],
                      preprocessing={"kind": "standardize", "mean": [0, 1, 2], "variance": [1, 4, 9]})
    assert model.anomaly_score_names() == ("objective", "mse", "mae")
    x = np.array([[0.0, 1.0, 2.0], [1.0, 3.0, 5.0]], "float32")
    x_hat = np.asarray(model.reconstruct(x), np.float64)
    z, z_hat = (x - [0, 1, 2]) / [1, 2, 3], (x_hat - [0, 1, 2]) / [1, 2, 3]  # in the model's units
    np.testing.assert_allclose(score_examples(model, x, "mse"), ((z - z_hat) ** 2).mean(1), rtol=1e-4, atol=1e-6)


S = np.arange(1.0, 11.0)  # 1, 2, ..., 10


@pytest.mark.parametrize("rule,level,want", [
    ("quantile", 0.9, 9.1),            # numpy's linear interpolation: 1 + 0.9·9
    ("quantile", None, 9.55),          # default q = 0.95
    ("sigma", 1.0, 5.5 + math.sqrt(8.25)),
    ("sigma", None, 5.5 + math.sqrt(8.25)),
    ("sigma", 2.0, 5.5 + 2 * math.sqrt(8.25)),
    ("contamination", 0.2, 8.2),       # the 0.8-quantile
    ("max", None, 10.0),
])
def test_threshold_rules_by_hand(rule, level, want):
    assert threshold(S, rule, level) == pytest.approx(want)


@pytest.mark.parametrize("rule,level,message", [
    ("median", None, "Unknown threshold rule 'median'. Allowed: " + ", ".join(RULES)),
    ("quantile", 1.0, "rule 'quantile' needs a level in (0, 1)"),
    ("contamination", 0.0, "rule 'contamination' needs the expected fraction"),
    ("sigma", -1.0, "rule 'sigma' needs k >= 0"),
    ("max", 0.5, "the threshold rule 'max' takes no level"),
    ("quantile", float("nan"), "threshold level must be a number"),
])
def test_bad_threshold_rules_are_one_line_errors(rule, level, message):
    with pytest.raises(ValueError) as info:
        threshold(S, rule, level)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_calibration_records_how_the_threshold_was_made():
    c = calibration(S, "mse", "quantile", 0.9, "validation split")
    assert c["threshold"] == pytest.approx(9.1) and c["examples"] == 10 and c["flagged_fraction"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="calibration needs finite scores"):
        threshold([1.0, float("nan")])


def test_detection_metrics_by_hand():
    scores, anomalous = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    m = detection_metrics(scores, anomalous, threshold=0.3)
    # Of the 4 (normal, anomalous) pairs, 3 rank the anomaly higher: AUROC 0.75.
    assert m["auroc"] == pytest.approx(0.75)
    # Ranked 0.8 (hit), 0.4 (miss), 0.35 (hit): AP = (1/2)·(1/1 + 2/3).
    assert m["auprc"] == pytest.approx((1 + 2 / 3) / 2)
    # Flagged above 0.3: 0.4, 0.35, 0.8 → 2 of 3 are anomalies, both anomalies found.
    assert (m["precision"], m["recall"]) == (pytest.approx(2 / 3), 1.0) and m["f1"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="needs both normal and anomalous examples"):
        detection_metrics([1, 2], [0, 0])
