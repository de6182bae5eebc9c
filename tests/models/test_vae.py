"""The VAE: its KL, likelihoods, ELBO and importance-sampled log-likelihood against independent math."""

import keras
import numpy as np
import pytest
import tensorflow_probability as tfp
from conftest import TINY_CODE, build_tiny, tiny_images
from keras import ops

tfd = tfp.distributions
D = TINY_CODE


def binary_images(n, seed=1):
    """Binary images whose pixel probabilities are the smooth blobs of `tiny_images`."""
    return (np.random.default_rng(seed).random((n, 8, 8, 1)) < tiny_images(n)).astype("float32")


def fixed_epsilon(model, value=0.0):
    """Makes ε constant, so z = μ + σ·value: a unit-level patch of the instance."""
    model._epsilon = lambda shape: ops.full(shape, value)
    return model


def posterior_numpy(model, x):
    q = model.posterior(x)
    return np.asarray(q.mean(), "float64"), np.asarray(q.stddev(), "float64")


def log_normal(z, loc, scale):
    """Σ_d log N(z_d; loc_d, scale_d²) over the last axis."""
    return np.sum(-0.5 * np.log(2 * np.pi) - np.log(scale) - 0.5 * ((z - loc) / scale) ** 2, axis=-1)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def log_mixture(z, logits, locs, scales):
    """log Σ_c π_c N(z; m_c, diag s_c²) with π = softmax(logits), for z of shape (..., d)."""
    log_pi = logits - np.log(np.sum(np.exp(logits)))
    comp = np.stack([log_normal(z, locs[c], scales[c]) for c in range(len(logits))], axis=-1) + log_pi
    peak = comp.max(axis=-1, keepdims=True)
    return (peak + np.log(np.sum(np.exp(comp - peak), axis=-1, keepdims=True)))[..., 0]


# KL(q ‖ p) for the normal prior.
def test_analytic_kl_matches_the_closed_form_and_monte_carlo():
    model = build_tiny("vae")
    rng = np.random.default_rng(0)
    n = 6
    loc = rng.normal(0, 1.5, (n, D)).astype("float32")
    scale = rng.uniform(0.2, 2.0, (n, D)).astype("float32")
    eps = np.zeros((1, n, D), "float32")
    outputs = {"loc": loc, "scale": scale, "eps": eps, "logits": model.decoder(loc)}
    _, kl, _ = model._terms(binary_images(n), outputs)  # the KL the loss uses
    kl = np.asarray(kl, "float64")

    mu, s = loc.astype("float64"), scale.astype("float64")
    closed = 0.5 * np.sum(s ** 2 + mu ** 2 - 1 - np.log(s ** 2), axis=1)
    np.testing.assert_allclose(kl, closed, rtol=1e-5)
    q = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
    np.testing.assert_allclose(np.asarray(tfd.kl_divergence(q, model.prior())), closed, rtol=1e-5)

    z = mu + s * rng.standard_normal((40_000, n, D))
    zero, one = np.zeros(D), np.ones(D)
    monte_carlo = np.mean(log_normal(z, mu, s) - log_normal(z, zero, one), axis=0)
    np.testing.assert_allclose(kl, monte_carlo, rtol=0.03, atol=0.03)


def test_posterior_is_a_diagonal_normal_and_encode_is_its_mean():
    model = build_tiny("vae")
    x = binary_images(5)
    q = model.posterior(x)
    assert type(q).__name__ == "MultivariateNormalDiag"
    assert tuple(q.event_shape) == (D,) and tuple(q.batch_shape) == (5,)
    mu, s = posterior_numpy(model, x)
    assert np.all(s > 0)
    np.testing.assert_array_equal(np.asarray(model.encode(x)), mu.astype("float32"))


# The likelihoods, written out.
def _numpy_log_likelihood(kind, x, logits, sigma):
    x, logits = x.reshape(len(x), -1).astype("float64"), logits.reshape(len(x), -1).astype("float64")
    lam = sigmoid(logits)
    if kind == "bernoulli":
        return np.sum(x * np.log(lam) + (1 - x) * np.log(1 - lam), axis=1)
    if kind == "gaussian":
        return np.sum(-0.5 * np.log(2 * np.pi * sigma ** 2) - 0.5 * ((x - lam) / sigma) ** 2, axis=1)
    # Continuous Bernoulli: C(λ)·λ^x·(1−λ)^(1−x), C(λ) = 2·artanh(1−2λ)/(1−2λ).
    log_c = np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))
    return np.sum(log_c + x * np.log(lam) + (1 - x) * np.log(1 - lam), axis=1)


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian", "continuous_bernoulli"])
def test_elbo_with_fixed_epsilon_is_log_likelihood_minus_kl(kind):
    """With ε = 0 the one-sample ELBO is log p(x | z=μ) − KL(q‖p): both parts by hand."""
    model = fixed_epsilon(build_tiny("vae", likelihood=kind, sigma=0.3))
    x = binary_images(6) if kind == "bernoulli" else tiny_images(6)
    mu, s = posterior_numpy(model, x)
    logits = np.asarray(model.decoder(mu.astype("float32")))
    expected = _numpy_log_likelihood(kind, x, logits, 0.3) - 0.5 * np.sum(s ** 2 + mu ** 2 - 1 - np.log(s ** 2), 1)
    np.testing.assert_allclose(np.asarray(model.elbo(x)), expected, rtol=1e-4)
    # The training loss is the batch mean of −ELBO (β = 1, one sample).
    loss = float(model.compute_loss(x=x, y_pred=model(x, training=True)))
    np.testing.assert_allclose(loss, -expected.mean(), rtol=1e-4)


@pytest.mark.parametrize("kind,learn_sigma", [("bernoulli", False), ("gaussian", False), ("gaussian", True),
                                              ("continuous_bernoulli", False)])
def test_each_likelihood_trains(kind, learn_sigma):
    model = build_tiny("vae", likelihood=kind, sigma=0.2, learn_sigma=learn_sigma)
    x = binary_images(16) if kind == "bernoulli" else tiny_images(16)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    log_sigma = float(model.log_sigma) if kind == "gaussian" else None
    history = model.fit(x, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert {"elbo", "reconstruction", "kl"} <= set(history)
    np.testing.assert_allclose(history["elbo"][0], -(history["reconstruction"][0] + history["kl"][0]), rtol=1e-5)
    if kind == "gaussian":
        assert (float(model.log_sigma) != log_sigma) == learn_sigma
    mean = np.asarray(model(x))
    assert mean.shape == x.shape and np.all((mean >= 0) & (mean <= 1))


# Importance sampling.
@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = build_tiny("vae")
    x = binary_images(256)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, batch_size=64, epochs=4, verbose=0)  # 16 steps: the bound is far from tight yet
    return model, x


def test_importance_sampled_log_likelihood_tightens_with_k_and_bounds_the_elbo(trained):
    model, x = trained
    keras.utils.set_random_seed(1)
    elbo = np.mean([np.asarray(model.elbo(x), "float64").mean() for _ in range(10)])
    # Each estimate averaged over the batch and over 4 seeds; E[log p̂_k] grows with k.
    estimates = {k: np.mean([model.log_likelihood(x, num_samples=k, seed=s).mean() for s in range(4)])
                 for k in (1, 10, 100)}
    assert elbo <= estimates[10] <= estimates[100], (elbo, estimates)
    assert estimates[1] < estimates[10] - 0.1 and estimates[10] < estimates[100] - 0.03, estimates
    # k = 1 is an unbiased estimate of the ELBO itself.
    assert abs(estimates[1] - elbo) < 0.25, (estimates[1], elbo)


def _exact_posterior_model(seed=0):
    """A VAE whose decoder ignores z and whose q(z|x) is the prior: every importance weight equals p(x).

    Then log p(x) = Σ_d x_d·log σ(b_d) + (1−x_d)·log(1−σ(b_d)) exactly (b the decoder's output
    bias), and the IS estimate must give it for any k, batch size and chunk.
    """
    model = build_tiny("vae")
    code = model.encoder.get_layer("code")
    raw_one = np.log(np.expm1(1.0 - 1e-5))  # softplus(raw) + 1e-5 = 1
    code.kernel.assign(np.zeros(code.kernel.shape, "float32"))
    code.bias.assign(np.r_[np.zeros(D), np.full(D, raw_one)].astype("float32"))
    last = [layer for layer in model.decoder.layers if isinstance(layer, keras.layers.Dense)][-1]
    last.kernel.assign(np.zeros(last.kernel.shape, "float32"))
    bias = np.random.default_rng(seed).normal(0, 2, last.bias.shape).astype("float32")
    last.bias.assign(bias)
    return model, bias.astype("float64")


def test_log_likelihood_is_exact_when_q_is_the_true_posterior():
    model, b = _exact_posterior_model()
    x = binary_images(5)
    flat = x.reshape(5, -1)
    exact = np.sum(flat * np.log(sigmoid(b)) + (1 - flat) * np.log(1 - sigmoid(b)), axis=1)
    assert np.ptp(exact) > 1  # the examples differ, so a mix-up of their order would show
    for k, batch_size, chunk in ((1, 100, 100), (1000, 2, 128), (1000, 100, 100), (250, 3, 7)):
        ll = model.log_likelihood(x, num_samples=k, batch_size=batch_size, chunk=chunk)
        assert ll.shape == (5,) and ll.dtype == np.float64
        np.testing.assert_allclose(ll, exact, rtol=0, atol=2e-3, err_msg=f"k={k} batch={batch_size} chunk={chunk}")
    np.testing.assert_allclose(np.asarray(model.elbo(x)), exact, atol=2e-3)  # q = p(z|x): the bound is tight


def test_log_likelihood_with_k_1000_on_a_trained_model(trained):
    model, x = trained
    ll = model.log_likelihood(x[:5], num_samples=1000, batch_size=2, chunk=128)
    assert ll.shape == (5,) and np.all(np.isfinite(ll)) and np.all(ll < 0)


def test_log_likelihood_is_stable_when_every_weight_underflows():
    """A Gaussian likelihood with σ = 0.01 puts log-weights near −10⁴, where exp() is 0 even in float64."""
    model = build_tiny("vae", likelihood="gaussian", sigma=0.01)
    x = tiny_images(3)
    ll = model.log_likelihood(x, num_samples=20)
    assert np.all(np.isfinite(ll)) and np.all(ll < -1000), ll
    assert np.all(np.exp(ll) == 0)  # what a naive log(mean(exp(log w))) would have taken the log of


def test_log_likelihood_rejects_zero_samples(trained):
    with pytest.raises(ValueError, match="Received: num_samples=0"):
        trained[0].log_likelihood(trained[1][:2], num_samples=0)


def test_sample_shape_range_and_seed(trained):
    model, _ = trained
    samples = np.asarray(model.sample(7, seed=3))
    assert samples.shape == (7, 8, 8, 1)
    assert np.all((samples >= 0) & (samples <= 1))
    np.testing.assert_array_equal(np.asarray(model.sample(7, seed=3)), samples)
    assert not np.array_equal(np.asarray(model.sample(7, seed=4)), samples)


# β and its warm-up.
def test_kl_warmup_is_linear_from_zero_to_beta():
    beta, warmup = 2.0, 4
    model = fixed_epsilon(build_tiny("vae", beta=beta, kl_warmup_steps=warmup))
    x = binary_images(8)
    assert float(model.current_beta()) == beta  # not compiled: no steps to count
    model.compile(optimizer=keras.optimizers.SGD(1e-3))
    assert float(model.current_beta()) == 0.0
    # At step 0 the loss is the reconstruction term alone.
    outputs = model(x, training=True)
    reconstruction, kl, _ = model._terms(x, outputs)
    loss = float(model.compute_loss(x=x, y_pred=outputs))
    np.testing.assert_allclose(loss, float(np.mean(reconstruction)), rtol=1e-6)
    assert float(np.mean(kl)) > 0.01  # so the test would see a KL term that is wrongly there
    for steps_done, expected in ((2, beta / 2), (4, beta), (6, beta)):
        model.fit(x, batch_size=4, epochs=1, verbose=0)  # two steps
        assert int(model.optimizer.iterations) == steps_done
        np.testing.assert_allclose(float(model.current_beta()), expected, rtol=1e-6)


def test_fixed_beta_weights_the_kl():
    x = binary_images(8)
    model = fixed_epsilon(build_tiny("vae", beta=3.0))
    outputs = model(x, training=True)
    reconstruction, kl, _ = model._terms(x, outputs)
    np.testing.assert_allclose(float(model.compute_loss(x=x, y_pred=outputs)),
                               float(np.mean(reconstruction) + 3.0 * np.mean(kl)), rtol=1e-6)


# The mixture prior: no closed-form KL, so a Monte Carlo one.
def test_mixture_prior_uses_a_monte_carlo_kl_and_trains():
    model = fixed_epsilon(build_tiny("vae", prior="mixture", prior_components=3), value=0.7)
    x = binary_images(8)
    mu, s = posterior_numpy(model, x)
    z = mu + 0.7 * s
    logits = np.asarray(model.prior_logits, "float64")
    locs = np.asarray(model.prior_loc, "float64")
    scales = np.log1p(np.exp(np.asarray(model.prior_raw_scale, "float64")))  # softplus
    expected = log_normal(z, mu, s) - log_mixture(z, logits, locs, scales)
    _, kl, _ = model._terms(x, model(x, training=True))
    np.testing.assert_allclose(np.asarray(kl), expected, rtol=1e-4, atol=1e-4)

    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = np.asarray(model.prior_loc).copy()
    history = model.fit(x, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert not np.array_equal(np.asarray(model.prior_loc), before)  # the prior is learned
    assert np.asarray(model.sample(5)).shape == (5, 8, 8, 1)
    assert np.all(np.isfinite(model.log_likelihood(x, num_samples=20)))


def test_importance_weighted_objective():
    """With iw_samples = k the loss is −log (1/k)·Σ_i w_i, which is at most the −ELBO of the same samples."""
    k = 5
    model = build_tiny("vae", iw_samples=k)
    x = binary_images(8)
    outputs = model(x, training=True)
    assert tuple(outputs["eps"].shape) == (k, 8, D)
    _, _, log_w = model._terms(x, outputs)
    log_w = np.asarray(log_w, "float64")
    peak = log_w.max(axis=0)
    expected = -np.mean(peak + np.log(np.mean(np.exp(log_w - peak), axis=0)))
    loss = float(model.compute_loss(x=x, y_pred=outputs))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert loss <= -np.mean(log_w) + 1e-4  # Jensen: the IW bound is above the ELBO of the same samples


@pytest.mark.parametrize("options", [{"prior": "mixture", "prior_components": 3},
                                     {"likelihood": "gaussian", "learn_sigma": True, "sigma": 0.2},
                                     {"kl_warmup_steps": 10, "iw_samples": 2}])
def test_variants_reload_safely(options, tmp_path):
    model = build_tiny("vae", **options)
    x = tiny_images(8)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "vae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_config() == model.get_config()
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    np.testing.assert_array_equal(np.asarray(loaded.sample(3, seed=2)), np.asarray(model.sample(3, seed=2)))
