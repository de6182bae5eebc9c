"""The VAE's learned priors: the VampPrior p(z) = (1/K)·Σ_k q(z | u_k) and the mixture of Gaussians,
their log-densities written in built-in ops, checked against hand computations in numpy."""

import keras
import numpy as np
import pytest
import tensorflow_probability as tfp
from conftest import TINY_CODE, TINY_SHAPE, build_tiny, tiny_images

import zoo

tfd = tfp.distributions
D, K = TINY_CODE, 3


def softplus(a):
    return np.logaddexp(0.0, a)


def log_normal(z, loc, scale):
    """Σ_d log N(z_d; loc_d, scale_d²), float64."""
    return np.sum(-0.5 * np.log(2 * np.pi) - np.log(scale) - 0.5 * ((z - loc) / scale) ** 2, axis=-1)


def log_mean_exp_components(z, log_weights, locs, scales):
    """log Σ_k w_k N(z; m_k, diag s_k²) by an explicit loop and a stable log-sum-exp."""
    comp = np.stack([log_weights[k] + log_normal(z, locs[k], scales[k]) for k in range(len(locs))], axis=-1)
    peak = comp.max(axis=-1)
    return peak + np.log(np.exp(comp - peak[..., None]).sum(axis=-1))


def encoder_numpy(model, u):
    """(μ, σ) of q(z | u) for inputs u already in the model's units: the encoder's raw outputs,
    split and passed through softplus (+1e-5) here."""
    h = np.asarray(model.encoder(u), "float64")
    return h[:, :D], softplus(h[:, D:]) + 1e-5


@pytest.mark.parametrize("preprocessing", [None, {"kind": "scale", "scale": 0.5}])
def test_vamp_log_prior_is_the_mean_of_the_pseudo_input_posteriors(preprocessing):
    model = build_tiny("vae", prior="vamp", prior_components=K, preprocessing=preprocessing)
    u = np.asarray(model.pseudo_inputs)
    assert u.shape == (K, *TINY_SHAPE)
    locs, scales = encoder_numpy(model, u)
    if preprocessing:  # u_k are in the model's units: q(z | u_k) is the posterior of the raw input u_k / s
        mean, std = (np.asarray(t, "float64") for t in (model.posterior(u / 0.5).mean(), model.posterior(u / 0.5).stddev()))
        np.testing.assert_allclose(mean, locs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(std, scales, rtol=1e-5, atol=1e-6)
    z = np.random.default_rng(0).normal(0, 1.5, (5, 7, D))
    expected = log_mean_exp_components(z, np.full(K, -np.log(K)), locs, scales)
    np.testing.assert_allclose(np.asarray(model._log_pz(z.astype("float32"))), expected, rtol=1e-5, atol=1e-4)
    # TFP's mixture of the same components agrees (what `sample` draws from).
    np.testing.assert_allclose(np.asarray(model.prior().log_prob(z.astype("float32"))), expected, rtol=1e-5,
                               atol=1e-4)


def test_vamp_pseudo_inputs_start_near_the_data_scale():
    bounded = build_tiny("vae", prior="vamp", prior_components=50)
    u = np.asarray(bounded.pseudo_inputs)
    assert abs(u.mean() - 0.5) < 0.02 and abs(u.std() - 0.1) < 0.02
    table = build_tiny("vae", input_shape=(6,), prior="vamp", prior_components=200, likelihood="gaussian",
                       preprocessing={"kind": "standardize", "mean": [0.0] * 6, "variance": [4.0] * 6})
    u = np.asarray(table.pseudo_inputs)
    assert abs(u.mean()) < 0.1 and abs(u.std() - 1.0) < 0.1  # standardized units
    again = build_tiny("vae", prior="vamp", prior_components=50)
    np.testing.assert_array_equal(np.asarray(again.pseudo_inputs), np.asarray(bounded.pseudo_inputs))  # seeded


def test_mixture_log_prior_by_hand_matches_tfp_and_the_numpy_mixture():
    model = build_tiny("vae", prior="mixture", prior_components=K)
    rng = np.random.default_rng(1)
    model.prior_logits.assign(rng.normal(size=K).astype("float32"))
    z = rng.normal(0, 2, (3, 4, D))
    logits = np.asarray(model.prior_logits, "float64")
    log_pi = logits - np.log(np.exp(logits).sum())
    expected = log_mean_exp_components(z, log_pi, np.asarray(model.prior_loc, "float64"),
                                       softplus(np.asarray(model.prior_raw_scale, "float64")))
    got = np.asarray(model._log_pz(z.astype("float32")))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got, np.asarray(model.prior().log_prob(z.astype("float32"))), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("prior", ["mixture", "vamp"])
def test_score_is_the_elbo_at_the_posterior_mean(prior):
    """−log p(x | z = μ) + log q(μ|x) − log p(μ), every part by hand."""
    model = build_tiny("vae", prior=prior, prior_components=K)
    x = tiny_images(5)
    mu, s = (np.asarray(t, "float64") for t in (model.posterior(x).mean(), model.posterior(x).stddev()))
    logits = np.asarray(model.decoder(mu.astype("float32")), "float64").reshape(5, -1)
    flat = x.reshape(5, -1).astype("float64")
    reconstruction = np.sum(softplus(logits) - flat * logits, axis=1)
    log_p = np.asarray(model.prior().log_prob(mu.astype("float32")), "float64")
    expected = reconstruction + log_normal(mu, mu, s) - log_p
    np.testing.assert_allclose(np.asarray(model.anomaly_score(x)), expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("options", [{"prior": "vamp", "prior_components": 5},
                                     {"prior": "vamp", "prior_components": 2, "backbone": "conv", "hidden": [4, 8]},
                                     {"prior": "vamp", "prior_components": 4, "likelihood": "gaussian"},
                                     {"prior": "mixture", "prior_components": 7}])
def test_parameter_count_equals_keras(options):
    hp = zoo.registry.HPARAMS.get("vae")(**{"code_size": D, "hidden": (16,), **options})
    model = build_tiny("vae", **options)
    assert hp.parameter_count(TINY_SHAPE) == model.count_params()


def test_vamp_prior_trains_samples_and_reloads(tmp_path):
    model = build_tiny("vae", prior="vamp", prior_components=K)
    x = tiny_images(16)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = np.asarray(model.pseudo_inputs).copy()
    history = model.fit(x, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and {"elbo", "kl"} <= set(history)
    assert not np.array_equal(np.asarray(model.pseudo_inputs), before)  # the pseudo-inputs are learned
    samples = np.asarray(model.sample(6, seed=2))
    assert samples.shape == (6, *TINY_SHAPE) and np.all((samples >= 0) & (samples <= 1))
    np.testing.assert_array_equal(np.asarray(model.sample(6, seed=2)), samples)
    assert np.all(np.isfinite(model.log_likelihood(x[:4], num_samples=10)))
    path = tmp_path / "vamp.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(np.asarray(loaded.pseudo_inputs), np.asarray(model.pseudo_inputs))
    np.testing.assert_array_equal(np.asarray(loaded.sample(6, seed=2)), samples)


def test_vamp_samples_pick_components_uniformly():
    """z ~ p(z): a uniform k, then z ~ q(z | u_k); the sample mean is the mean of the K posterior means
    and the sample variance the mixture's, (1/K)·Σ_k (s_k² + m_k²) − m̄²."""
    model = build_tiny("vae", prior="vamp", prior_components=K)
    locs, scales = encoder_numpy(model, np.asarray(model.pseudo_inputs))
    z = np.asarray(model.prior().sample(40_000, seed=np.array([5, 0], "int32")), "float64")
    mean = locs.mean(0)
    variance = (scales ** 2 + locs ** 2).mean(0) - mean ** 2
    np.testing.assert_allclose(z.mean(0), mean, atol=4 * np.sqrt(variance.max() / len(z)))
    np.testing.assert_allclose(z.var(0), variance, rtol=0.05)


def test_old_configs_load_with_the_new_defaults():
    """A `.keras` config written before these options (no objective, gradient, ... keys) still builds."""
    config = build_tiny("vae", prior="mixture", prior_components=K).get_config()
    for key in ("objective", "tc_alpha", "tc_beta", "tc_gamma", "tc_dataset_size", "gradient", "score_baseline",
                "score_samples"):
        config.pop(key)
    model = zoo.models.vae.VariationalAutoencoder.from_config(config)
    assert model.hparams.objective == "elbo" and model.hparams.gradient == "reparameterization"
