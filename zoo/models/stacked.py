"""The stacked (deep) autoencoder."""

from __future__ import annotations

import keras

from zoo.models.base import Autoencoder
from zoo.registry import register


@keras.saving.register_keras_serializable(package="zoo")
@register("stacked")
class StackedAutoencoder(Autoencoder):
    """Several hidden layers on each side of the code: F = f_L ∘ … ∘ f_1, G mirrors F.

    Minimises (1/N)·Σ_i ‖x_i − G(F(x_i))‖² (or the cross-entropy, loss="bce"). The extra
    layers let it capture non-linear structure a one-layer autoencoder cannot.

    Args:
        input_shape: shape of one example.
        code_size: size of the code.
        hidden: encoder layer sizes (units, or filters for backbone="conv"); the decoder mirrors.
        backbone: "dense" or "conv".
        activation: activation of the hidden layers.
        code_activation: activation of the code layer.
        loss: "mse" or "bce".
        weight_decay: λ ≥ 0 of the L2 penalty (λ/2)·Σ‖W‖².

    Example:
        >>> model = zoo.build("stacked", input_shape=(28, 28, 1), hidden=[512, 256], code_size=32)
    """

    def __init__(self, input_shape=(28, 28, 1), code_size: int = 32, hidden=(512, 256), backbone: str = "dense",
                 activation: str = "relu", code_activation: str = "linear", loss: str = "mse",
                 weight_decay: float = 0.0, **kwargs):
        super().__init__(input_shape=input_shape, code_size=code_size, hidden=hidden, backbone=backbone,
                         activation=activation, code_activation=code_activation, loss=loss,
                         weight_decay=weight_decay, **kwargs)
