"""The two gradient estimators of ∇ E_{N(μ, σ²)}[f(z)] against the closed form, and the VAE trained with each.

For f(z) = z²: E[f] = μ² + σ², so ∇_μ E[f] = 2μ and ∇_σ E[f] = 2σ; the reparameterization
estimates are 2z and 2z·ε, whose variances are 4σ² and 4·E[(μ + σε)²ε²] − 4σ² = 4(μ² + 2σ²).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import build_tiny, tiny_images

from zoo.models.gradients import (
    leave_one_out_baseline,
    normal_score,
    reparameterization_gradients,
    score_function_gradients,
    score_function_surrogate,
    summarize,
)

MU = np.array([0.7, -1.2])
SIGMA = np.array([1.3, 0.5])


def f_dim(z):
    """f(z) = Σ_j z_j²: ∇_{μ_j} and ∇_{σ_j} of its expectation involve only the term z_j²."""
    return tf.reduce_sum(tf.square(z), axis=-1)


def draws(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).standard_normal(shape))


@pytest.mark.parametrize("estimator", ["reparameterization", "score_function", "score_function_loo"])
def test_estimators_are_unbiased_for_the_square(estimator):
    eps = draws((200_000, 2))
    if estimator == "reparameterization":
        g_loc, g_scale = reparameterization_gradients(f_dim, MU, SIGMA, eps)
    else:
        # One coordinate at a time: with f = Σ_j z_j² the other coordinates' terms would only add noise.
        per_dim = [score_function_gradients(lambda z, j=j: z[..., j] ** 2, MU, SIGMA, eps,
                                            baseline="leave_one_out" if estimator.endswith("loo") else None)
                   for j in range(2)]
        g_loc = np.stack([per_dim[j][0][:, j] for j in range(2)], -1)
        g_scale = np.stack([per_dim[j][1][:, j] for j in range(2)], -1)
    for got, want in ((g_loc, 2 * MU), (g_scale, 2 * SIGMA)):
        stats = summarize(got)
        assert np.all(np.abs(stats["mean"] - want) < 4 * stats["stderr"]), (estimator, stats["mean"], want)
    if estimator == "reparameterization":
        np.testing.assert_allclose(summarize(g_loc)["variance"], 4 * SIGMA ** 2, rtol=0.02)
        np.testing.assert_allclose(summarize(g_scale)["variance"], 4 * (MU ** 2 + 2 * SIGMA ** 2), rtol=0.03)


def test_the_baseline_reduces_the_score_function_variance():
    """Estimators from S = 8 samples, repeated 20,000 times: the leave-one-out baseline keeps the
    mean and cuts the variance; the reparameterization has the least."""
    s, reps, j = 8, 20_000, 0
    eps = draws((s, reps, 2), seed=1)

    def f(z):
        return z[..., j] ** 2

    results = {}
    for name, baseline in (("none", None), ("leave_one_out", "leave_one_out")):
        g_loc, g_scale = score_function_gradients(f, MU, SIGMA, eps, baseline=baseline)
        results[name] = [summarize(np.mean(np.asarray(g)[..., j], axis=0)) for g in (g_loc, g_scale)]
    g_loc, g_scale = reparameterization_gradients(f, MU, SIGMA, eps)
    results["reparameterization"] = [summarize(np.mean(np.asarray(g)[..., j], axis=0)) for g in (g_loc, g_scale)]
    for name, stats in results.items():
        for st, want in zip(stats, (2 * MU[j], 2 * SIGMA[j])):
            assert abs(st["mean"] - want) < 4 * st["stderr"], (name, st["mean"], want)
    for k in range(2):  # ∇_μ, ∇_σ
        none, loo, rep = (results[n][k]["variance"] for n in ("none", "leave_one_out", "reparameterization"))
        assert loo < 0.8 * none and rep < loo, (k, none, loo, rep)


def test_normal_score_is_the_derivative_of_the_log_density():
    z, h = np.array([0.3, 2.0]), 1e-6

    def log_n(m, s):
        return -0.5 * np.log(2 * np.pi) - np.log(s) - 0.5 * ((z - m) / s) ** 2

    d_loc, d_scale = normal_score(z, MU, SIGMA)
    np.testing.assert_allclose(d_loc, (log_n(MU + h, SIGMA) - log_n(MU - h, SIGMA)) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(d_scale, (log_n(MU, SIGMA + h) - log_n(MU, SIGMA - h)) / (2 * h), rtol=1e-6)


def test_leave_one_out_baseline_and_the_surrogate():
    values = tf.constant([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    np.testing.assert_allclose(np.asarray(leave_one_out_baseline(values)), [[4.0, 8.0], [3.0, 6.0], [2.0, 4.0]])
    np.testing.assert_array_equal(np.asarray(leave_one_out_baseline(values[:1])), [[0.0, 0.0]])  # no others
    loc = tf.Variable([0.5])
    z = tf.constant([1.5, -0.5, 0.0])
    cost = tf.constant([2.0, 1.0, 4.0])
    with tf.GradientTape() as tape:
        log_q = -0.5 * tf.square(z - loc)  # log N(z; loc, 1) up to a constant
        term = score_function_surrogate(cost, log_q, "leave_one_out")
        total = tf.reduce_sum(term)
    np.testing.assert_array_equal(np.asarray(term), np.zeros(3))  # no change to the loss's value
    grad = tape.gradient(total, loc)
    b = np.array([2.5, 3.0, 1.5])
    np.testing.assert_allclose(np.asarray(grad), [np.sum((cost.numpy() - b) * (z.numpy() - 0.5))], rtol=1e-6)


def _encoder_decoder_gradients(model, x, gradient, baseline, num_samples, seed):
    with tf.GradientTape() as tape:
        loss = model.elbo_gradient_loss(x, num_samples, tf.constant([seed, 0]), gradient=gradient,
                                        score_baseline=baseline)
    variables = model.encoder.trainable_variables + model.decoder.trainable_variables
    grads = tape.gradient(loss, variables)
    n = len(model.encoder.trainable_variables)
    flat = [np.concatenate([np.ravel(g) for g in part]) for part in (grads[:n], grads[n:])]
    return float(loss), flat


@pytest.mark.parametrize("prior", ["normal", "mixture"])
def test_the_vae_score_function_gradient_agrees_with_the_reparameterization(prior):
    """Same loss value; the decoder's gradient identical for the same draws; the encoder's, with
    many samples, close to the reparameterization's (both estimate the same gradient)."""
    model = build_tiny("vae", prior=prior, prior_components=2)
    x = (tiny_images(3) > 0.3).astype("float32")
    loss_r, (enc_r, dec_r) = _encoder_decoder_gradients(model, x, "reparameterization", "none", 4000, 3)
    loss_s, (enc_s, dec_s) = _encoder_decoder_gradients(model, x, "score_function", "leave_one_out", 4000, 3)
    np.testing.assert_allclose(loss_s, loss_r, rtol=1e-5)
    np.testing.assert_allclose(dec_s, dec_r, rtol=1e-4, atol=1e-6)  # ∇_θ log p(x|z) at the same z
    cosine = enc_s @ enc_r / (np.linalg.norm(enc_s) * np.linalg.norm(enc_r))
    assert cosine > 0.95, cosine


@pytest.mark.parametrize("baseline,samples", [("none", 1), ("leave_one_out", 1), ("leave_one_out", 3)])
def test_a_vae_trains_with_the_score_function(baseline, samples):
    model = build_tiny("vae", gradient="score_function", score_baseline=baseline, score_samples=samples)
    x = (tiny_images(16) > 0.3).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    encoder_before = [np.asarray(v).copy() for v in model.encoder.trainable_variables]
    assert tuple(model(x, training=True)["eps"].shape) == (samples, 16, 4)
    history = model.fit(x, batch_size=8, epochs=3, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(encoder_before, model.encoder.trainable_variables))


def test_score_samples_average_the_elbo_over_the_draws():
    """With k draws per example the loss value is the mean over draws of −log p(x|z) plus the KL."""
    model = build_tiny("vae", gradient="score_function", score_baseline="leave_one_out", score_samples=3)
    x = (tiny_images(4) > 0.3).astype("float32")
    outputs = model(x, training=True)
    logits = np.asarray(outputs["logits"], "float64").reshape(3, 4, -1)
    flat = x.reshape(1, 4, -1)
    reconstruction = np.sum(np.logaddexp(0, logits) - flat * logits, axis=-1).mean(0)
    loc, scale = (np.asarray(outputs[k], "float64") for k in ("loc", "scale"))
    kl = 0.5 * np.sum(loc ** 2 + scale ** 2 - 1 - np.log(scale ** 2), axis=-1)
    np.testing.assert_allclose(float(model.compute_loss(x=x, y_pred=outputs)), np.mean(reconstruction + kl), rtol=1e-5)


def test_score_function_options_are_checked():
    from zoo.registry import HPARAMS

    schema = HPARAMS.get("vae")
    with pytest.raises(ValueError, match="score_baseline applies to gradient='score_function'"):
        schema(score_baseline="leave_one_out")
    with pytest.raises(ValueError, match="score_samples applies to gradient='score_function'"):
        schema(score_samples=4)
    with pytest.raises(ValueError, match="iw_samples=2"):
        schema(gradient="score_function", iw_samples=2)
    with pytest.raises(ValueError, match="gradient must be one of reparameterization, score_function"):
        schema(gradient="reinforce")
