"""Masked convolutions and the small PixelCNN over a sequence of code indices (van den Oord et al. 2016)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class MaskedConv1D(keras.layers.Layer):
    """A 1-D convolution ("same" padding, odd kernel) whose taps never read later positions.

    Type "A" zeroes the centre tap and the taps after it, so output i depends on inputs j < i only;
    type "B" keeps the centre, output i depends on j ≤ i. A stack of one A layer then B layers is
    autoregressive: position i of the output sees the inputs strictly before i.

    Args:
        filters: output channels.
        kernel_size: taps, odd.
        mask_type: "A" or "B".
        activation: a Keras activation name, or None.
    """

    def __init__(self, filters, kernel_size, mask_type="B", activation=None, **kwargs):
        super().__init__(**kwargs)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be one of A, B. Received: mask_type={mask_type!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer. Received: kernel_size={kernel_size}")
        self.filters, self.kernel_size, self.mask_type = int(filters), int(kernel_size), mask_type
        self.activation = keras.activations.get(activation)
        self.activation_name = activation
        centre = self.kernel_size // 2
        taps = np.arange(self.kernel_size)
        self.mask = ((taps < centre) if mask_type == "A" else (taps <= centre)).astype("float32")[:, None, None]

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(self.kernel_size, int(input_shape[-1]), self.filters), name="kernel",
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(self.filters,), name="bias", initializer="zeros")

    def call(self, x):
        kernel = self.kernel * ops.cast(self.mask, self.kernel.dtype)
        y = ops.conv(x, ops.cast(kernel, x.dtype), padding="same") + ops.cast(self.bias, x.dtype)
        return self.activation(y) if self.activation_name else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "mask_type": self.mask_type, "activation": self.activation_name}


@keras.saving.register_keras_serializable(package="zoo")
class PixelCNNPrior(keras.layers.Layer):
    """p(k_1, …, k_L) = Π_i p(k_i | k_<i): categorical logits over K for each of L code indices.

    The indices enter one-hot; a type-A masked layer of kernel 2L − 1 lets position i see every
    earlier position at once, then type-B layers of kernel 3 with residual connections, and a 1×1
    layer to K logits. Logits at i depend on k_<i only, so −Σ_i log p(k_i | k_<i) (the cross-entropy
    of the logits against the indices themselves) is the exact negative log-likelihood, and
    sampling draws k_1, then k_2 given k_1, and so on.

    Args:
        num_embeddings: K.
        length: L.
        filters: channels of the hidden layers.
        num_layers: masked layers (one of type A, the others of type B).
    """

    def __init__(self, num_embeddings, length, filters=64, num_layers=3, **kwargs):
        super().__init__(**kwargs)
        self.num_embeddings, self.length = int(num_embeddings), int(length)
        self.filters, self.num_layers = int(filters), int(num_layers)
        self.first = MaskedConv1D(self.filters, 2 * self.length - 1, "A", activation="relu", name="mask_a")
        self.blocks = [MaskedConv1D(self.filters, 3, "B", activation="relu", name=f"mask_b{i}")
                       for i in range(1, self.num_layers)]
        self.head = MaskedConv1D(self.num_embeddings, 1, "B", name="logits")

    def build(self, input_shape):
        shape = (None, self.length, self.num_embeddings)
        self.first.build(shape)
        for block in self.blocks:
            block.build((None, self.length, self.filters))
        self.head.build((None, self.length, self.filters))

    def call(self, indices):
        h = self.first(ops.one_hot(ops.cast(indices, "int32"), self.num_embeddings, dtype=self.compute_dtype))
        for block in self.blocks:
            h = h + block(h)
        return ops.cast(self.head(h), "float32")

    def negative_log_likelihood(self, indices):
        """−log p(k) per example, in nats: the cross-entropy summed over the L positions."""
        logits = self(indices)
        return ops.sum(ops.sparse_categorical_crossentropy(ops.cast(indices, "int32"), logits, from_logits=True),
                       axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.num_embeddings)

    def get_config(self):
        return {**super().get_config(), "num_embeddings": self.num_embeddings, "length": self.length,
                "filters": self.filters, "num_layers": self.num_layers}
