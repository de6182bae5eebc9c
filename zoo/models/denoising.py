"""The denoising autoencoder."""

from __future__ import annotations

import keras

from zoo.layers.noise import make_noise
from zoo.models.base import Autoencoder
from zoo.registry import register


@keras.saving.register_keras_serializable(package="zoo")
@register("denoising")
class DenoisingAutoencoder(Autoencoder):
    """Reconstructs the clean x from a corrupted x̃ ~ q(x̃ | x).

    L = (1/N)·Σ_i ‖x_i − G(F(x̃_i))‖² (or the cross-entropy): the target is the clean input.
    Corruption acts only in training; at inference the model encodes what it is given. The
    noise is one of `zoo.layers.NOISES`: "gaussian" x̃ = x + ε, ε ~ N(0, σ²); "salt_pepper"
    (each value kept with 1−p, set to v_min or v_max with p/2 each); "masking" x̃ = x ⊙ m,
    m ~ Bernoulli(1−p).

    Args:
        input_shape: shape of one example.
        code_size: size of the code.
        noise: `{"kind": "gaussian" | "salt_pepper" | "masking", **params}`, e.g.
            `{"kind": "masking", "rate": 0.3}`.
        hidden, backbone, activation, code_activation, loss, weight_decay: as in "stacked".

    Example:
        >>> model = zoo.build("denoising", noise={"kind": "gaussian", "stddev": 0.3})
    """

    def __init__(self, input_shape=(28, 28, 1), code_size: int = 32, noise=None, hidden=(512, 256),
                 backbone: str = "dense", activation: str = "relu", code_activation: str = "linear",
                 loss: str = "mse", weight_decay: float = 0.0, **kwargs):
        super().__init__(input_shape=input_shape, code_size=code_size, hidden=hidden, backbone=backbone,
                         activation=activation, code_activation=code_activation, loss=loss,
                         weight_decay=weight_decay, **kwargs)
        self.noise = make_noise(noise or {"kind": "gaussian", "stddev": 0.3})

    def corrupt(self, x, training):
        return self.noise(x, training=training)

    def get_config(self):
        return {**super().get_config(), "noise": self.noise.spec()}
