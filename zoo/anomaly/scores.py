"""Per-example and per-feature anomaly scores of a trained model, batch by batch.

The scores are the model's own (`Autoencoder.anomaly_scores` and `feature_scores`, defined there in
the seeds' symbols, in the model's units x'): "objective" (the family's reconstruction term: ‖x' −
x̂'‖² or the cross-entropy summed over features; −ELBO for the VAE), the means over features "mse",
"mae", "bce", and for the VAE "elbo" and the importance-sampled "nll" = −log p(x). Examples may be
an array or streamed files (`zoo.data.folders.ImageFiles`): they are read one batch at a time.
"""

from __future__ import annotations

import weakref

import numpy as np

from zoo.data.examples import materialize

# One compiled function per (model, score, per example or per feature), with a free batch
# dimension: repeated calls and a last partial batch do not trace again.
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(model, name: str, per_feature: bool):
    import tensorflow as tf

    fns = _COMPILED.setdefault(model, {})
    key = (name, per_feature)
    if key not in fns:
        spec = tf.TensorSpec([None, *model.input_shape_], tf.float32)
        method = model.feature_scores if per_feature else model.anomaly_scores
        fns[key] = tf.function(lambda t: method(t, name), input_signature=[spec])
    return fns[key]


def _batches(x, batch_size: int):
    for start in range(0, len(x), batch_size):
        yield materialize(x[start:start + batch_size])


def score_examples(model, x, name: str = "objective", *, batch_size: int = 500, nll_samples: int = 100,
                   seed: int = 0) -> np.ndarray:
    """The per-example score `name` of the raw examples `x` (higher: more anomalous), float64 (N,).

    "nll" takes k = `nll_samples` importance samples per example (stateless, `seed`).

    Raises:
        ValueError: a score the model does not offer.
    """
    import tensorflow as tf

    model.check_score_name(name)
    if name == "nll":
        return np.concatenate([-model.log_likelihood(b, num_samples=nll_samples, seed=seed)
                               for b in _batches(x, batch_size)]) if len(x) else np.zeros(0)
    fn = _compiled(model, name, per_feature=False)
    parts = [np.asarray(fn(tf.constant(b)), np.float64) for b in _batches(x, batch_size)]
    return np.concatenate(parts) if parts else np.zeros(0)


def feature_score_examples(model, x, name: str = "objective", *, batch_size: int = 500) -> np.ndarray:
    """The per-feature scores `name` of the raw examples `x`, float32 (N, *input_shape)."""
    import tensorflow as tf

    model.check_score_name(name)
    fn = _compiled(model, name, per_feature=True)
    return np.concatenate([np.asarray(fn(tf.constant(b)), np.float32) for b in _batches(x, batch_size)])
