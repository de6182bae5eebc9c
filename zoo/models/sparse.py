"""The sparse autoencoder."""

from __future__ import annotations

import keras
import numpy as np

from zoo.configs.families import SparseHParams
from zoo.layers.sparsity import KLSparsity
from zoo.models.base import Autoencoder
from zoo.registry import register


@keras.saving.register_keras_serializable(package="zoo")
@register("sparse")
class SparseAutoencoder(Autoencoder):
    """An autoencoder whose sigmoid code h is kept sparse by a KL penalty.

    L = (1/N)·Σ_i ‖x_i − x̂_i‖² + β·Σ_{j=1}^{m} KL(ρ ‖ ρ̂_j) + (λ/2)·Σ‖W‖²,

    with ρ̂_j = (1/N)·Σ_i h_j^(i) the mean activation of code unit j over the batch (the global
    batch under `tf.distribute`, see `KLSparsity`), ρ the target activation and m = code_size.
    The code may be over-complete (m larger than the input). Reports `mean_activation`,
    the mean over j of ρ̂_j. The penalty is a statistic of a batch, not of one example, so the
    per-example anomaly score is the reconstruction term alone.
    Hyperparameters (`SparseHParams`): code_size m, rho ρ in (0, 1), beta β ≥ 0,
    weight_decay λ, hidden, backbone, activation, loss.

    Example:
        >>> model = zoo.build("sparse", input_shape=(28, 28, 1), code_size=196, rho=0.05, beta=3.0)
    """

    HParams = SparseHParams

    def __init__(self, input_shape=(28, 28, 1), **kwargs):
        super().__init__(input_shape=input_shape, **kwargs)
        self.sparsity = KLSparsity(self.hparams.rho)
        self.rho = self.sparsity.rho
        self.beta = self.hparams.beta
        self.mean_activation_tracker = keras.metrics.Mean(name="mean_activation")
        self.sparsity_tracker = keras.metrics.Mean(name="sparsity_penalty")

    def penalty(self, outputs):
        omega, mean_activation = self.sparsity(outputs["code"])
        self.mean_activation_tracker.update_state(mean_activation)
        self.sparsity_tracker.update_state(omega)
        return self.beta * omega

    def evaluation_metrics(self, x, settings) -> dict:
        """mean_activation: (1/m)·Σ_j ρ̂_j over the test set, beside the target ρ."""
        codes = [np.asarray(self.encode(x[i:i + settings.batch_size])) for i in range(0, len(x), settings.batch_size)]
        return {"mean_activation": float(np.mean(np.concatenate(codes))), "rho": float(self.rho)}
