"""Encoder and decoder backbones: dense (MLP) or convolutional, sized by config.

The shapes they accept are checked before building, by `zoo.configs.families.check_backbone`.
"""

from __future__ import annotations

import math

import keras


def make_encoder(input_shape, hidden, out_units, *, backbone="dense", activation="relu",
                 out_activation=None, kernel_regularizer=None, name="encoder") -> keras.Sequential:
    """x → features. Dense: Flatten, Dense(h) for h in hidden, Dense(out_units).

    Conv: a stride-2 3×3 convolution per entry of hidden (its filter count), then Flatten and
    Dense(out_units).
    """
    reg = {"kernel_regularizer": kernel_regularizer}
    layers = [keras.Input(tuple(input_shape))]
    if backbone == "conv":
        layers += [keras.layers.Conv2D(f, 3, strides=2, padding="same", activation=activation, **reg) for f in hidden]
        layers.append(keras.layers.Flatten())
    else:
        layers.append(keras.layers.Flatten())
        layers += [keras.layers.Dense(h, activation=activation, **reg) for h in hidden]
    layers.append(keras.layers.Dense(out_units, activation=out_activation, name="code", **reg))
    return keras.Sequential(layers, name=name)


def make_decoder(code_size, hidden, output_shape, *, backbone="dense", activation="relu",
                 out_channels=None, kernel_regularizer=None, name="decoder") -> keras.Sequential:
    """z → unconstrained outputs of shape output_shape (the last axis scaled by out_channels).

    The mirror image of `make_encoder`; the last layer is linear, so the model decides how
    outputs become a reconstruction or distribution parameters.
    """
    reg = {"kernel_regularizer": kernel_regularizer}
    output_shape = tuple(output_shape)
    channels = out_channels or output_shape[-1]
    layers = [keras.Input((code_size,))]
    if backbone == "conv":
        factor = 2 ** len(hidden)
        start = (output_shape[0] // factor, output_shape[1] // factor, hidden[-1])
        layers += [keras.layers.Dense(math.prod(start), activation=activation, **reg), keras.layers.Reshape(start)]
        for f in list(hidden[::-1][1:]):
            layers.append(keras.layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation=activation, **reg))
        layers.append(keras.layers.Conv2DTranspose(channels, 3, strides=2, padding="same", **reg))
    else:
        layers += [keras.layers.Dense(h, activation=activation, **reg) for h in hidden[::-1]]
        layers.append(keras.layers.Dense(math.prod(output_shape[:-1]) * channels, **reg))
        layers.append(keras.layers.Reshape(output_shape[:-1] + (channels,)))
    return keras.Sequential(layers, name=name)
