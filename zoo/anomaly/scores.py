"""Per-example and per-feature anomaly scores of a trained model, batch by batch.

The scores are the model's own (`Autoencoder.anomaly_scores` and `feature_scores`, defined there in
the seeds' symbols, in the model's units x'): "objective" (the family's reconstruction term: ‖x' −
x̂'‖² or the cross-entropy summed over features; −ELBO for the VAE), the means over features "mse",
"mae", "bce", and for the VAE "elbo" and the importance-sampled "nll" = −log p(x). Examples may be
an array or streamed files (`zoo.data.folders.ImageFiles`): they are read one batch at a time.
A model that takes labels (`Autoencoder.takes_labels`) is given the examples' `labels` with them
(`inputs_of`), and refuses examples without labels in one line.
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
        # The spec of the model's inputs (x, or x with its labels), from those of one example.
        example = model.inputs_of(np.zeros((1, *model.input_shape_), np.float32), np.zeros(1, np.int64))
        spec = tf.nest.map_structure(lambda a: tf.TensorSpec([None, *np.shape(a)[1:]], tf.as_dtype(np.asarray(a).dtype)),
                                     example)
        method = model.feature_scores if per_feature else model.anomaly_scores
        fns[key] = tf.function(lambda t: method(t, name), input_signature=[spec])
    return fns[key]


def _batches(model, x, labels, batch_size: int):
    """The model's inputs of each batch of examples (and labels), read as they are needed."""
    if model.takes_labels:
        model.inputs_of(x, labels)  # one line for missing or unsuitable labels, before any batch is read
    for start in range(0, len(x), batch_size):
        yield model.inputs_of(materialize(x[start:start + batch_size]),
                              None if labels is None else labels[start:start + batch_size])


def score_examples(model, x, name: str = "objective", *, batch_size: int = 500, nll_samples: int = 100,
                   seed: int = 0, labels=None) -> np.ndarray:
    """The per-example score `name` of the raw examples `x` (higher: more anomalous), float64 (N,).

    "nll" takes k = `nll_samples` importance samples per example (stateless, `seed`). `labels`:
    the examples' labels, which a model that takes labels needs (others ignore them).

    Raises:
        ValueError: a score the model does not offer, or no labels for a model that takes them.
    """
    model.check_score_name(name)
    if name == "nll":
        return np.concatenate([-model.log_likelihood(b, num_samples=nll_samples, seed=seed)
                               for b in _batches(model, x, labels, batch_size)]) if len(x) else np.zeros(0)
    fn = _compiled(model, name, per_feature=False)
    parts = [np.asarray(fn(b), np.float64) for b in _batches(model, x, labels, batch_size)]
    return np.concatenate(parts) if parts else np.zeros(0)


def feature_score_examples(model, x, name: str = "objective", *, batch_size: int = 500, labels=None) -> np.ndarray:
    """The per-feature scores `name` of the raw examples `x` (labels `labels`), float32 (N, *input_shape)."""
    model.check_score_name(name)
    fn = _compiled(model, name, per_feature=True)
    return np.concatenate([np.asarray(fn(b), np.float32) for b in _batches(model, x, labels, batch_size)])
