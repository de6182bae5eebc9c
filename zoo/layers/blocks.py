"""Encoder and decoder backbones: dense (MLP) or convolutional, sized by config.

The shapes they accept are checked before building, by `zoo.configs.families.check_backbone`.
"""

from __future__ import annotations

import math

import keras

from zoo.configs.families import conv_grid


def _conv_layers(rank: int):
    """(Conv, ConvTranspose, ZeroPadding, Cropping) for images (rank 3) or windows (rank 2)."""
    L = keras.layers
    return ((L.Conv2D, L.Conv2DTranspose, L.ZeroPadding2D, L.Cropping2D) if rank == 3
            else (L.Conv1D, L.Conv1DTranspose, L.ZeroPadding1D, L.Cropping1D))


def _padding(shape, depth: int) -> tuple:
    """Zeros to add after each spatial axis so that `depth` halvings divide it exactly."""
    return tuple(g * 2 ** depth - int(d) for g, d in zip(conv_grid(shape, depth), tuple(shape)[:-1]))


def _pad_spec(pads: tuple):
    return ((0, pads[0]), (0, pads[1])) if len(pads) == 2 else (0, pads[0])


def make_encoder(input_shape, hidden, out_units, *, backbone="dense", activation="relu",
                 out_activation=None, kernel_regularizer=None, name="encoder") -> keras.Sequential:
    """x → features. Dense: Flatten, Dense(h) for h in hidden, Dense(out_units).

    Conv: a stride-2 convolution (3×3 on images (H, W, C), 3 taps on windows (T, C)) per entry of
    hidden (its filter count), then Flatten and Dense(out_units). Sizes that 2^len(hidden) does not
    divide are zero-padded after the last row/column first.
    """
    reg = {"kernel_regularizer": kernel_regularizer}
    layers = [keras.Input(tuple(input_shape))]
    if backbone == "conv":
        conv, _, pad, _ = _conv_layers(len(input_shape))
        pads = _padding(input_shape, len(hidden))
        if any(pads):
            layers.append(pad(_pad_spec(pads)))
        layers += [conv(f, 3, strides=2, padding="same", activation=activation, **reg) for f in hidden]
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
    outputs become a reconstruction or distribution parameters. A conv decoder crops the padding
    the encoder added, so its output always has `output_shape`.
    """
    reg = {"kernel_regularizer": kernel_regularizer}
    output_shape = tuple(output_shape)
    channels = out_channels or output_shape[-1]
    layers = [keras.Input((code_size,))]
    if backbone == "conv":
        _, transpose, _, crop = _conv_layers(len(output_shape))
        start = (*conv_grid(output_shape, len(hidden)), hidden[-1])
        layers += [keras.layers.Dense(math.prod(start), activation=activation, **reg), keras.layers.Reshape(start)]
        for f in list(hidden[::-1][1:]):
            layers.append(transpose(f, 3, strides=2, padding="same", activation=activation, **reg))
        layers.append(transpose(channels, 3, strides=2, padding="same", **reg))
        pads = _padding(output_shape, len(hidden))
        if any(pads):
            layers.append(crop(_pad_spec(pads)))
    else:
        layers += [keras.layers.Dense(h, activation=activation, **reg) for h in hidden[::-1]]
        layers.append(keras.layers.Dense(math.prod(output_shape[:-1]) * channels, **reg))
        layers.append(keras.layers.Reshape(output_shape[:-1] + (channels,)))
    return keras.Sequential(layers, name=name)
