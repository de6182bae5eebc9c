"""The stacked (deep) autoencoder."""

from __future__ import annotations

import keras

from zoo.configs.families import StackedHParams
from zoo.models.base import Autoencoder
from zoo.registry import register


@keras.saving.register_keras_serializable(package="zoo")
@register("stacked")
class StackedAutoencoder(Autoencoder):
    """Several hidden layers on each side of the code: F = f_L ∘ … ∘ f_1, G mirrors F.

    Minimises (1/N)·Σ_i ‖x_i − G(F(x_i))‖² (or the cross-entropy, loss="bce"). The extra
    layers let it capture non-linear structure a one-layer autoencoder cannot.
    Hyperparameters (`StackedHParams`): code_size, hidden (units, or filters for
    backbone="conv"; the decoder mirrors), backbone, activation, code_activation, loss,
    weight_decay.

    Example:
        >>> model = zoo.build("stacked", input_shape=(28, 28, 1), hidden=[512, 256], code_size=32)
    """

    HParams = StackedHParams
