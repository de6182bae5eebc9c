"""β-TCVAE: the KL split into mutual information, total correlation and dimension-wise KL by
minibatch-weighted sampling, checked term by term against loops in numpy on a tiny batch."""

import keras
import numpy as np
import pytest
from conftest import build_tiny, tiny_images
from keras import ops

import zoo

N = 50  # the dataset size of the minibatch-weighted sampling estimator


def log_normal_1d(z, loc, scale):
    return -0.5 * np.log(2 * np.pi) - np.log(scale) - 0.5 * ((z - loc) / scale) ** 2


def logsumexp(values):
    peak = max(values)
    return peak + np.log(sum(np.exp(v - peak) for v in values))


def hand_terms(z, loc, scale, log_pz, n=N):
    """MI, TC, DWKL per sample with explicit loops over the batch (m) and the code dimensions (j)."""
    m_size, d = z.shape
    mi, tc, dwkl = [], [], []
    for i in range(m_size):
        log_q_cond = sum(log_normal_1d(z[i, j], loc[i, j], scale[i, j]) for j in range(d))
        log_q = logsumexp([sum(log_normal_1d(z[i, j], loc[m, j], scale[m, j]) for j in range(d))
                           for m in range(m_size)]) - np.log(n * m_size)
        log_q_dims = sum(logsumexp([log_normal_1d(z[i, j], loc[m, j], scale[m, j]) for m in range(m_size)])
                         - np.log(n * m_size) for j in range(d))
        mi.append(log_q_cond - log_q)
        tc.append(log_q - log_q_dims)
        dwkl.append(log_q_dims - log_pz[i])
    return np.array(mi), np.array(tc), np.array(dwkl)


def tiny_batch(seed=0, m=4, d=2):
    rng = np.random.default_rng(seed)
    loc = rng.normal(0, 1.0, (m, d))
    scale = rng.uniform(0.3, 1.5, (m, d))
    eps = rng.standard_normal((m, d))
    return loc, scale, eps, loc + scale * eps


@pytest.mark.parametrize("prior", ["normal", "vamp"])
def test_terms_match_a_hand_computation_and_sum_to_the_monte_carlo_kl(prior):
    model = build_tiny("vae", code_size=2, objective="beta_tcvae", tc_dataset_size=N, prior=prior, prior_components=3)
    loc, scale, eps, z = tiny_batch()
    terms = [np.asarray(t, "float64") for t in model.total_correlation_terms(*(v.astype("float32") for v in (z, loc, scale)))]
    log_pz = np.asarray(model._log_pz(z.astype("float32")), "float64")
    if prior == "normal":
        np.testing.assert_allclose(log_pz, log_normal_1d(z, 0.0, 1.0).sum(-1), rtol=1e-6)
    expected = hand_terms(z, loc, scale, log_pz)
    for name, got, want in zip(("mi", "tc", "dwkl"), terms, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
    # The three add up to log q(z|x) − log p(z) of the same samples.
    aggregate = log_normal_1d(z, loc, scale).sum(-1) - log_pz
    np.testing.assert_allclose(sum(terms), aggregate, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model._log_qz(scale.astype("float32"), eps[None].astype("float32")))[0]
                               - log_pz, aggregate, rtol=1e-5, atol=1e-5)


def test_dimensionwise_kl_of_a_factorized_prior_is_a_sum_over_dimensions():
    """With p(z) = Π_j N(z_j; 0, 1), DWKL_i = Σ_j [log q̂(z_ij) − log N(z_ij; 0, 1)]."""
    model = build_tiny("vae", code_size=2, objective="beta_tcvae", tc_dataset_size=N)
    loc, scale, _, z = tiny_batch(seed=1)
    _, _, dwkl = model.total_correlation_terms(*(v.astype("float32") for v in (z, loc, scale)))
    per_dim = np.zeros(4)
    for i in range(4):
        for j in range(2):
            log_q_j = logsumexp([log_normal_1d(z[i, j], loc[m, j], scale[m, j]) for m in range(4)]) - np.log(N * 4)
            per_dim[i] += log_q_j - log_normal_1d(z[i, j], 0.0, 1.0)
    np.testing.assert_allclose(np.asarray(dwkl), per_dim, rtol=1e-5, atol=1e-5)


def test_loss_weighs_the_three_terms_and_training_logs_them():
    alpha, beta, gamma = 0.5, 4.0, 2.0
    model = build_tiny("vae", code_size=2, objective="beta_tcvae", tc_dataset_size=N, tc_alpha=alpha, tc_beta=beta,
                       tc_gamma=gamma)
    x = (tiny_images(8) > 0.3).astype("float32")
    model._epsilon = lambda shape: ops.full(shape, 0.4)  # z = μ + 0.4·σ
    outputs = model(x, training=True)
    loc, scale = (np.asarray(outputs[k], "float64") for k in ("loc", "scale"))
    z = loc + 0.4 * scale
    mi, tc, dwkl = hand_terms(z, loc, scale, log_normal_1d(z, 0.0, 1.0).sum(-1))
    logits = np.asarray(outputs["logits"], "float64").reshape(8, -1)
    reconstruction = np.sum(np.logaddexp(0, logits) - x.reshape(8, -1) * logits, axis=1)
    expected = np.mean(reconstruction + alpha * mi + beta * tc + gamma * dwkl)
    np.testing.assert_allclose(float(model.compute_loss(x=x, y_pred=outputs)), expected, rtol=1e-5)

    model = build_tiny("vae", code_size=2, objective="beta_tcvae", tc_dataset_size=N)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(x, batch_size=8, epochs=2, verbose=0).history
    assert {"mutual_information", "total_correlation", "dimensionwise_kl", "kl", "elbo"} <= set(history)
    total = np.add(np.add(history["mutual_information"], history["total_correlation"]), history["dimensionwise_kl"])
    np.testing.assert_allclose(total, history["kl"], rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(history["loss"]))


def test_tcvae_options_are_checked_and_not_shardable():
    schema = zoo.registry.HPARAMS.get("vae")
    with pytest.raises(ValueError, match="iw_samples=3"):
        schema(objective="beta_tcvae", iw_samples=3)
    with pytest.raises(ValueError, match="beta=4.0"):
        schema(objective="beta_tcvae", beta=4.0)
    with pytest.raises(ValueError, match="objective must be one of elbo, beta_tcvae"):
        schema(objective="tc")
    assert schema(objective="beta_tcvae").per_example_objective is False and schema().per_example_objective is True
    assert build_tiny("vae", objective="beta_tcvae").per_example_objective is False
    assert build_tiny("vae").per_example_objective is True
