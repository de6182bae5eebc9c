"""The built-in families' hyperparameters, checked without TensorFlow.

Each dataclass lists exactly the constructor arguments of its family (besides `input_shape`);
the family stores one and returns `to_dict()` from `get_config`, so the recipe, the model and
its `.keras` file agree key for key. A new family declares its own `HParams` beside its model
(see docs/adding_a_family.md).
"""

from __future__ import annotations

import dataclasses
import math
import typing

from zoo.configs.noises import check_noise
from zoo.configs.schema import HParams, param
from zoo.registry import HPARAMS

BACKBONES = ("dense", "conv")
LOSSES = ("mse", "bce")
#: Activations by Keras name; a recipe may name only these (no arbitrary callables).
ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish", "tanh", "sigmoid",
               "hard_sigmoid", "softplus", "softsign", "exponential", "linear")
LIKELIHOODS = ("bernoulli", "gaussian", "continuous_bernoulli")
PRIORS = ("normal", "mixture", "vamp")
VAE_OBJECTIVES = ("elbo", "beta_tcvae")
GRADIENTS = ("reparameterization", "score_function")
SCORE_BASELINES = ("none", "leave_one_out")


def check_backbone(backbone: str, input_shape, hidden) -> None:
    """A conv backbone needs images (H, W, C) or windows (T, C), and filters in `hidden`.

    Any height, width or length works: the encoder pads the input up to a multiple of 2^len(hidden)
    (each entry halves it) and the decoder crops its output back to the input's shape.
    """
    if not input_shape or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in input_shape):
        raise ValueError(f"input_shape must be a list of positive integers. Received: input_shape={list(input_shape)}")
    if backbone != "conv":
        return
    if len(input_shape) not in (2, 3):
        raise ValueError(f"backbone='conv' needs images (H, W, C) or windows (T, C); table rows (F,) take "
                         f"backbone='dense'. Received: input_shape={tuple(input_shape)}")
    if not hidden:
        raise ValueError("backbone='conv' needs at least one filter count in hidden. Received: hidden=[]")


def conv_grid(input_shape, depth: int) -> tuple:
    """The spatial shape after `depth` stride-2 layers of a conv backbone: ⌈H/2^depth⌉ (, ⌈W/2^depth⌉)."""
    factor = 2 ** depth
    return tuple(-(-int(d) // factor) for d in tuple(input_shape)[:-1])


def backbone_parameters(input_shape, hidden, backbone: str, encoder_units: int, code_size: int,
                        out_channels: int) -> int:
    """Weights of `zoo.layers.blocks.make_encoder` + `make_decoder`, counted from the shapes alone."""
    shape, hidden = tuple(input_shape), list(hidden)

    def dense(sizes):
        return sum(a * b + b for a, b in zip(sizes, sizes[1:]))

    if backbone == "conv":
        taps = 3 ** (len(shape) - 1)  # a 3×3 kernel on images, 3 on windows
        count, channels = 0, shape[-1]
        for f in hidden:
            count, channels = count + taps * channels * f + f, f
        cells = math.prod(conv_grid(shape, len(hidden)))
        count += dense([cells * hidden[-1], encoder_units]) + dense([code_size, cells * hidden[-1]])
        channels = hidden[-1]
        for f in [*hidden[::-1][1:], out_channels]:
            count, channels = count + taps * channels * f + f, f
        return count
    pixels = math.prod(shape[:-1]) if len(shape) > 1 else 1
    return (dense([math.prod(shape), *hidden, encoder_units])
            + dense([code_size, *hidden[::-1], pixels * out_channels]))


@dataclasses.dataclass(frozen=True)
class AutoencoderHParams(HParams):
    """x → z = F(x | Θ) → x̂ = G(z | Φ); see `zoo.models.base.Autoencoder`."""

    #: Whether the model's inputs carry class labels (`Autoencoder.takes_labels` reads it), so
    #: that a recipe on data without labels is refused before anything is built.
    takes_labels: typing.ClassVar[bool] = False

    code_size: int = param(32, low=1, doc="size of the code z")
    hidden: tuple[int, ...] = param((), item_low=1, doc="encoder layer sizes (filters for conv); the decoder mirrors")
    backbone: str = param("dense", choices=BACKBONES)
    activation: str = param("relu", choices=ACTIVATIONS)
    code_activation: str = param("linear", choices=ACTIVATIONS)
    loss: str = param("mse", choices=LOSSES)
    weight_decay: float = param(0.0, low=0.0, doc="λ of the L2 penalty (λ/2)·Σ‖W‖²")

    def check_shape(self, input_shape) -> None:
        """Checks that involve the data's shape."""
        check_backbone(self.backbone, input_shape, self.hidden)

    def check_units(self, bounded: bool) -> None:
        """Checks that involve the data's units: `bounded` when the model's units are [0, 1]
        (images), False when standardized (tables, series), where cross-entropy does not apply."""
        if not bounded and self.loss == "bce":
            raise ValueError("loss='bce' needs values in [0, 1], but tables and series are standardized "
                             "(mean 0, variance 1): use loss='mse'")

    def check_labels(self, labels) -> None:
        """Checks that involve the data's labels (an int array, None when the data has none)."""

    def encoder_units(self) -> int:
        return self.code_size

    def encoder_input_shape(self, input_shape) -> tuple:
        """The shape of what the encoder reads for one example: the example itself here."""
        return tuple(input_shape)

    def decoder_input_size(self) -> int:
        """The width of what the decoder reads: the code z here."""
        return self.code_size

    def parameter_count(self, input_shape) -> int:
        return backbone_parameters(input_shape, self.hidden, self.backbone, self.encoder_units(), self.code_size,
                                   tuple(input_shape)[-1])


@HPARAMS.register("basic")
@dataclasses.dataclass(frozen=True)
class BasicHParams(AutoencoderHParams):
    """One code layer z = a(Wx + b): no hidden layers, a dense backbone."""

    code_size: int = param(64, low=1)
    code_activation: str = param("relu", choices=ACTIVATIONS)
    hidden: tuple[int, ...] = dataclasses.field(default=(), init=False, repr=False)
    backbone: str = dataclasses.field(default="dense", init=False, repr=False)
    activation: str = dataclasses.field(default="relu", init=False, repr=False)


@HPARAMS.register("stacked")
@dataclasses.dataclass(frozen=True)
class StackedHParams(AutoencoderHParams):
    """Several hidden layers on each side of the code."""

    hidden: tuple[int, ...] = param((512, 256), item_low=1)


@HPARAMS.register("denoising")
@dataclasses.dataclass(frozen=True)
class DenoisingHParams(StackedHParams):
    """A stacked autoencoder trained on corrupted inputs x̃ ~ q(x̃ | x)."""

    noise: dict = param({"kind": "gaussian", "stddev": 0.3}, doc="{kind = gaussian | salt_pepper | masking, ...}")

    def check(self) -> None:
        check_noise(self.noise, "noise")


@HPARAMS.register("sparse")
@dataclasses.dataclass(frozen=True)
class SparseHParams(AutoencoderHParams):
    """A sigmoid code kept sparse by β·Σ_j KL(ρ ‖ ρ̂_j)."""

    per_example_objective: typing.ClassVar[bool] = False  # ρ̂ is a statistic of the whole batch

    code_size: int = param(196, low=1)
    rho: float = param(0.05, low=0.0, high=1.0, low_open=True, high_open=True, doc="target activation ρ")
    beta: float = param(3.0, low=0.0, doc="weight β of the sparsity penalty")
    code_activation: str = dataclasses.field(default="sigmoid", init=False, repr=False)


@HPARAMS.register("vae")
@dataclasses.dataclass(frozen=True)
class VAEHParams(AutoencoderHParams):
    """q_φ(z|x), p(z), p_θ(x|z) trained on −ELBO; see `zoo.models.vae.VariationalAutoencoder`.

    prior: "normal" N(0, I), "mixture" (K learned Gaussians) or "vamp" (the VampPrior of K
    learned pseudo-inputs, K = `prior_components`). objective: "elbo" (β·KL) or "beta_tcvae"
    (the KL split into index-code mutual information, total correlation and dimension-wise KL,
    weighted by `tc_alpha`, `tc_beta`, `tc_gamma`; `tc_dataset_size` is the N of its
    minibatch-weighted sampling). gradient: how ∇_φ of E_q[log p(x|z)] is estimated,
    "reparameterization" or "score_function" (the log-derivative trick), with `score_baseline`
    "leave_one_out" as its control variate and `score_samples` draws per example.
    """

    hidden: tuple[int, ...] = param((512, 256), item_low=1)
    likelihood: str = param("bernoulli", choices=LIKELIHOODS)
    sigma: float = param(0.1, low=0.0, low_open=True, doc="σ of the Gaussian likelihood")
    learn_sigma: bool = param(False)
    beta: float = param(1.0, low=0.0)
    kl_warmup_steps: int = param(0, low=0)
    prior: str = param("normal", choices=PRIORS)
    prior_components: int = param(10, low=1, doc="K: mixture components or VampPrior pseudo-inputs")
    iw_samples: int = param(1, low=1)
    seed: int | None = param(None, low=0, high=2 ** 31 - 1)
    objective: str = param("elbo", choices=VAE_OBJECTIVES)
    tc_alpha: float = param(1.0, low=0.0, doc="α of β-TCVAE: weight of the index-code mutual information")
    tc_beta: float = param(6.0, low=0.0, doc="β of β-TCVAE: weight of the total correlation")
    tc_gamma: float = param(1.0, low=0.0, doc="γ of β-TCVAE: weight of the dimension-wise KL")
    tc_dataset_size: int = param(60000, low=1, doc="N of β-TCVAE's minibatch-weighted sampling: the training "
                                                   "set's size (60000: Fashion-MNIST)")
    gradient: str = param("reparameterization", choices=GRADIENTS)
    score_baseline: str = param("none", choices=SCORE_BASELINES)
    score_samples: int = param(1, low=1, doc="draws of z per example in training with the score function")
    code_activation: str = dataclasses.field(default="linear", init=False, repr=False)
    loss: str = dataclasses.field(default="bce", init=False, repr=False)

    def check(self) -> None:
        if self.learn_sigma and self.likelihood != "gaussian":
            raise ValueError(f"learn_sigma applies to the gaussian likelihood only. Received: learn_sigma=true, "
                             f"likelihood={self.likelihood!r}")
        if self.objective == "beta_tcvae":
            if self.iw_samples != 1:
                raise ValueError(f"objective='beta_tcvae' takes one sample per example. Received: "
                                 f"iw_samples={self.iw_samples}")
            if self.beta != 1.0:
                raise ValueError(f"objective='beta_tcvae' weighs its terms with tc_alpha, tc_beta, tc_gamma; beta "
                                 f"weighs the elbo objective's KL. Received: beta={self.beta}")
        if self.gradient == "score_function" and (self.objective != "elbo" or self.iw_samples != 1):
            raise ValueError(f"gradient='score_function' applies to objective='elbo' with iw_samples=1. Received: "
                             f"objective={self.objective!r}, iw_samples={self.iw_samples}")
        for key, value, default in (("score_baseline", self.score_baseline, "none"),
                                    ("score_samples", self.score_samples, 1)):
            if value != default and self.gradient != "score_function":
                raise ValueError(f"{key} applies to gradient='score_function'. Received: {key}={value!r}, "
                                 f"gradient={self.gradient!r}")

    @property
    def per_example_objective(self) -> bool:
        """False for β-TCVAE, whose q(z) estimate uses the whole batch; True otherwise.

        `zoo.register` copies this attribute onto the model class, where it reads the model's
        own `objective` attribute the same way.
        """
        return self.objective != "beta_tcvae"

    def check_units(self, bounded: bool) -> None:
        if not bounded and self.likelihood != "gaussian":
            raise ValueError(f"likelihood={self.likelihood!r} needs values in [0, 1], but tables and series are "
                             f"standardized (mean 0, variance 1): use likelihood='gaussian'")

    def encoder_units(self) -> int:
        return 2 * self.code_size

    def parameter_count(self, input_shape) -> int:
        if self.prior == "mixture":
            prior = self.prior_components * (1 + 2 * self.code_size)  # logits, locations, scales
        elif self.prior == "vamp":
            prior = self.prior_components * math.prod(input_shape)  # the pseudo-inputs u_k
        else:
            prior = 0
        return super().parameter_count(input_shape) + prior + (self.likelihood == "gaussian")


CVAE_PRIORS = ("normal", "conditional")
#: The one line of a conditional model given examples without labels.
MISSING_LABELS = ("this model is conditioned on class labels: the data must have labels (a built-in dataset, class "
                  "folders, or a label column); Received: no labels")


@HPARAMS.register("cvae")
@dataclasses.dataclass(frozen=True)
class CVAEHParams(VAEHParams):
    """q_φ(z|x, y), p(z|y), p_θ(x|z, y) of K classes trained on −ELBO; see `zoo.models.cvae`.

    The encoder reads x with the one-hot label (K extra channels broadcast over the pixels for
    the conv backbone, K extra inputs for the dense one) and the decoder reads [z, onehot(y)].
    prior: "normal" N(0, I) for every class, or "conditional" N(μ_y, diag σ_y²) with learned
    per-class μ_y and σ_y. The VAE's likelihoods, β, warm-up and importance-weighted bound apply;
    its learned mixture and VampPrior, β-TCVAE and the score-function gradient do not.
    """

    num_classes: int = param(10, low=2, high=100_000, doc="K: the classes y ∈ {0, …, K − 1} the model is conditioned on")
    prior: str = param("normal", choices=CVAE_PRIORS, doc="p(z|y): 'normal' N(0, I), or 'conditional' N(μ_y, diag σ_y²)")
    prior_components: int = dataclasses.field(default=10, init=False, repr=False)
    objective: str = dataclasses.field(default="elbo", init=False, repr=False)
    tc_alpha: float = dataclasses.field(default=1.0, init=False, repr=False)
    tc_beta: float = dataclasses.field(default=6.0, init=False, repr=False)
    tc_gamma: float = dataclasses.field(default=1.0, init=False, repr=False)
    tc_dataset_size: int = dataclasses.field(default=60000, init=False, repr=False)
    gradient: str = dataclasses.field(default="reparameterization", init=False, repr=False)
    score_baseline: str = dataclasses.field(default="none", init=False, repr=False)
    score_samples: int = dataclasses.field(default=1, init=False, repr=False)
    takes_labels: typing.ClassVar[bool] = True

    def check_labels(self, labels) -> None:
        if labels is None:
            raise ValueError(MISSING_LABELS)
        top = int(max(labels)) if len(labels) else 0
        if top >= self.num_classes or (len(labels) and int(min(labels)) < 0):
            raise ValueError(f"num_classes must exceed every label of the data: its labels are in [{int(min(labels))}, "
                             f"{top}]. Received: num_classes={self.num_classes}")

    def encoder_input_shape(self, input_shape) -> tuple:
        shape = tuple(input_shape)
        if self.backbone == "conv":
            return (*shape[:-1], shape[-1] + self.num_classes)
        return (math.prod(shape) + self.num_classes,)

    def decoder_input_size(self) -> int:
        return self.code_size + self.num_classes

    def parameter_count(self, input_shape) -> int:
        shape, k, hidden = tuple(input_shape), self.num_classes, list(self.hidden)
        count = backbone_parameters(shape, hidden, self.backbone, self.encoder_units(), self.code_size, shape[-1])
        if self.backbone == "conv":  # K more input channels of the first 3×3 (or 3-tap) layer; K more decoder inputs
            count += 3 ** (len(shape) - 1) * k * hidden[0] + k * math.prod(conv_grid(shape, len(hidden))) * hidden[-1]
        else:  # K more inputs of the first dense layer on each side
            count += k * (hidden[0] if hidden else self.encoder_units()) + k * (hidden[-1] if hidden else math.prod(shape))
        prior = 2 * k * self.code_size if self.prior == "conditional" else 0  # μ_y and σ_y
        return count + prior + (self.likelihood == "gaussian")
