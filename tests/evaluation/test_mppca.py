"""The mixture of PPCA against independent math: dense Gaussians, the closed-form PPCA, a planted mixture."""

import numpy as np
import pytest
from scipy.linalg import subspace_angles
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from zoo.evaluation.baselines import PPCA
from zoo.evaluation.mppca import MixturePPCA

D, Q = 10, 2
SIGMA = 0.3


def planted(n=(600, 400, 200), seed=0):
    """Three components with different random 2-d subspaces in D = 10, means 8 apart, noise σ = 0.3."""
    rng = np.random.default_rng(seed)
    means = 8.0 * np.eye(D)[:3]
    loadings = [1.5 * rng.normal(size=(D, Q)) for _ in n]
    x = np.concatenate([rng.normal(size=(m, Q)) @ w.T + mu + SIGMA * rng.normal(size=(m, D))
                        for m, w, mu in zip(n, loadings, means)])
    labels = np.repeat(np.arange(len(n)), n)
    return x, labels, means, loadings, np.array(n) / sum(n)


def dense_log_joint(mix, x):
    """log π_k + log N(x; μ_k, V_k V_kᵀ + σ_k² I), with scipy's dense Gaussian."""
    return np.stack([np.log(mix.weights[k]) + multivariate_normal(
        mix.means[k], mix.loadings[k] @ mix.loadings[k].T + mix.sigma2[k] * np.eye(x.shape[1])).logpdf(x)
        for k in range(mix.n_components)], axis=1)


def test_log_likelihood_never_decreases_across_em_iterations():
    # Unstructured data, where EM has a long way to go; and the planted mixture.
    rng = np.random.default_rng(3)
    unstructured = rng.standard_t(df=3, size=(400, 6)) @ rng.normal(size=(6, 6))
    for x, k, q in ((unstructured, 4, 2), (planted()[0], 3, Q)):
        mix = MixturePPCA(k, q).fit(x, seed=1, tol=1e-12, max_iter=300)
        history = np.asarray(mix.log_likelihood_history)
        assert len(history) == mix.n_iter + 1 > 3
        assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:])), np.diff(history).min()
        # The last entry is the log-likelihood of the returned parameters.
        assert mix.log_density(x).mean() == pytest.approx(history[-1], rel=1e-10)


def test_one_component_is_the_closed_form_ppca():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(D, Q)) * np.array([3.0, 1.5])
    x = rng.normal(size=(1000, Q)) @ w.T + SIGMA * rng.normal(size=(1000, D)) + 2.0
    ppca = PPCA.fit(x, Q)
    target = ppca.log_likelihood(x).mean()

    fitted = MixturePPCA(1, Q).fit(x, tol=1e-13)
    # EM from a random start (not the closed form the initialisation computes) reaches it too.
    start = MixturePPCA(1, Q).fit(x, max_iter=0)
    start.loadings, start.sigma2 = rng.normal(size=(1, D, Q)), np.array([5.0])
    warm = MixturePPCA(1, Q).fit(x, init=start, tol=1e-13, max_iter=500)
    assert warm.log_likelihood_history[0] < target - 1.0
    for mix in (fitted, warm):
        assert mix.converged
        assert mix.log_likelihood_history[-1] == pytest.approx(target, rel=1e-9)
        assert mix.weights == pytest.approx([1.0])
        assert mix.sigma2[0] == pytest.approx(ppca.sigma2, rel=1e-6)
        np.testing.assert_allclose(mix.means[0], ppca.mean, atol=1e-10)
        # W is defined up to a rotation: compare W Wᵀ and the principal angles of the subspaces.
        np.testing.assert_allclose(mix.loadings[0] @ mix.loadings[0].T, ppca.weights @ ppca.weights.T,
                                   atol=1e-5 * np.abs(ppca.weights).max() ** 2)
        assert subspace_angles(mix.loadings[0], ppca.weights).max() < 1e-5


def test_a_planted_mixture_is_recovered():
    x, labels, means, loadings, weights = planted()
    mix = MixturePPCA(3, Q).fit(x, seed=0, tol=1e-10)
    distance = np.linalg.norm(means[:, None, :] - mix.means[None, :, :], axis=2)
    truth, found = linear_sum_assignment(distance)
    assert distance[truth, found].max() < 1.5  # the means are 8 apart; a sample mean is ~0.5 off here
    # Matched to the oracle: the sample mean of each planted component's own points.
    oracle = np.stack([x[labels == t].mean(axis=0) for t in truth])
    np.testing.assert_allclose(mix.means[found], oracle, atol=0.05)
    np.testing.assert_allclose(mix.weights[found], weights, atol=0.01)
    assert (np.argmax(mix.responsibilities(x), axis=1) == found[labels]).mean() > 0.99
    for t, k in zip(truth, found):
        assert subspace_angles(mix.loadings[k], loadings[t]).max() < 0.1
        assert mix.sigma2[k] == pytest.approx(SIGMA ** 2, rel=0.1)


def test_log_density_responsibilities_and_reconstruction_match_dense_computations():
    x = planted(n=(60, 50, 40), seed=2)[0][:, :6] + np.random.default_rng(0).normal(size=(150, 6))
    mix = MixturePPCA(3, 2).fit(x, seed=0, max_iter=20)
    new = np.random.default_rng(5).normal(3.0, 4.0, size=(30, 6))
    log_joint = dense_log_joint(mix, new)
    np.testing.assert_allclose(mix.log_density(new), logsumexp(log_joint, axis=1), rtol=1e-10)
    np.testing.assert_allclose(mix.responsibilities(new), np.exp(log_joint - logsumexp(log_joint, axis=1)[:, None]),
                               atol=1e-10)
    # E[z | x, k] = V_kᵀ C_k⁻¹ (x − μ_k) (= M_k⁻¹ V_kᵀ (x − μ_k)), decoded by the responsible component.
    k = np.argmax(log_joint, axis=1)
    expected = np.empty_like(new)
    for i, j in enumerate(k):
        c = mix.loadings[j] @ mix.loadings[j].T + mix.sigma2[j] * np.eye(6)
        z = mix.loadings[j].T @ np.linalg.solve(c, new[i] - mix.means[j])
        expected[i] = mix.loadings[j] @ z + mix.means[j]
    np.testing.assert_allclose(mix.reconstruct(new), expected, rtol=1e-5, atol=1e-5)
    codes = mix.encode(new)
    assert codes.shape == (30, 3 * 2) and codes.dtype == np.float32


def test_collapsing_components_are_held_by_the_floors():
    # Three repeated points form a cluster of rank 0: its σ² would go to 0 and log p(x) to +∞.
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(200, 5)), np.tile(np.full((1, 5), 30.0), (3, 1))])
    mix = MixturePPCA(2, 2, min_variance=1e-4, min_weight=0.05).fit(x, seed=0, max_iter=50)
    floor = 1e-4 * x.var(axis=0).mean()
    assert mix.sigma2.min() == pytest.approx(floor, rel=1e-9)
    assert mix.weights.min() == pytest.approx(0.05)
    history = np.asarray(mix.log_likelihood_history)
    assert np.all(np.isfinite(history)) and np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))


@pytest.mark.parametrize("make, match", [
    (lambda x: MixturePPCA(0, 2), r"^n_components must be an integer >= 1\. Received: n_components=0$"),
    (lambda x: MixturePPCA(1.5, 2), r"^n_components must be an integer >= 1\. Received: n_components=1\.5$"),
    (lambda x: MixturePPCA(2, 0), r"^code_size must be an integer >= 1\. Received: code_size=0$"),
    (lambda x: MixturePPCA(2, 6).fit(x), r"^code_size must be in \[1, 5\] for data of dimension D = 6\. Received"),
    (lambda x: MixturePPCA(2, 2, min_weight=0.5), r"^min_weight must be in \[0\.0, 0\.5\)\. Received: min_weight=0\.5"),
    (lambda x: MixturePPCA(2, 2).fit(np.where(x > 1.5, np.nan, x)), r"^x must be finite\. Received: \d+ NaN"),
    (lambda x: MixturePPCA(2, 2).fit(x, tol=-1.0), r"^tol must be in \[0\.0, inf\)\. Received: tol=-1\.0$"),
    (lambda x: MixturePPCA(30, 2).fit(x[:20]), r"^x must have at least n_components = 30 examples\. Received: 20$"),
    (lambda x: MixturePPCA(2, 2).log_density(x), r"^MixturePPCA is not fitted"),
])
def test_bad_arguments_are_one_line_errors_naming_them(make, match):
    x = np.random.default_rng(0).normal(size=(50, 6))
    with pytest.raises(ValueError, match=match) as info:
        make(x)
    assert "\n" not in str(info.value)
