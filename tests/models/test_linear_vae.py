"""PPCA as a linear VAE (Lucas et al., 2019): on PPCA data its ELBO reaches PPCA's exact maximum log-likelihood.

The VAE is the zoo's own family with no hidden layers (encoder x → (μ_φ(x), softplus(·)) and
decoder z → V z + b, both one Dense layer), the Gaussian likelihood with one learned σ and
standardized units (so the decoder's output is the mean, no sigmoid). Everything the test
measures is computed here in numpy from the trained weights: the exact ELBO (no sampling), the
model's exact marginal log p_θ(x) and the exact posterior p_θ(z|x), against the closed-form PPCA
of `zoo.evaluation.baselines`. See docs/ppca.md.
"""

import keras
import numpy as np
import tensorflow as tf
from scipy.linalg import subspace_angles

import zoo
from zoo.evaluation.baselines import PPCA

D, Q, N = 8, 2, 1000
STEPS, LEARNING_RATE = 400, 0.05
#: Nats per example between the ELBO and PPCA's maximum log-likelihood; measured 0.0022.
ELBO_TOLERANCE = 0.01
#: Largest principal angle (radians) between the decoder's V and PPCA's W; measured 0.0065.
ANGLE_TOLERANCE = 0.05


def ppca_data():
    """N draws of a PPCA model (D = 8, q = 2, σ = 0.5), standardized column by column."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(D, Q)) * np.array([2.0, 1.0])
    x = rng.normal(size=(N, Q)) @ w.T + 0.5 * rng.normal(size=(N, D))
    return ((x - x.mean(axis=0)) / x.std(axis=0)).astype("float32")


def trained_linear_vae(x):
    keras.utils.set_random_seed(0)
    model = zoo.build("vae", input_shape=(D,), code_size=Q, hidden=[], likelihood="gaussian", learn_sigma=True,
                      sigma=1.0, seed=0, preprocessing={"kind": "standardize", "mean": [0.0] * D,
                                                        "variance": [1.0] * D})
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(LEARNING_RATE, STEPS)))
    # Full batch, STEPS Adam steps of the family's own −ELBO (one reparameterized sample per example).
    model.fit(tf.data.Dataset.from_tensors(x).repeat(), steps_per_epoch=STEPS, epochs=1, shuffle=False, verbose=0)
    return model


def linear_parts(model):
    """(A, a) of the encoder's one Dense layer, (V, b) of the decoder's, and σ² of the likelihood."""
    (encoder,) = [layer for layer in model.encoder.layers if layer.weights]
    (decoder,) = [layer for layer in model.decoder.layers if layer.weights]
    a_kernel, a_bias = (np.asarray(v, "float64") for v in encoder.get_weights())
    d_kernel, d_bias = (np.asarray(v, "float64") for v in decoder.get_weights())
    return a_kernel, a_bias, d_kernel.T, d_bias, float(np.exp(2.0 * np.asarray(model.log_sigma, "float64")))


def exact_elbo(x, a_kernel, a_bias, v, b, s2):
    """E_q[log N(x | V z + b, σ² I)] − KL(q ‖ N(0, I)) per example, q = N(m, diag s²), in closed form:
    −(D/2) log 2πσ² − (‖x − V m − b‖² + Σ_j s_j² ‖v_j‖²)/(2σ²) − ½ Σ_j (m_j² + s_j² − 1 − log s_j²)."""
    h = x @ a_kernel + a_bias
    m, s = h[:, :Q], np.logaddexp(0.0, h[:, Q:]) + 1e-5  # the family's softplus(·) + 1e-5
    r = x - m @ v.T - b
    spread = (s ** 2 * (v * v).sum(axis=0)).sum(axis=1)  # E_q ‖V (z − m)‖² = Σ_j s_j² ‖v_j‖²
    expected = -0.5 * D * np.log(2 * np.pi * s2) - 0.5 * ((r * r).sum(axis=1) + spread) / s2
    kl = 0.5 * (m ** 2 + s ** 2 - 1.0 - np.log(s ** 2)).sum(axis=1)
    return expected - kl, m, s


def test_a_linear_vae_recovers_ppca_and_its_elbo_is_tight():
    x = ppca_data().astype("float64")
    ppca = PPCA.fit(x, Q)
    log_lik = ppca.log_likelihood(x).mean()  # the maximum over all (W, μ, σ²)

    a_kernel, a_bias, v, b, s2 = linear_parts(trained_linear_vae(ppca_data()))
    elbo, m, s = exact_elbo(x, a_kernel, a_bias, v, b, s2)
    model_ppca = PPCA(mean=b, weights=v, sigma2=s2, eigenvalues=ppca.eigenvalues, shape=(D,))
    marginal = model_ppca.log_likelihood(x).mean()  # log p_θ(x) of the VAE's own decoder

    # ELBO ≤ log p_θ(x) ≤ the maximum, and the two gaps close.
    assert elbo.mean() <= marginal + 1e-9 and marginal <= log_lik + 1e-9
    assert log_lik - elbo.mean() < ELBO_TOLERANCE, (log_lik, elbo.mean())
    assert subspace_angles(v, ppca.weights).max() < ANGLE_TOLERANCE
    assert abs(s2 / ppca.sigma2 - 1.0) < 0.01

    # Tight because q_φ(z|x) is the exact posterior N(M⁻¹Vᵀ(x − b), σ² M⁻¹), M = VᵀV + σ² I: the
    # decoder's columns come out orthogonal, so σ² M⁻¹ is diagonal, and the encoder's variance
    # stops depending on x (PPCA's posterior covariance is the same for every x).
    post_mean, post_cov = model_ppca.posterior(x)
    precision, diff = np.linalg.inv(post_cov), post_mean - m
    kl = 0.5 * ((s ** 2 * np.diag(precision)).sum(axis=1) + np.einsum("ni,ij,nj->n", diff, precision, diff) - Q
                + np.log(np.linalg.det(post_cov)) - np.log(s ** 2).sum(axis=1))  # KL(q ‖ p_θ(z|x)) per example
    correlation = post_cov / np.sqrt(np.outer(np.diag(post_cov), np.diag(post_cov)))
    assert np.abs(correlation - np.eye(Q)).max() < 0.02  # measured 0.004
    assert kl.mean() < ELBO_TOLERANCE and s.std(axis=0).max() < 0.01
