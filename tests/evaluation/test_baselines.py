"""Probabilistic PCA against brute force, and the raw-pixel reference row."""

import math

import numpy as np
import pytest
from scipy import optimize
from scipy.stats import multivariate_normal

from zoo.evaluation.baselines import PPCA, pixel_codes, raw_pixel_reference, sample_moments
from zoo.evaluation.evaluate import EvalData, EvalSettings


def _data(n=400, dim=6, q=2, sigma=0.3, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(dim, q))
    mu = rng.normal(size=dim)
    return rng.normal(size=(n, q)) @ w.T + mu + sigma * rng.normal(size=(n, dim))


def test_log_likelihood_matches_a_dense_gaussian():
    x = _data()
    ppca = PPCA.fit(x, 2)
    cov = ppca.weights @ ppca.weights.T + ppca.sigma2 * np.eye(6)  # C built here, not by the class
    expected = multivariate_normal(mean=x.mean(axis=0), cov=cov).logpdf(x[:50])
    np.testing.assert_allclose(ppca.log_likelihood(x[:50]), expected, rtol=1e-10, atol=1e-9)


def test_fit_is_the_eigen_solution():
    x = _data()
    ppca = PPCA.fit(x, 2)
    s = np.cov(x, rowvar=False, bias=True)
    lam = np.sort(np.linalg.eigvalsh(s))[::-1]
    np.testing.assert_allclose(ppca.mean, x.mean(axis=0), atol=1e-12)
    assert ppca.sigma2 == pytest.approx(lam[2:].mean(), rel=1e-10)
    # At the maximum, C keeps the q largest eigenvalues of S and replaces the others by σ².
    c_eig = np.sort(np.linalg.eigvalsh(ppca.weights @ ppca.weights.T + ppca.sigma2 * np.eye(6)))[::-1]
    np.testing.assert_allclose(c_eig, [lam[0], lam[1]] + [lam[2:].mean()] * 4, rtol=1e-9)


def test_fit_matches_numerical_maximization():
    x = _data(n=200, dim=5, q=2, seed=3)
    ppca = PPCA.fit(x, 2)
    mu = x.mean(axis=0)

    def negative_mean_log_likelihood(theta):
        w, log_s2 = theta[:10].reshape(5, 2), theta[10]
        return -multivariate_normal(mu, w @ w.T + math.exp(log_s2) * np.eye(5)).logpdf(x).mean()

    start = np.concatenate([np.random.default_rng(0).normal(size=10), [0.0]])
    best = optimize.minimize(negative_mean_log_likelihood, start, method="L-BFGS-B")
    closed = ppca.log_likelihood(x).mean()
    assert -best.fun == pytest.approx(closed, abs=1e-5)
    assert closed >= -best.fun - 1e-9  # no numerical optimum beats the closed form
    assert math.exp(best.x[10]) == pytest.approx(ppca.sigma2, rel=1e-3)
    # W is identified up to a rotation: W Wᵀ is what must agree.
    w = best.x[:10].reshape(5, 2)
    np.testing.assert_allclose(w @ w.T, ppca.weights @ ppca.weights.T, atol=1e-3)


def test_posterior_matches_gaussian_conditioning():
    x = _data()
    ppca = PPCA.fit(x, 2)
    w, c = ppca.weights, ppca.weights @ ppca.weights.T + ppca.sigma2 * np.eye(6)
    # (z, x) is jointly Gaussian with Cov(z, x) = Wᵀ: condition directly, without the q×q identity.
    mean, cov = ppca.posterior(x[:10])
    np.testing.assert_allclose(mean, (x[:10] - ppca.mean) @ np.linalg.solve(c, w), atol=1e-10)
    np.testing.assert_allclose(cov, np.eye(2) - w.T @ np.linalg.solve(c, w), atol=1e-10)
    np.testing.assert_allclose(ppca.reconstruct(x[:10]), (mean @ w.T + ppca.mean).astype(np.float32), atol=1e-5)


def test_images_keep_their_shape_and_reconstruction_improves_with_q():
    x = np.clip(_data(n=300, dim=16, q=4, sigma=0.05) / 4 + 0.5, 0, 1).reshape(300, 4, 4, 1)
    errors = []
    for q in (1, 2, 4, 8):
        ppca = PPCA.fit(x, q)
        assert ppca.reconstruct(x[:3]).shape == (3, 4, 4, 1)
        assert ppca.encode(x[:3]).shape == (3, q)
        errors.append(float(((ppca.reconstruct(x) - x) ** 2).mean()))
    assert errors == sorted(errors, reverse=True)


def test_moments_are_shared_between_latent_sizes():
    x = _data()
    moments = sample_moments(x)
    for q in (1, 3):
        a, b = PPCA.from_moments(moments, q), PPCA.fit(x, q)
        np.testing.assert_allclose(a.weights, b.weights)
        assert a.sigma2 == b.sigma2


def test_samples_have_the_model_covariance():
    ppca = PPCA.fit(_data(), 2)
    s = ppca.sample(40_000, seed=1)
    np.testing.assert_allclose(np.cov(s, rowvar=False), ppca.covariance(), atol=0.08)
    np.testing.assert_array_equal(s, ppca.sample(40_000, seed=1))


@pytest.mark.parametrize("q", [0, 6, 2.0])
def test_bad_code_size_is_a_one_line_error(q):
    with pytest.raises(ValueError, match="code_size") as info:
        PPCA.fit(_data(), q)
    assert "\n" not in str(info.value)


def test_degenerate_data_is_refused():
    t = np.linspace(0, 1, 50)[:, None]
    x = np.hstack([t, 2 * t, -t])  # rank 1: nothing is left for σ²
    with pytest.raises(ValueError, match="σ² = 0"):
        PPCA.fit(x, 1)
    with pytest.raises(ValueError, match="two examples"):
        PPCA.fit(x[:1], 1)


def test_raw_pixel_row_scores_the_corrupted_inputs_themselves():
    rng = np.random.default_rng(0)
    x = rng.random((40, 4, 4, 1)).astype("float32")
    noisy = np.clip(x + 0.1, 0, 1)
    y = (x.reshape(40, -1).mean(axis=1) > 0.5).astype(int)
    data = EvalData(x_test=x, y_test=y, x_probe=x, y_probe=y, corrupted={"psnr_shift": noisy})
    row = raw_pixel_reference(data, EvalSettings(probe_train_size=40, knn_k=1))
    mse = ((x.astype(float) - noisy) ** 2).reshape(40, -1).mean(axis=1)
    assert row["psnr_shift"] == pytest.approx(np.mean(10 * np.log10(1 / mse)), rel=1e-9)
    assert "psnr" not in row and "mse" not in row  # the identity's clean reconstruction is not a result
    assert row["knn_accuracy"] == 1.0  # 1-NN of the training set on itself
    assert pixel_codes(x).shape == (40, 16)
