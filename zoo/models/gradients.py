"""Monte Carlo estimators of ∇_φ E_{q_φ(z)}[f(z)] for a diagonal Gaussian q_φ = N(μ, diag σ²).

Two identities turn the gradient of an expectation into an expectation of something samples
can estimate (shared/seeds/002: the log-derivative trick and the reparameterization trick):

    reparameterization (Kingma & Welling 2014), z = μ + σ ⊙ ε, ε ~ N(0, I):
        ∇_μ E[f] = E[∇_z f(z)],           ∇_σ E[f] = E[∇_z f(z) ⊙ ε];
    log-derivative, score function or REINFORCE (Williams 1992):
        ∇_φ E[f] = E[(f(z) − b)·∇_φ log q_φ(z)],
        ∇_μ log q = (z − μ)/σ²,           ∇_σ log q = ((z − μ)² − σ²)/σ³.

The second needs only the values f(z), not ∇_z f (f may be non-differentiable or discrete),
but its variance grows with |f|; any baseline b independent of the sample keeps it unbiased
(E[∇ log q] = 0) and a good one (≈ E[f]) removes most of that variance. Here b is the
leave-one-out mean of f over the other samples (Kool et al. 2019, "Buy 4 REINFORCE samples").

The functions are plain TensorFlow, independent of Keras models: `zoo.models.vae` uses
`leave_one_out_baseline` and `score_function_surrogate` for its `gradient = "score_function"`
training option, and benchmarks/gradient_variance.py the rest.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def normal_score(z, loc, scale):
    """(∂/∂μ, ∂/∂σ) of log N(z; μ, σ²), elementwise: ((z − μ)/σ², ((z − μ)² − σ²)/σ³)."""
    centred = z - loc
    return centred / scale ** 2, (centred ** 2 - scale ** 2) / scale ** 3


def leave_one_out_baseline(values, axis: int = 0):
    """b_i = (Σ_j v_j − v_i)/(n − 1) along `axis`: the mean of the others, independent of v_i.

    With n = 1 there are no others and b = 0 (the estimator without a baseline).
    """
    values = tf.convert_to_tensor(values)
    n = tf.cast(tf.shape(values)[axis], values.dtype)
    total = tf.reduce_sum(values, axis=axis, keepdims=True)
    return tf.where(n > 1, (total - values) / tf.maximum(n - 1, 1), tf.zeros_like(values))


def resolve_baseline(values, baseline, axis: int = 0):
    """The baseline as a tensor like `values`: None or "none" → 0, "leave_one_out", or a constant."""
    values = tf.convert_to_tensor(values)
    if baseline is None or (isinstance(baseline, str) and baseline == "none"):
        return tf.zeros_like(values)
    if isinstance(baseline, str):
        if baseline != "leave_one_out":
            raise ValueError(f"baseline must be None, 'none', 'leave_one_out' or a number. Received: {baseline!r}")
        return leave_one_out_baseline(values, axis)
    return tf.broadcast_to(tf.cast(baseline, values.dtype), tf.shape(values))


def reparameterization_gradients(f, loc, scale, eps):
    """Per-sample estimates (∇_μ, ∇_σ) of ∇ E_q[f] by the reparameterization z = μ + σ ⊙ ε.

    Args:
        f: a differentiable TensorFlow function of z (S, ..., d) → (S, ...), one value per sample.
        loc, scale: μ and σ, broadcastable against `eps`.
        eps: standard normal draws ε of shape (S, ..., d).

    Returns:
        (g_loc, g_scale), each of the shape of `eps`: sample s's estimate ∇_z f(z_s) and
        ∇_z f(z_s) ⊙ ε_s. Their mean over S is the estimator with S samples.
    """
    eps = tf.convert_to_tensor(eps)
    z = tf.cast(loc, eps.dtype) + tf.cast(scale, eps.dtype) * eps
    with tf.GradientTape() as tape:
        tape.watch(z)
        total = tf.reduce_sum(f(z))
    dz = tape.gradient(total, z)  # the samples are independent: row s is ∇f(z_s)
    return dz, dz * eps


def score_function_gradients(f, loc, scale, eps, baseline=None):
    """Per-sample estimates (∇_μ, ∇_σ) of ∇ E_q[f] by the log-derivative trick: (f(z) − b)·∇ log q(z).

    Args:
        f: any function of z (S, ..., d) → (S, ...) (numpy or TensorFlow; no gradient needed).
        loc, scale, eps: as in `reparameterization_gradients`; z = μ + σ ⊙ ε.
        baseline: None (b = 0), "leave_one_out" (the mean of f over the other S − 1 samples)
            or a number.

    Returns:
        (g_loc, g_scale), each of the shape of `eps`.
    """
    eps = tf.convert_to_tensor(eps)
    loc, scale = tf.cast(loc, eps.dtype), tf.cast(scale, eps.dtype)
    z = loc + scale * eps
    values = tf.cast(tf.convert_to_tensor(f(z)), eps.dtype)
    weight = (values - resolve_baseline(values, baseline, axis=0))[..., None]
    d_loc, d_scale = normal_score(z, loc, scale)
    return weight * d_loc, weight * d_scale


def score_function_surrogate(cost, log_q, baseline=None, axis: int = 0):
    """A term whose value is 0 and whose gradient is the score-function estimate (c − b)·∇_φ log q.

    Added to a loss whose samples z were drawn with their gradient stopped, it supplies the
    gradient of E_q[c] through q's parameters φ: stop(c − b)·(log q − stop(log q)).

    Args:
        cost: c per sample (its gradient is not taken through this term).
        log_q: log q_φ(z) per sample, z fixed and φ live.
        baseline: None, "leave_one_out" (over `axis`) or a number.
    """
    cost = tf.stop_gradient(tf.convert_to_tensor(cost))
    weight = cost - resolve_baseline(cost, baseline, axis)
    return weight * (log_q - tf.stop_gradient(log_q))


def summarize(estimates, axis: int = 0) -> dict:
    """Mean, variance (ddof = 1) and standard error of the mean of per-sample estimates along `axis`."""
    estimates = np.asarray(estimates, dtype="float64")
    n = estimates.shape[axis]
    variance = estimates.var(axis=axis, ddof=1)
    return {"mean": estimates.mean(axis=axis), "variance": variance, "stderr": np.sqrt(variance / n)}
