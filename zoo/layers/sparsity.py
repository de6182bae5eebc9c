"""The KL sparsity penalty of the sparse autoencoder."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from zoo.checks import check_range


def global_batch_mean(h):
    """Mean of h over the batch axis, over the *global* batch under `tf.distribute`.

    Each replica sees a slice of the batch; the activation sums and counts are all-reduced so
    that ρ̂_j is the same on every replica and equals the single-device value. The all-reduce is
    differentiable, so gradients flow to every replica's slice.
    """
    total = ops.sum(h, axis=0)
    count = ops.cast(ops.shape(h)[0], h.dtype)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        total, count = context.all_reduce(tf.distribute.ReduceOp.SUM, [total, count])
    return total / count


@keras.saving.register_keras_serializable(package="zoo")
class KLSparsity(keras.layers.Layer):
    """Ω(h | m, ρ) = Σ_{j=1}^{m} KL(ρ ‖ ρ̂_j), the sparsity penalty of a sigmoid code h.

    KL(ρ ‖ ρ̂_j) = ρ·log(ρ/ρ̂_j) + (1−ρ)·log((1−ρ)/(1−ρ̂_j)), with ρ̂_j = (1/N)·Σ_i h_j^(i) the
    mean activation of code unit j over the batch of N examples. The layer returns the pair
    (Ω, mean_j ρ̂_j); the model multiplies Ω by β.

    Args:
        rho: the target activation ρ in (0, 1).
    """

    def __init__(self, rho: float = 0.05, **kwargs):
        super().__init__(**kwargs)
        check_range("rho", rho, 0.0, 1.0, low_open=True, high_open=True)
        self.rho = float(rho)
        self.built = True  # no weights

    def call(self, h):
        h = ops.cast(h, "float32")
        rho_hat = ops.clip(global_batch_mean(h), 1e-7, 1.0 - 1e-7)
        rho = self.rho
        kl = rho * ops.log(rho / rho_hat) + (1.0 - rho) * ops.log((1.0 - rho) / (1.0 - rho_hat))
        return ops.sum(kl), ops.mean(rho_hat)

    def compute_output_spec(self, h):
        return keras.KerasTensor((), "float32"), keras.KerasTensor((), "float32")

    def get_config(self):
        return {**super().get_config(), "rho": self.rho}
