"""The evaluation: the importance-sampled NLL against an exact answer, metrics against hand
computations, probes on toy sets, and (slow) a real run evaluated end to end."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import build_tiny, tiny_images
from scipy.stats import multivariate_normal

import zoo
from zoo.data.sources import Arrays
from zoo.models.estimators import importance_sampled_log_likelihood
from zoo.evaluation.evaluate import (CORRUPTIONS, EvalSettings, corruption_column,
                          knn_accuracy, linear_probe, prepare_data, psnr,
                          reconstruction_metrics)

tfd = tfp.distributions


def log_importance_weights(x, proposal, prior, likelihood_fn, num, seed):
    """Any TFP model's importance log-weights, written independently of the VAE's own:
    log w_i = log p(x | z_i) + log p(z_i) − log q(z_i | x) for z_i ~ q, shape (num, B).

    Args:
        x: a batch of B examples.
        proposal: q(z | x), a `tfd.Distribution` with batch shape (B,) and event shape (d,).
        prior: p(z), event shape (d,).
        likelihood_fn: z of shape (n, d) → p(x | z), a distribution with batch shape (n,) and the
            event shape of one example.
        num: samples per example (a scalar, possibly a tensor).
        seed: a stateless seed, an int32 tensor of shape (2,).
    """
    z = proposal.sample(num, seed=seed)
    shape = tf.shape(x)
    x_rep = tf.reshape(tf.broadcast_to(x[None], tf.concat([[num], shape], 0)), tf.concat([[-1], shape[1:]], 0))
    log_px_z = tf.reshape(likelihood_fn(tf.reshape(z, [-1, tf.shape(z)[-1]])).log_prob(x_rep), tf.shape(z)[:2])
    return log_px_z + prior.log_prob(z) - proposal.log_prob(z)


class LinearGaussian:
    """p(z) = N(0, I_q), p(x|z) = N(W z + μ, σ² I_D): log p(x) and p(z|x) are closed form."""

    def __init__(self, dim=5, q=2, sigma2=0.3, seed=0):
        rng = np.random.default_rng(seed)
        self.w, self.mu, self.sigma2 = rng.normal(size=(dim, q)), rng.normal(size=dim), sigma2
        self.cov = self.w @ self.w.T + sigma2 * np.eye(dim)
        self.x = rng.multivariate_normal(self.mu, self.cov, size=30)
        self.exact = multivariate_normal(self.mu, self.cov).logpdf(self.x)
        # (z, x) jointly Gaussian: E[z|x] = Wᵀ C⁻¹ (x − μ), Cov[z|x] = I − Wᵀ C⁻¹ W.
        gain = np.linalg.solve(self.cov, self.w)
        self.post_mean = (self.x - self.mu) @ gain
        self.post_cov = np.eye(q) - self.w.T @ gain

    def prior(self):
        q = self.w.shape[1]
        return tfd.MultivariateNormalDiag(loc=tf.zeros(q, tf.float64), scale_diag=tf.ones(q, tf.float64))

    def likelihood(self, z):
        scale = tf.fill([len(self.mu)], tf.constant(math.sqrt(self.sigma2), tf.float64))
        return tfd.MultivariateNormalDiag(loc=tf.matmul(z, tf.constant(self.w.T)) + self.mu, scale_diag=scale)

    def log_weight_fn(self, proposal_of):
        """The estimator's log-weight function with the proposal `proposal_of(rows)` for examples `rows`."""
        index = {tuple(row): i for i, row in enumerate(self.x)}

        def fn(xb, num, seed):
            rows = [index[tuple(r)] for r in xb.numpy()]
            return log_importance_weights(xb, proposal_of(rows), self.prior(), self.likelihood, num, seed)

        return fn

    def exact_posterior(self, rows):
        return tfd.MultivariateNormalTriL(loc=self.post_mean[rows], scale_tril=np.linalg.cholesky(self.post_cov))

    def broad_posterior(self, rows):
        # Not the posterior: shifted by 0.3, diagonal (the true one is correlated), 1.5× wider.
        return tfd.MultivariateNormalDiag(loc=self.post_mean[rows] + 0.3,
                                          scale_diag=1.5 * np.sqrt(np.diag(self.post_cov)))


@pytest.fixture(scope="module")
def lg():
    return LinearGaussian()


def test_exact_posterior_gives_the_exact_likelihood_with_one_sample(lg):
    # With q = p(z|x) every weight p(x, z)/q(z|x) equals p(x): a hand check of the log weights.
    log_px, elbo = importance_sampled_log_likelihood(lg.log_weight_fn(lg.exact_posterior), lg.x, 1)
    np.testing.assert_allclose(log_px, lg.exact, atol=1e-9)
    np.testing.assert_allclose(elbo, lg.exact, atol=1e-9)


def test_estimate_converges_to_the_exact_likelihood(lg):
    fn = lg.log_weight_fn(lg.broad_posterior)
    errors, biases = [], []
    for k in (1, 10, 100, 1000):
        log_px, elbo = importance_sampled_log_likelihood(fn, lg.x, k, chunk=250, seed=3)
        errors.append(np.abs(log_px - lg.exact).mean())
        biases.append((log_px - lg.exact).mean())
        assert np.all(elbo <= log_px + 1e-12)  # the sample mean of log w never exceeds its log-mean-exp
    assert errors == sorted(errors, reverse=True), errors
    assert errors[-1] < 0.1, errors
    assert biases[0] < -0.5  # E[log p̂] ≤ log p(x) (Jensen): a single sample is far below


def test_elbo_estimate_equals_exact_minus_kl(lg):
    # ELBO = log p(x) − KL(q ‖ p(z|x)), and both Gaussians are known in closed form.
    fn = lg.log_weight_fn(lg.broad_posterior)
    _, elbo = importance_sampled_log_likelihood(fn, lg.x, 4000, chunk=1000, seed=1)
    rows = list(range(len(lg.x)))
    true_post = tfd.MultivariateNormalTriL(loc=lg.post_mean, scale_tril=np.linalg.cholesky(lg.post_cov))
    kl = tfd.kl_divergence(lg.broad_posterior(rows), true_post).numpy()
    assert np.all(kl > 0.05)  # the proposal is measurably not the posterior
    np.testing.assert_allclose(elbo, lg.exact - kl, atol=0.4)  # each from 4000 samples
    assert elbo.mean() == pytest.approx((lg.exact - kl).mean(), abs=0.05)


def test_memory_is_bounded_and_results_are_reproducible(lg):
    calls = []
    inner = lg.log_weight_fn(lg.broad_posterior)

    def spy(xb, num, seed):
        calls.append(int(num) * len(xb))
        return inner(xb, num, seed)

    first, _ = importance_sampled_log_likelihood(spy, lg.x, 300, batch_size=7, chunk=64, seed=5)
    assert max(calls) <= 7 * 64  # never more than batch_size × chunk samples at once
    assert sum(calls) == 300 * len(lg.x)
    again, _ = importance_sampled_log_likelihood(inner, lg.x, 300, batch_size=7, chunk=64, seed=5)
    np.testing.assert_array_equal(first, again)
    other, _ = importance_sampled_log_likelihood(inner, lg.x, 300, batch_size=7, chunk=64, seed=6)
    assert not np.array_equal(first, other)
    # Chunked log-sum-exp over uneven chunks (64, …, 44) is still the k = 300 estimate.
    assert np.abs(first - lg.exact).mean() < 0.15 and np.abs(other - lg.exact).mean() < 0.15


def test_chunked_log_sum_exp_is_exact_and_stable():
    # Deterministic "weights" far apart (up to e^900): the running maximum must keep them finite.
    from scipy.special import logsumexp

    def fn(xb, num, seed):
        chunk_id = float(seed.numpy()[1])
        return tf.constant(300.0 * chunk_id + np.arange(int(num))[:, None] * np.ones((1, len(xb))), tf.float64)

    log_px, elbo = importance_sampled_log_likelihood(fn, np.zeros((3, 1)), 10, batch_size=3, chunk=4)
    values = np.concatenate([300.0 * c + np.arange(n) for c, n in enumerate((4, 4, 2))])
    np.testing.assert_allclose(log_px, logsumexp(values) - math.log(10), rtol=1e-12)
    np.testing.assert_allclose(elbo, values.mean(), rtol=1e-12)


def test_vae_log_weights_equal_tfp_log_probs_and_are_reproducible():
    """The model's closed-form log-weights against TFP's log_prob of the same samples z = μ + σ ⊙ ε."""
    vae = build_tiny("vae", prior="mixture")
    x = (tiny_images(6) > 0.5).astype("float32")
    seed = tf.constant([4, 2], tf.int32)
    log_w = np.asarray(vae.log_importance_weights(x, tf.constant(5, tf.int32), seed))
    eps = tf.random.stateless_normal((5, 6, vae.code_size), seed=seed)
    posterior = vae.posterior(x)
    z = posterior.mean() + posterior.stddev() * eps
    logits = tf.reshape(vae.decoder(tf.reshape(z, (-1, vae.code_size))), (5, *x.shape))
    by_tfp = (vae.likelihood_from_logits(logits).log_prob(np.broadcast_to(x, (5, *x.shape)))
              + vae.prior().log_prob(z) - posterior.log_prob(z))
    assert log_w.shape == (5, 6)
    np.testing.assert_allclose(log_w, np.asarray(by_tfp), rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(log_w, np.asarray(vae.log_importance_weights(x, 5, seed)))
    assert not np.allclose(log_w, np.asarray(vae.log_importance_weights(x, 5, tf.constant([4, 3], tf.int32))))


def test_vae_estimator_bounds_and_reproducibility():
    vae = build_tiny("vae")
    x = (tiny_images(40) > 0.5).astype("float32")
    log_px, elbo = importance_sampled_log_likelihood(vae.log_importance_weights, x, 500, seed=0)
    assert log_px.shape == (40,)
    np.testing.assert_array_equal(log_px, vae.log_likelihood(x, num_samples=500, seed=0))  # one estimator
    assert not np.array_equal(log_px, vae.log_likelihood(x, num_samples=500, seed=1))
    assert np.all(elbo <= log_px)
    # The model's analytic-KL ELBO and this Monte Carlo one estimate the same mean.
    np.testing.assert_allclose(elbo.mean(), np.asarray(vae.elbo(x)).mean(), rtol=0.02)


def test_bad_sample_count_is_a_one_line_error(lg):
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        importance_sampled_log_likelihood(lg.log_weight_fn(lg.broad_posterior), lg.x, 0)


def test_reconstruction_metrics_by_hand():
    x = np.array([[0.0, 1.0, 0.0, 1.0]])
    x_hat = np.full((1, 4), 0.5)
    m = reconstruction_metrics(x, x_hat)
    assert m["mse"] == pytest.approx(0.25)
    assert m["bce"] == pytest.approx(math.log(2))
    assert m["psnr"] == pytest.approx(10 * math.log10(4))


def test_psnr_averages_over_images():
    x = np.zeros((2, 100))
    x_hat = np.zeros((2, 100))
    x_hat[0, :] = 0.1  # MSE 0.01 → 20 dB
    x_hat[1, :] = 0.01  # MSE 0.0001 → 40 dB
    assert psnr(x, x_hat) == pytest.approx(30.0)
    assert psnr(x, x) == pytest.approx(100.0)  # a perfect image is capped, not infinite


def _blobs(n, separable, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    x = centres[y] + rng.normal(size=(n, 2)) if separable else rng.normal(size=(n, 2))
    return x.astype("float32"), y


def test_probes_on_separable_and_non_separable_sets():
    (xa, ya), (xb, yb) = _blobs(300, True), _blobs(300, True, seed=1)
    accuracy, converged = linear_probe(xa, ya, xb, yb)
    assert accuracy == 1.0 and converged
    assert knn_accuracy(xa, ya, xb, yb) == 1.0
    (xa, ya), (xb, yb) = _blobs(300, False), _blobs(300, False, seed=1)
    assert linear_probe(xa, ya, xb, yb)[0] < 0.5  # labels independent of the features: chance is 1/3
    assert knn_accuracy(xa, ya, xb, yb) < 0.5


def test_probes_report_nan_for_diverged_codes():
    x, y = _blobs(50, True)
    bad = x.copy()
    bad[0, 0] = np.nan
    assert math.isnan(linear_probe(bad, y, x, y)[0])
    assert math.isnan(knn_accuracy(x, y, bad, y))


def _arrays(n=60):
    x = tiny_images(n)
    y = np.arange(n) % 3
    return Arrays(x_train=x, y_train=y, x_test=x[:20], y_test=y[:20], source="test")


def test_corruptions_are_the_noise_layers_with_a_fixed_seed():
    settings = EvalSettings(probe_train_size=30)
    data = prepare_data(_arrays(), settings)
    assert set(data.corrupted) == {corruption_column(k, v) for k, v in CORRUPTIONS}
    again = prepare_data(_arrays(), settings)
    for column, noisy in data.corrupted.items():
        np.testing.assert_array_equal(noisy, again.corrupted[column])
        assert noisy.shape == data.x_test.shape
    masked = data.corrupted["psnr_masking_0.5"]
    assert np.all((masked == 0) | (masked == data.x_test))
    assert 0.35 < np.mean(masked == 0) < 0.65
    assert 0.0 <= data.corrupted["psnr_gaussian_0.5"].min() and data.corrupted["psnr_gaussian_0.5"].max() <= 1.0
    other = prepare_data(_arrays(), EvalSettings(probe_train_size=30, seed=1))
    assert not np.array_equal(other.corrupted["psnr_masking_0.5"], masked)
    assert len(data.x_probe) == 30 and len(set(map(bytes, data.x_probe))) == 30  # without replacement


@pytest.mark.parametrize("field,value", [("nll_samples", 0), ("probe_c", 0.0), ("probe_train_size", 1.5),
                                         ("seed", -1)])
def test_bad_settings_are_one_line_errors(field, value):
    with pytest.raises(ValueError, match=field) as info:
        EvalSettings(**{field: value})
    assert "\n" not in str(info.value)


def test_unknown_setting_and_missing_run(tmp_path):
    with pytest.raises(ValueError, match="Unknown evaluation setting 'probes'"):
        zoo.evaluate(tmp_path, probes=3)
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        zoo.evaluate(tmp_path)
    with pytest.raises(FileNotFoundError, match="No run directory"):
        zoo.evaluate(tmp_path / "nope")


def test_cli_reports_a_missing_run_in_one_line(tmp_path, capsys):
    from zoo.cli import main

    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zoo evaluate: error: No run directory") and "\n" not in err


@pytest.mark.slow
def test_a_real_run_end_to_end(tmp_path, capsys):
    """Fashion-MNIST: a VAE trained for a few steps, evaluated twice (identical numbers) and by the CLI."""
    from zoo.cli import main

    recipe = zoo.load_recipe("vae", overrides=["train.epochs=1", "train.steps_per_epoch=3", "model.hidden=[64]"])
    run = zoo.fit(recipe, out=tmp_path / "vae", verbose=0)
    small = dict(nll_examples=50, eval_examples=300, probe_train_size=300)
    first = zoo.evaluate(run, nll_samples=20, **small)
    saved = json.loads((tmp_path / "vae" / "evaluation.json").read_text())
    second = zoo.evaluate(tmp_path / "vae", nll_samples=20, write=False, **small)
    timing = {"latency_ms", "eval_seconds", "run"}
    for key in set(first) - timing:
        assert first[key] == second[key], key
    for key in ("parameters", "mse", "bce", "psnr", "psnr_masking_0.5", "probe_accuracy", "knn_accuracy",
                "active_units", "neg_elbo", "nll", "train_samples_per_second", "latency_ms"):
        assert key in saved, key
    assert saved["nll"] <= saved["neg_elbo"]
    assert saved["nll_examples"] == 50 and saved["settings"]["nll_samples"] == 20
    assert "binarized (dynamic" in saved["nll_data"]
    assert 0 <= saved["active_units"] <= 32
    assert 0.1 <= saved["probe_accuracy"] <= 1.0
    assert main(["evaluate", str(tmp_path / "vae"), "--nll-samples", "5", "--nll-examples", "10",
                 "--probe-train-size", "200"]) == 0
    out = capsys.readouterr().out
    assert "NLL nats" in out and out.strip().endswith("evaluation.json")
