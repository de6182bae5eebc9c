"""The importance-sampled log-likelihood estimator shared by the VAE and the evaluation."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from zoo.checks import check_int


def importance_sampled_log_likelihood(log_weight_fn, x, num_samples: int, *, batch_size: int = 100,
                                      chunk: int = 100, seed: int = 0):
    """log p(x) ≈ log (1/k)·Σ_i w_i and the ELBO (1/k)·Σ_i log w_i, per example, from the same k samples.

    Memory stays at batch_size·chunk samples whatever k and the number of examples are: the
    log-sum-exp over the k samples is accumulated chunk by chunk (running maximum and sum).
    Seeds are stateless, derived from `seed`, the batch and the chunk, so the same call gives
    the same numbers.

    Args:
        log_weight_fn: (x_batch, n, seed) → log w of shape (n, B), e.g.
            `VariationalAutoencoder.log_importance_weights`.
        x: examples, shape (N, ...), or a structure of such arrays (a model's `inputs_of(x, y)`),
            cut into batches together.
        num_samples: k ≥ 1.
        batch_size: examples per call.
        chunk: samples per call.
        seed: the base seed.

    Returns:
        (log_px, elbo): float64 arrays of shape (N,), in nats.
    """
    for name, value in (("num_samples", num_samples), ("batch_size", batch_size), ("chunk", chunk)):
        check_int(name, value, 1)
    x = tf.nest.map_structure(np.asarray, x)
    n_examples = len(tf.nest.flatten(x)[0])
    n_chunks = -(-num_samples // chunk)
    log_px, elbo = [], []
    for b, start in enumerate(range(0, n_examples, batch_size)):
        xb = tf.nest.map_structure(lambda a: tf.constant(a[start: start + batch_size]), x)
        rows = min(batch_size, n_examples - start)
        peak = np.full(rows, -np.inf)
        scaled_sum = np.zeros(rows)
        total = np.zeros(rows)
        for c, done in enumerate(range(0, num_samples, chunk)):
            n = min(chunk, num_samples - done)
            step_seed = tf.constant([seed, b * n_chunks + c], tf.int32)
            log_w = np.asarray(log_weight_fn(xb, tf.constant(n, tf.int32), step_seed), np.float64)
            new_peak = np.maximum(peak, log_w.max(axis=0))
            scaled_sum = scaled_sum * np.exp(peak - new_peak) + np.exp(log_w - new_peak).sum(axis=0)
            peak, total = new_peak, total + log_w.sum(axis=0)
        log_px.append(peak + np.log(scaled_sum) - math.log(num_samples))
        elbo.append(total / num_samples)
    return np.concatenate(log_px), np.concatenate(elbo)
