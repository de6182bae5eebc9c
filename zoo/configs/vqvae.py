"""The hyperparameters of the vector-quantized autoencoder (`zoo.models.vqvae`), checked without TensorFlow."""

from __future__ import annotations

import dataclasses
import typing

from zoo.configs.families import AutoencoderHParams
from zoo.configs.schema import param
from zoo.registry import HPARAMS

CODEBOOK_UPDATES = ("loss", "ema")


@HPARAMS.register("vqvae")
@dataclasses.dataclass(frozen=True)
class VQVAEHParams(AutoencoderHParams):
    """An encoder to L = code_size / D vectors of D dimensions, each replaced by its nearest entry of a
    codebook of K entries; see `zoo.models.vqvae.VQVAE`.

    The code a consumer sees (`encode`) is the L quantized vectors flattened, of size code_size = L·D;
    the discrete code is the L indices. codebook_update: "loss" (the codebook term ‖sg[z_e] − e‖² of
    the objective) or "ema", the default and the steadier (exponential moving averages of the
    assigned encoder outputs, decay γ = `ema_decay`). The first training step places every entry
    on a random encoder output of the batch, and an entry no example used for `restart_after`
    steps moves onto another one (0: never). The prior over the L indices is a PixelCNN of `prior_layers`
    masked layers of `prior_filters` channels, trained for `prior_epochs` on the frozen encoder's
    indices after the main fit.
    """

    # The codebook statistics (usage counts, the EMA sums, the restarts) are of the whole batch.
    per_example_objective: typing.ClassVar[bool] = False

    code_size: int = param(64, low=1, doc="L·D: the L quantized vectors of D dimensions, flattened")
    hidden: tuple[int, ...] = param((512, 256), item_low=1)
    embedding_dim: int = param(4, low=1, doc="D: the size of one code vector and of a codebook entry")
    num_embeddings: int = param(64, low=2, high=65536, doc="K: the entries of the codebook")
    commitment: float = param(0.25, low=0.0, doc="β: the weight of the commitment term β‖z_e − sg[e]‖²")
    codebook_update: str = param("ema", choices=CODEBOOK_UPDATES)
    ema_decay: float = param(0.99, low=0.0, high=1.0, high_open=True, doc="γ of the EMA codebook update")
    restart_after: int = param(100, low=0, doc="steps an entry may go unused before it is restarted (0: never)")
    prior_epochs: int = param(5, low=0, doc="epochs of the prior's training on the frozen encoder's indices")
    prior_filters: int = param(64, low=1, doc="channels of the PixelCNN prior")
    prior_layers: int = param(3, low=1, doc="masked layers of the PixelCNN prior (one type A, then type B)")
    prior_learning_rate: float = param(1e-3, low=0.0, low_open=True, doc="Adam's rate for the prior")
    seed: int | None = param(None, low=0, high=2 ** 31 - 1, doc="seed of the codebook, the restarts and the samples")
    code_activation: str = dataclasses.field(default="linear", init=False, repr=False)

    def check(self) -> None:
        if self.code_size % self.embedding_dim:
            raise ValueError(f"code_size must be a multiple of embedding_dim (code_size = L·D, L code vectors of "
                             f"D dimensions). Received: code_size={self.code_size}, embedding_dim={self.embedding_dim}")

    @property
    def code_length(self) -> int:
        """L, the number of code vectors (and of indices) per example."""
        return self.code_size // self.embedding_dim

    def parameter_count(self, input_shape) -> int:
        k, d, f, length = self.num_embeddings, self.embedding_dim, self.prior_filters, self.code_length
        # The PixelCNN: type A (kernel 2L − 1 over one-hot inputs), type B layers (kernel 3), a 1×1 head.
        prior = (2 * length - 1) * k * f + f + (self.prior_layers - 1) * (3 * f * f + f) + f * k + k
        # The quantizer: the codebook, the EMA counts N_k and sums m_k, the unused-step counts, a call count.
        quantizer = 2 * k * d + 2 * k + 1
        return super().parameter_count(input_shape) + quantizer + prior
