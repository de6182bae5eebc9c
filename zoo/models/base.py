"""The autoencoder base class every family derives from."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from zoo.checks import check_choice, check_range
from zoo.layers.blocks import check_backbone, make_decoder, make_encoder
from zoo.sharding import sharded_train_step

RECONSTRUCTION_LOSSES = ("mse", "bce")


def num_replicas() -> int:
    """Replicas that share one global batch in the current `tf.distribute` context."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_mean(per_example):
    """Mean over the global batch of a per-example loss computed on this replica's slice.

    Keras 3 does not divide a loss written in `compute_loss` by the replica count; summing
    this value over replicas gives the mean over the global batch, which makes an N-replica
    step equal a one-device step with the same global batch.
    """
    return tf.nn.compute_average_loss(ops.cast(per_example, "float32"))


def per_example_sum(values):
    """Sums every axis but the batch axis."""
    return ops.sum(ops.reshape(values, (ops.shape(values)[0], -1)), axis=-1)


class Autoencoder(keras.Model):
    """x → code z = F(x | Θ) → x̂ = G(z | Φ), trained to minimise L(x, x̂).

    The reconstruction error per example is the squared error ‖x − x̂‖² (loss="mse") or the
    binary cross-entropy −Σ_d [x_d log x̂_d + (1−x_d) log(1−x̂_d)] (loss="bce"), both summed over
    pixels and averaged over the (global) batch. Optional L2 weight decay adds (λ/2)·Σ‖W‖².

    `call(x)` returns the reconstruction x̂ in [0, 1]. In training, `call` returns the dict of
    tensors the objective needs (`forward`), which Keras passes on to `compute_loss` as y_pred,
    so each step runs the network once.

    Args:
        input_shape: shape of one example, e.g. (28, 28, 1).
        code_size: size of the code z.
        hidden: hidden layer sizes of the encoder (unit counts for backbone="dense", filter
            counts for backbone="conv"); the decoder mirrors them.
        backbone: "dense" or "conv".
        activation: activation of the hidden layers.
        code_activation: activation of the code layer.
        loss: "mse" or "bce".
        weight_decay: λ ≥ 0.

    Attributes:
        batch_shards: shards of each training batch whose passes run side by side
            (`zoo.sharding`); a training setting (`train.batch_shards`), not saved with the model.
        per_example_objective: whether the objective is a mean over examples plus terms of the
            parameters only, which is what lets a batch be cut into shards.
    """

    per_example_objective = True
    batch_shards = 1

    def __init__(self, input_shape=(28, 28, 1), code_size: int = 32, hidden=(), backbone: str = "dense",
                 activation: str = "relu", code_activation: str = "linear", loss: str = "mse",
                 weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        hidden = list(hidden)
        check_range("code_size", code_size, 1)
        if not isinstance(code_size, int):
            raise ValueError(f"code_size must be a positive integer. Received: code_size={code_size!r}")
        check_backbone(backbone, input_shape, hidden)
        check_choice("loss", loss, RECONSTRUCTION_LOSSES)
        check_range("weight_decay", weight_decay, 0.0)
        self.input_shape_ = tuple(int(d) for d in input_shape)
        self.code_size = code_size
        self.hidden = hidden
        self.backbone = backbone
        self.activation = activation
        self.code_activation = code_activation
        self.loss_name = loss
        self.weight_decay = float(weight_decay)
        regularizer = keras.regularizers.L2(self.weight_decay / 2) if self.weight_decay else None
        self.encoder = make_encoder(self.input_shape_, hidden, self.encoder_units(), backbone=backbone,
                                    activation=activation, out_activation=self.code_activation_for_encoder(),
                                    kernel_regularizer=regularizer)
        self.decoder = make_decoder(code_size, hidden, self.input_shape_, backbone=backbone, activation=activation,
                                    out_channels=self.decoder_channels(), kernel_regularizer=regularizer)

    # Hooks that families override.
    def encoder_units(self) -> int:
        return self.code_size

    def code_activation_for_encoder(self):
        return self.code_activation

    def decoder_channels(self) -> int:
        return self.input_shape_[-1]

    def corrupt(self, x, training):
        """The input the encoder sees; identity here, noise in the denoising family."""
        return x

    def penalty(self, outputs):
        """Extra terms of the objective, already weighted, over the global batch; 0 here."""
        return None

    # The model.
    def encode(self, x):
        """The code z = F(x | Θ)."""
        return self.encoder(x)

    def decode(self, z):
        """The reconstruction x̂ = G(z | Φ), in [0, 1]."""
        return ops.sigmoid(ops.cast(self.decoder(z), "float32"))

    def forward(self, x, training=False) -> dict:
        """All tensors of one pass: code, logits (pre-sigmoid) and reconstruction."""
        code = self.encoder(self.corrupt(x, training), training=training)
        logits = ops.cast(self.decoder(code, training=training), "float32")
        return {"code": code, "logits": logits, "reconstruction": ops.sigmoid(logits)}

    def train_step(self, data):
        if self.batch_shards > 1:
            return sharded_train_step(self, data, self.batch_shards)
        return super().train_step(data)

    def call(self, inputs, training=False):
        outputs = self.forward(inputs, training=training)
        return outputs if training else outputs["reconstruction"]

    def reconstruction_error(self, target, outputs):
        """Per-example ‖x − x̂‖² or binary cross-entropy, summed over pixels."""
        target = ops.cast(target, "float32")
        if self.loss_name == "bce":
            return per_example_sum(ops.binary_crossentropy(target, outputs["logits"], from_logits=True))
        return per_example_sum(ops.square(target - outputs["reconstruction"]))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        outputs = y_pred if isinstance(y_pred, dict) else self.forward(x, training=False)
        target = x if y is None else y
        loss = replica_mean(self.reconstruction_error(target, outputs))
        extra = self.penalty(outputs)
        if extra is not None:
            loss += extra / num_replicas()
        if self.losses:
            loss += ops.sum([ops.cast(v, "float32") for v in self.losses]) / num_replicas()
        return loss

    def get_config(self):
        return {
            **super().get_config(),
            "input_shape": list(self.input_shape_),
            "code_size": self.code_size,
            "hidden": list(self.hidden),
            "backbone": self.backbone,
            "activation": self.activation,
            "code_activation": self.code_activation,
            "loss": self.loss_name,
            "weight_decay": self.weight_decay,
        }
