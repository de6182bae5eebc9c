"""The basic autoencoder: input → one code layer → output."""

from __future__ import annotations

import keras

from zoo.models.base import Autoencoder
from zoo.registry import register


@keras.saving.register_keras_serializable(package="zoo")
@register("basic")
class BasicAutoencoder(Autoencoder):
    """The one-layer autoencoder z = a(Wx + b), x̂ = sigmoid(W'z + b').

    Minimises (1/N)·Σ_i ‖x_i − x̂_i‖² (or the cross-entropy, loss="bce"). With no hidden layers
    the backbone is necessarily dense; for a convolutional autoencoder use "stacked" with
    backbone="conv".

    Args:
        input_shape: shape of one example.
        code_size: units of the code layer.
        code_activation: activation a of the code layer.
        loss: "mse" or "bce".
        weight_decay: λ ≥ 0 of the L2 penalty (λ/2)·Σ‖W‖².

    Example:
        >>> model = zoo.build("basic", input_shape=(28, 28, 1), code_size=64)
    """

    def __init__(self, input_shape=(28, 28, 1), code_size: int = 64, code_activation: str = "relu",
                 loss: str = "mse", weight_decay: float = 0.0, **kwargs):
        kwargs.pop("hidden", None), kwargs.pop("backbone", None), kwargs.pop("activation", None)
        super().__init__(input_shape=input_shape, code_size=code_size, hidden=(), backbone="dense",
                         code_activation=code_activation, loss=loss, weight_decay=weight_decay, **kwargs)

    def get_config(self):
        config = super().get_config()
        for key in ("hidden", "backbone", "activation"):
            config.pop(key)
        return config
