"""The sparse autoencoder."""

from __future__ import annotations

import keras

from zoo.checks import check_range
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
    the mean over j of ρ̂_j.

    Args:
        input_shape: shape of one example.
        code_size: m, units of the sigmoid code.
        rho: ρ in (0, 1).
        beta: β ≥ 0, weight of the sparsity penalty.
        weight_decay: λ ≥ 0.
        hidden: hidden layer sizes before the code (none: the classic one-layer model).
        backbone: "dense" or "conv".
        activation: activation of the hidden layers.
        loss: "mse" or "bce".

    Example:
        >>> model = zoo.build("sparse", input_shape=(28, 28, 1), code_size=196, rho=0.05, beta=3.0)
    """

    per_example_objective = False  # ρ̂ is a statistic of the whole batch: no batch shards

    def __init__(self, input_shape=(28, 28, 1), code_size: int = 196, rho: float = 0.05, beta: float = 3.0,
                 weight_decay: float = 0.0, hidden=(), backbone: str = "dense", activation: str = "relu",
                 loss: str = "mse", **kwargs):
        kwargs.pop("code_activation", None)
        check_range("beta", beta, 0.0)
        super().__init__(input_shape=input_shape, code_size=code_size, hidden=hidden, backbone=backbone,
                         activation=activation, code_activation="sigmoid", loss=loss,
                         weight_decay=weight_decay, **kwargs)
        self.sparsity = KLSparsity(rho)
        self.rho = self.sparsity.rho
        self.beta = float(beta)
        self.mean_activation_tracker = keras.metrics.Mean(name="mean_activation")
        self.sparsity_tracker = keras.metrics.Mean(name="sparsity_penalty")

    def penalty(self, outputs):
        omega, mean_activation = self.sparsity(outputs["code"])
        self.mean_activation_tracker.update_state(mean_activation)
        self.sparsity_tracker.update_state(omega)
        return self.beta * omega

    def get_config(self):
        config = super().get_config()
        config.pop("code_activation")
        return {**config, "rho": self.rho, "beta": self.beta}
