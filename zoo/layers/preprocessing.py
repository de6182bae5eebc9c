"""The preprocessing a model carries: raw inputs in, the model's units inside, raw units out.

A model trained on its own data takes inputs in their units (pixels 0..255, a table's columns
as measured) and returns reconstructions in the same units; inside, it works on

    scale:        x' = s·x                          (images: s = 1/255, so x' ∈ [0, 1])
    standardize:  x'_c = (x_c − m_c) / √v_c         (tables and series: m, v the training split's
                                                     mean and variance of feature/channel c)
    none:         x' = x                            (the built-in datasets, already in [0, 1])

and maps its outputs back by the inverse, x = x'/s or x_c = √v_c·x'_c + m_c. The statistics are
computed on the training split (`zoo.data.splits`), the values Keras's `Normalization.adapt`
computes (tests/layers/test_preprocessing.py), and stored in the model's config, so the `.keras`
file and every export (SavedModel, TFLite, ONNX) carry them. Scaling is Keras's `Rescaling`;
standardizing is `Standardize` below rather than `Normalization`, whose statistics are eager
tensors that a traced signature captures as inputs: tf2onnx then turned them into four extra
inputs of the ONNX graph. Here they are constants of the graph.
"""

from __future__ import annotations

import keras
import numpy as np

PREPROCESSING_KINDS = ("none", "scale", "standardize")


def check_preprocessing(spec) -> dict:
    """The spec as a plain dict, checked: {"kind": "none"}, {"kind": "scale", "scale": s > 0} or
    {"kind": "standardize", "mean": [m_c], "variance": [v_c > 0]} (same lengths).

    Raises:
        ValueError: an unknown kind, a missing or bad statistic.
    """
    spec = dict(spec or {"kind": "none"})
    kind = spec.get("kind", "none")
    if kind not in PREPROCESSING_KINDS:
        raise ValueError(f"Unknown preprocessing kind {kind!r}. Allowed: {', '.join(PREPROCESSING_KINDS)}")
    allowed = {"none": {"kind"}, "scale": {"kind", "scale"}, "standardize": {"kind", "mean", "variance"}}[kind]
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ValueError(f"preprocessing kind {kind!r} takes {', '.join(sorted(allowed))}. Received: {extra[0]}")
    if kind == "scale":
        scale = spec.get("scale")
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0:
            raise ValueError(f"preprocessing scale must be a number > 0. Received: scale={scale!r}")
        return {"kind": "scale", "scale": float(scale)}
    if kind == "standardize":
        mean = np.asarray(spec.get("mean", []), dtype="float64").ravel()
        variance = np.asarray(spec.get("variance", []), dtype="float64").ravel()
        if mean.size == 0 or mean.shape != variance.shape:
            raise ValueError(f"preprocessing standardize needs mean and variance of the same length. Received: "
                             f"{mean.size} means, {variance.size} variances")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(variance)) and np.all(variance > 0)):
            raise ValueError("preprocessing standardize needs finite means and variances > 0")
        return {"kind": "standardize", "mean": mean.tolist(), "variance": variance.tolist()}
    return {"kind": "none"}


def is_bounded(spec) -> bool:
    """Whether the model's units are [0, 1] (a sigmoid output, cross-entropy and Bernoulli
    likelihoods apply): every kind but "standardize"."""
    return check_preprocessing(spec)["kind"] != "standardize"


@keras.saving.register_keras_serializable(package="zoo")
class Standardize(keras.layers.Layer):
    """x' = (x − m) / √v over the last axis, or with `invert` x = √v·x' + m; m, v fixed."""

    def __init__(self, mean, variance, invert: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.mean = [float(v) for v in np.ravel(mean)]
        self.variance = [float(v) for v in np.ravel(variance)]
        self.invert = bool(invert)
        self._m = np.asarray(self.mean, "float32")
        self._s = np.sqrt(np.asarray(self.variance, "float32"))

    def call(self, x):
        x = keras.ops.cast(x, "float32")
        return x * self._s + self._m if self.invert else (x - self._m) / self._s

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "variance": self.variance, "invert": self.invert}


def make_preprocessing(spec):
    """(forward, inverse) layers of a spec; (None, None) for "none" (the model skips them)."""
    spec = check_preprocessing(spec)
    if spec["kind"] == "scale":
        return (keras.layers.Rescaling(spec["scale"], name="preprocess"),
                keras.layers.Rescaling(1.0 / spec["scale"], name="postprocess"))
    if spec["kind"] == "standardize":
        return (Standardize(spec["mean"], spec["variance"], name="preprocess"),
                Standardize(spec["mean"], spec["variance"], invert=True, name="postprocess"))
    return None, None
