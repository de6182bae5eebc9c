"""The basic autoencoder: input → one code layer → output."""

from __future__ import annotations

import keras

from zoo.configs.families import BasicHParams
from zoo.models.base import Autoencoder
from zoo.registry import register


@keras.saving.register_keras_serializable(package="zoo")
@register("basic")
class BasicAutoencoder(Autoencoder):
    """The one-layer autoencoder z = a(Wx + b), x̂ = sigmoid(W'z + b').

    Minimises (1/N)·Σ_i ‖x_i − x̂_i‖² (or the cross-entropy, loss="bce"). With no hidden layers
    the backbone is necessarily dense; for a convolutional autoencoder use "stacked" with
    backbone="conv". Hyperparameters (`BasicHParams`): code_size, code_activation a, loss,
    weight_decay λ of the L2 penalty (λ/2)·Σ‖W‖².

    Example:
        >>> model = zoo.build("basic", input_shape=(28, 28, 1), code_size=64)
    """

    HParams = BasicHParams
