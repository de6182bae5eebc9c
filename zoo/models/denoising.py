"""The denoising autoencoder."""

from __future__ import annotations

import keras

from zoo.configs.families import DenoisingHParams
from zoo.layers.noise import make_noise
from zoo.models.base import Autoencoder
from zoo.registry import register


@keras.saving.register_keras_serializable(package="zoo")
@register("denoising")
class DenoisingAutoencoder(Autoencoder):
    """Reconstructs the clean x from a corrupted x̃ ~ q(x̃ | x).

    L = (1/N)·Σ_i ‖x_i − G(F(x̃_i))‖² (or the cross-entropy): the target is the clean input.
    Corruption acts only in training; at inference the model encodes what it is given, so its
    anomaly score is the reconstruction error of the clean input. The noise is one of
    `zoo.configs.noises.NOISES`: "gaussian" x̃ = x + ε, ε ~ N(0, σ²); "salt_pepper" (each value
    kept with 1−p, set to v_min or v_max with p/2 each); "masking" x̃ = x ⊙ m, m ~ Bernoulli(1−p).
    Hyperparameters (`DenoisingHParams`): those of "stacked" and `noise`, a table
    `{"kind": ..., **params}`.

    Example:
        >>> model = zoo.build("denoising", noise={"kind": "gaussian", "stddev": 0.3})
    """

    HParams = DenoisingHParams

    def __init__(self, input_shape=(28, 28, 1), **kwargs):
        super().__init__(input_shape=input_shape, **kwargs)
        self.noise = make_noise(self.hparams.noise)

    def corrupt(self, x, training):
        return self.noise(x, training=training)

    @property
    def training_noise(self) -> dict:
        """The recipe's noise table: the benchmark scores this model against the baseline on it."""
        return dict(self.hparams.noise)
