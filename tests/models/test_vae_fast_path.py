"""The VAE's fused closed-form densities equal TensorFlow Probability's distributions."""

import numpy as np
import pytest
import tensorflow_probability as tfp
from conftest import TINY_CODE, build_tiny

tfd = tfp.distributions
D = TINY_CODE


def test_bernoulli_log_prob_matches_tfp_including_saturated_logits():
    model = build_tiny("vae")
    rng = np.random.default_rng(0)
    x = (rng.random((5, 8, 8, 1)) < 0.5).astype("float32")
    logits = rng.normal(0, 4, (3, 5, 8, 8, 1)).astype("float32")
    logits[0, 0, 0, 0, 0], logits[1, 1, 1, 1, 0] = 60.0, -60.0  # softplus in its linear and flat regimes
    fused = np.asarray(model._log_px_z(x, logits))
    assert fused.shape == (3, 5)
    reference = tfd.Independent(tfd.Bernoulli(logits=logits, dtype=np.float32), 3).log_prob(np.broadcast_to(x, logits.shape))
    np.testing.assert_allclose(fused, np.asarray(reference), rtol=1e-5, atol=1e-3)
    # And by hand: log p = Σ x·log σ(l) + (1 − x)·log(1 − σ(l)), in float64.
    l64 = logits.astype("float64")
    by_hand = np.sum(x * -np.logaddexp(0, -l64) + (1 - x) * -np.logaddexp(0, l64), axis=(2, 3, 4))
    np.testing.assert_allclose(fused, by_hand, rtol=1e-5)


@pytest.mark.parametrize("prior", ["normal", "mixture"])
def test_gaussian_log_densities_match_tfp(prior):
    model = build_tiny("vae", prior=prior, prior_components=3)
    rng = np.random.default_rng(1)
    loc = rng.normal(0, 1.5, (4, D)).astype("float32")
    scale = rng.uniform(0.1, 2.0, (4, D)).astype("float32")
    eps = rng.normal(size=(6, 4, D)).astype("float32")
    z = loc + scale * eps
    q = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
    np.testing.assert_allclose(np.asarray(model._log_qz(scale, eps)), np.asarray(q.log_prob(z)), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(model._log_pz(z)), np.asarray(model.prior().log_prob(z)), rtol=1e-5, atol=1e-4)


def test_training_kl_matches_the_closed_form():
    model = build_tiny("vae")
    rng = np.random.default_rng(2)
    loc = rng.normal(0, 1.5, (6, D)).astype("float32")
    scale = rng.uniform(0.2, 2.0, (6, D)).astype("float32")
    outputs = {"loc": loc, "scale": scale, "eps": np.zeros((1, 6, D), "float32"), "logits": model.decoder(loc)}
    x = np.zeros((6, 8, 8, 1), "float32")
    _, kl, log_w = model._terms(x, outputs, with_log_weights=False)
    assert log_w is None  # the ELBO step does not compute what it does not use
    closed = 0.5 * np.sum(loc**2 + scale**2 - 1.0 - 2.0 * np.log(scale), axis=-1)  # KL(N(μ, σ²) ‖ N(0, 1)), summed
    np.testing.assert_allclose(np.asarray(kl), closed, rtol=1e-5)
