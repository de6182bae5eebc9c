"""The variational autoencoder of Kingma & Welling, on TensorFlow Probability distributions."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from keras import ops

from zoo.configs.families import VAEHParams
from zoo.models.base import PER_EXAMPLE, Autoencoder, per_example_sum, positive_count, replica_mean
from zoo.models.gradients import score_function_surrogate
from zoo.registry import register

tfd = tfp.distributions

LOG_2PI = math.log(2.0 * math.pi)
ACTIVE_UNIT_THRESHOLD = 0.01
#: Initial pseudo-inputs of the VampPrior, in the model's units: N(0.5, 0.1²) for [0, 1] pixels,
#: N(0, 1) for standardized data (the scale of the data either way).
TC_TERMS = ("mutual_information", "total_correlation", "dimensionwise_kl")
VAMP_INIT = {True: (0.5, 0.1), False: (0.0, 1.0)}


def log_normal_diag(z, loc, scale):
    """log N(z_j; m_j, s_j²) per dimension, broadcasting z against loc and scale."""
    return -0.5 * ops.square((z - loc) / scale) - ops.log(scale) - 0.5 * LOG_2PI


def log_mixture_density(z, log_weights, loc, scale):
    """log Σ_c exp(log π_c)·N(z; m_c, diag s_c²) for z of shape (..., d), components (K, d).

    Built-in ops only (no `tfd.MixtureSameFamily`): z is expanded to (..., 1, d) against the (K, d)
    components, the diagonal log-densities summed over d, and the log-sum-exp taken over K.
    """
    per_component = ops.sum(log_normal_diag(ops.expand_dims(z, -2), loc, scale), axis=-1)  # (..., K)
    return ops.logsumexp(per_component + log_weights, axis=-1)


@keras.saving.register_keras_serializable(package="zoo")
@register("vae")
class VariationalAutoencoder(Autoencoder):
    """q_φ(z|x) = N(μ_φ(x), diag σ_φ(x)²), p(z), p_θ(x|z), trained on the negative ELBO.

    −ELBO(x) = −E_{q_φ(z|x)}[log p_θ(x|z)] + β·KL(q_φ(z|x) ‖ p(z)),

    with z = μ + σ ⊙ ε, ε ~ N(0, I) (the reparameterization trick). The KL term is analytic for
    the standard normal prior and a Monte Carlo estimate log q(z|x) − log p(z) for the learned
    priors, which have no closed form:

        mixture:  p(z) = Σ_c π_c N(z; m_c, diag s_c²), π = softmax(logits), s = softplus(·);
        vamp:     p(z) = (1/K)·Σ_k q_φ(z | u_k), the VampPrior (Tomczak & Welling 2018) of K
                  learned pseudo-inputs u_k, in the model's units (after `normalize`).

    Both log-densities are the log-sum-exp over components of diagonal-Gaussian log-densities,
    written in built-in ops (`log_mixture_density`), so the exported `score` converts to ONNX.

    The distributions are TFP's (`posterior`, `prior`, `likelihood_from_logits`); the training
    objective evaluates their densities in fused closed forms (Bernoulli log-probability as
    x·l − softplus(l), Gaussian log-densities from ε, the analytic KL), which equal TFP's
    `log_prob`/`kl_divergence` (tests/models/test_vae_fast_path.py) with fewer ops per step. β is fixed,
    or annealed linearly from 0 to β over `kl_warmup_steps` optimizer steps. With
    `iw_samples` k > 1 the objective is the importance-weighted bound
    −log (1/k)·Σ_i p(x, z_i)/q(z_i|x) (Burda et al.), which tightens towards −log p(x).

    β-TCVAE (`objective = "beta_tcvae"`, Chen et al. 2018) splits the batch average of
    E_q[log q(z|x) − log p(z)] into index-code mutual information, total correlation and
    dimension-wise KL,

        MI = E[log q(z|x) − log q(z)],  TC = E[log q(z) − Σ_j log q(z_j)],
        DWKL = E[Σ_j log q(z_j) − log p(z)]  (= Σ_j KL(q(z_j) ‖ p(z_j)) for a factorized p),

    and minimises −E_q[log p(x|z)] + w·(α·MI + β·TC + γ·DWKL) (w the warm-up fraction). The
    aggregate posterior q(z) = (1/N)·Σ_n q(z | x_n) is estimated by minibatch-weighted sampling
    on a batch of M: log q(z_i) ≈ logsumexp_m log q(z_i | x_m) − log(N·M), and the same per
    dimension for log q(z_ij); N = `tc_dataset_size`. The three sum, sample by sample, to
    log q(z_i|x_i) − log p(z_i), the Monte Carlo KL of the same samples.

    `gradient = "score_function"` replaces the reparameterization by the log-derivative trick
    (`zoo.models.gradients`): z is drawn with its gradient stopped and the loss gets the term
    stop(c − b)·(log q(z|x) − stop(log q(z|x))), c the per-sample cost −log p(x|z) (+ β·(log q
    − log p) for the Monte Carlo KL), b 0 or, with `score_baseline = "leave_one_out"`, the mean
    cost of the other examples of the batch, or of the other draws of the same example when
    `score_samples` > 1 draws per example average the ELBO. The analytic KL keeps its exact
    gradient.

    Metrics: `elbo` (with β = 1), `reconstruction` = −E_q[log p(x|z)], `kl`; with β-TCVAE also
    `mutual_information`, `total_correlation`, `dimensionwise_kl`.

    Args:
        input_shape: shape of one example.
        code_size: latent size d of z.
        hidden: encoder layer sizes; the decoder mirrors them.
        backbone: "dense" or "conv".
        activation: activation of the hidden layers.
        likelihood: p(x|z): "bernoulli" (logits), "gaussian" (mean sigmoid(·), or the decoder's
            output itself on standardized data; fixed or learned σ) or "continuous_bernoulli".
        sigma: σ of the Gaussian likelihood (initial value when learned).
        learn_sigma: learn one σ shared by all pixels.
        beta: β ≥ 0.
        kl_warmup_steps: steps of the linear β warm-up; 0 turns it off.
        prior: "normal" (N(0, I)), "mixture" (a learned mixture of Gaussians) or "vamp".
        prior_components: number of mixture components or of pseudo-inputs K.
        iw_samples: k, samples of the importance-weighted bound (1: the ELBO).
        seed: seed of ε (and of the initial prior locations and pseudo-inputs).
        objective: "elbo" or "beta_tcvae".
        tc_alpha, tc_beta, tc_gamma: α, β, γ of β-TCVAE.
        tc_dataset_size: N of β-TCVAE's minibatch-weighted sampling (the training set's size).
        gradient: "reparameterization" or "score_function".
        score_baseline: "none" or "leave_one_out" (score function only).
        score_samples: draws of z per example in training (score function only).
        weight_decay: λ ≥ 0 of the L2 penalty (λ/2)·Σ‖W‖² on the kernels.

    Example:
        >>> vae = zoo.build("vae", input_shape=(28, 28, 1), code_size=32)
        >>> vae.log_likelihood(x, num_samples=1000)  # log p(x) per example, in nats
    """

    HParams = VAEHParams

    def __init__(self, input_shape=(28, 28, 1), **kwargs):
        super().__init__(input_shape=input_shape, **kwargs)
        hp = self.hparams
        self.likelihood = hp.likelihood
        self.sigma, self.learn_sigma = hp.sigma, hp.learn_sigma
        self.beta, self.kl_warmup_steps = hp.beta, hp.kl_warmup_steps
        self.prior_name, self.prior_components = hp.prior, hp.prior_components
        self.iw_samples, self.seed = hp.iw_samples, hp.seed
        self.objective = hp.objective
        self.tc_alpha, self.tc_beta, self.tc_gamma = hp.tc_alpha, hp.tc_beta, hp.tc_gamma
        self.tc_dataset_size = hp.tc_dataset_size
        self.gradient, self.score_baseline, self.score_samples = hp.gradient, hp.score_baseline, hp.score_samples
        self.seed_generator = keras.random.SeedGenerator(hp.seed)
        if self.likelihood == "gaussian":  # the only likelihood with a σ
            self.log_sigma = self.add_weight(shape=(), initializer=keras.initializers.Constant(math.log(hp.sigma)),
                                             trainable=self.learn_sigma, name="log_sigma")
        if hp.prior == "mixture":
            k, d = hp.prior_components, hp.code_size
            self.prior_logits = self.add_weight(shape=(k,), initializer="zeros", name="prior_logits")
            self.prior_loc = self.add_weight(shape=(k, d), initializer=keras.initializers.RandomNormal(stddev=1.0,
                                                                                                       seed=hp.seed),
                                             name="prior_loc")
            self.prior_raw_scale = self.add_weight(shape=(k, d),
                                                   initializer=keras.initializers.Constant(0.5413),  # softplus⁻¹(1)
                                                   name="prior_raw_scale")
        if hp.prior == "vamp":
            mean, stddev = VAMP_INIT[self.bounded]
            self.pseudo_inputs = self.add_weight(shape=(hp.prior_components, *self.input_shape_),
                                                 initializer=keras.initializers.RandomNormal(mean, stddev, seed=hp.seed),
                                                 name="pseudo_inputs")
        self.elbo_tracker = keras.metrics.Mean(name="elbo")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        if hp.objective == "beta_tcvae":
            self.tc_trackers = [keras.metrics.Mean(name=n) for n in TC_TERMS]
        if hp.kl_warmup_steps:  # the loss is annealed: this tracks it at the warm-up's end weights
            self.objective_tracker = keras.metrics.Mean(name="objective")

    # Distributions.
    def prior(self) -> tfd.Distribution:
        """p(z): N(0, I), the learned mixture Σ_c π_c N(m_c, diag s_c²) or the VampPrior."""
        if self.prior_name == "normal":
            return tfd.MultivariateNormalDiag(loc=tf.zeros(self.code_size), scale_diag=tf.ones(self.code_size))
        log_weights, loc, scale = self.prior_components_params()
        return tfd.MixtureSameFamily(tfd.Categorical(logits=log_weights),
                                     tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale))

    def prior_components_params(self, training=False):
        """(log π (K,), m (K, d), s (K, d)) of a learned prior: the mixture's, or the VampPrior's
        log(1/K) and q_φ(z | u_k) of its pseudo-inputs (the encoder on u_k, already in model units)."""
        if self.prior_name == "mixture":
            return (ops.log_softmax(self.prior_logits), ops.convert_to_tensor(self.prior_loc),
                    ops.softplus(self.prior_raw_scale))
        if self.prior_name == "vamp":
            loc, scale = self._posterior_of_units(self.pseudo_inputs, training=training)
            k = self.prior_components
            return ops.full((k,), -math.log(k)), loc, scale
        raise ValueError(f"prior={self.prior_name!r} has no components")

    def posterior_params(self, x, training=False):
        """(μ_φ(x), σ_φ(x)) of q_φ(z|x), float32 tensors of shape (B, d)."""
        return self._posterior_of_units(self.normalize(x), training=training)

    def _posterior_of_units(self, x_units, training=False):
        h = ops.cast(self.encoder(x_units, training=training), "float32")
        loc, raw_scale = h[:, : self.code_size], h[:, self.code_size:]
        return loc, ops.softplus(raw_scale) + 1e-5

    def posterior(self, x) -> tfd.Distribution:
        """q_φ(z|x) as a `tfd.MultivariateNormalDiag`."""
        loc, scale = self.posterior_params(x)
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)

    def likelihood_from_logits(self, logits) -> tfd.Distribution:
        """p_θ(x|z) given the decoder's outputs, independent over the pixels of one example."""
        logits = ops.cast(logits, "float32")
        if self.likelihood == "bernoulli":
            base = tfd.Bernoulli(logits=logits, dtype=tf.float32)
        elif self.likelihood == "continuous_bernoulli":
            base = tfd.ContinuousBernoulli(logits=logits)
        else:
            base = tfd.Normal(loc=self.output_mean(logits), scale=ops.exp(self.log_sigma))
        return tfd.Independent(base, reinterpreted_batch_ndims=len(self.input_shape_))

    def _mean(self, logits):
        return self.likelihood_from_logits(logits).mean()

    # The model.
    def encode(self, x):
        """The posterior mean μ_φ(x), the deterministic code used at inference."""
        return self.posterior_params(x)[0]

    def decode(self, z):
        """The mean of p_θ(x|z), in the input's units."""
        return self.denormalize(self._mean(self.decoder(z)))

    def _epsilon(self, shape):
        return keras.random.normal(shape, seed=self.seed_generator)

    def _log_px_z(self, x, logits):
        """log p_θ(x|z) per example; `logits` has a leading sample axis (k, B, ...) like the result.

        The Bernoulli case is the fused closed form Σ_d [x_d·l_d − softplus(l_d)], equal to
        `tfd.Bernoulli(logits=l).log_prob(x)` summed over pixels (tests/models/test_vae_fast_path.py) but one
        softplus per pixel instead of two, and no broadcast copy of x over the k samples.
        """
        x = ops.cast(self.normalize(x), "float32")  # the likelihood is over the model's units
        if self.likelihood == "bernoulli":
            axes = tuple(range(2, 2 + len(self.input_shape_)))
            return ops.sum(x * logits - ops.softplus(logits), axis=axes)
        k = ops.shape(logits)[0]
        x_k = ops.broadcast_to(x, (k,) + tuple(ops.shape(x)))
        return self.likelihood_from_logits(logits).log_prob(x_k)

    def _log_qz(self, scale, eps):
        """log q_φ(z|x) at z = μ + σ ⊙ ε, from ε directly: Σ_d [−ε_d²/2 − log σ_d − log(2π)/2]."""
        return ops.sum(-0.5 * ops.square(eps) - ops.log(scale), axis=-1) - 0.5 * self.code_size * LOG_2PI

    def _log_pz(self, z):
        """log p(z): closed form for N(0, I), `log_mixture_density` for the learned priors."""
        if self.prior_name == "normal":
            return -0.5 * ops.sum(ops.square(z), axis=-1) - 0.5 * self.code_size * LOG_2PI
        return log_mixture_density(z, *self.prior_components_params())

    def _log_weights(self, x, loc, scale, eps, logits):
        """log p(x|z), log p(z), log q(z|x) for samples z = μ + σ ⊙ ε of shape (k, B, d)."""
        k = ops.shape(eps)[0]
        z = loc + scale * eps
        log_px_z = self._log_px_z(x, ops.reshape(logits, (k,) + tuple(ops.shape(x))))
        return log_px_z, self._log_pz(z), self._log_qz(scale, eps)

    def forward(self, x, training=False) -> dict:
        loc, scale = self.posterior_params(x, training=training)
        k = max(self.iw_samples, self.score_samples) if training else 1
        eps = self._epsilon((k, ops.shape(loc)[0], self.code_size))
        return self._decode_samples(loc, scale, eps, training=training)

    def _decode_samples(self, loc, scale, eps, training=False) -> dict:
        z = loc + scale * eps
        if self.gradient == "score_function":  # no path from z to φ: the surrogate carries ∇_φ
            z = tf.stop_gradient(z)
        logits = ops.cast(self.decoder(ops.reshape(z, (-1, self.code_size)), training=training), "float32")
        return {"loc": loc, "scale": scale, "eps": eps, "logits": logits, "z": z}

    @property
    def selection_metric(self) -> str:
        """"objective" under a KL warm-up: the loss at the full β (−ELBO_β, or β-TCVAE's weighted
        sum), whose annealed value rises while β grows and would stop a run at the warm-up's start."""
        return "objective" if self.kl_warmup_steps else "loss"

    def current_beta(self):
        """β, or its linear warm-up β·min(1, step / kl_warmup_steps)."""
        if not self.kl_warmup_steps or getattr(self, "optimizer", None) is None:  # uncompiled: full β
            return self.beta
        step = ops.cast(self.optimizer.iterations, "float32")
        return self.beta * ops.minimum(1.0, step / self.kl_warmup_steps)

    def _terms(self, x, outputs, with_log_weights: bool = True):
        """Per-example −E_q[log p(x|z)], KL(q‖p) and log-weights (k, B) (None if not asked for).

        For the normal prior the KL is analytic, `tfd.kl_divergence(q, p)` (for two diagonal
        Gaussians ½·Σ_d (μ_d² + σ_d² − 1 − log σ_d²)); otherwise it is the Monte Carlo estimate
        E_q[log q(z|x) − log p(z)] over the k samples.
        """
        reconstruction, kl, log_w, _ = self._sample_terms(x, outputs, with_log_weights)
        return reconstruction, kl, log_w

    def _sample_terms(self, x, outputs, with_log_weights: bool = True):
        """`_terms` and the per-sample (k, B) parts: {"log_px_z", "log_pz", "log_qz"} (None when
        the analytic KL needs only log p(x|z))."""
        loc, scale, eps = outputs["loc"], outputs["scale"], outputs["eps"]
        k = ops.shape(eps)[0]
        log_px_z = self._log_px_z(x, ops.reshape(outputs["logits"], (k,) + tuple(ops.shape(x))))
        log_w, parts = None, {"log_px_z": log_px_z, "log_pz": None, "log_qz": None}
        if with_log_weights or self.prior_name != "normal":
            z = outputs.get("z", loc + scale * eps)
            if self.gradient == "score_function":  # log q at the stopped z, φ live: ε = (z − μ)/σ
                log_qz = ops.sum(log_normal_diag(z, loc, scale), axis=-1)
            else:
                log_qz = self._log_qz(scale, eps)
            parts.update(log_pz=self._log_pz(z), log_qz=log_qz)
            log_w = log_px_z + parts["log_pz"] - log_qz
        reconstruction = -ops.mean(log_px_z, axis=0)
        if self.prior_name == "normal":
            kl = tfd.kl_divergence(tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale), self.prior())
        else:
            kl = ops.mean(parts["log_qz"] - parts["log_pz"], axis=0)
        return reconstruction, kl, log_w, parts

    def total_correlation_terms(self, z, loc, scale):
        """Per-example (MI, TC, DWKL) of β-TCVAE for samples z_i ~ q(z|x_i), all of shape (M, d).

        Minibatch-weighted sampling with N = `tc_dataset_size`:
        log q(z_i) ≈ logsumexp_m Σ_j log q(z_ij | x_m) − log(N·M) and
        log q(z_ij) ≈ logsumexp_m log q(z_ij | x_m) − log(N·M); then
        MI_i = log q(z_i|x_i) − log q(z_i), TC_i = log q(z_i) − Σ_j log q(z_ij),
        DWKL_i = Σ_j log q(z_ij) − log p(z_i), which sum to log q(z_i|x_i) − log p(z_i).
        """
        m = ops.cast(ops.shape(z)[0], "float32")
        log_nm = ops.log(m) + math.log(self.tc_dataset_size)
        pairs = log_normal_diag(ops.expand_dims(z, 1), ops.expand_dims(loc, 0), ops.expand_dims(scale, 0))  # (i, m, d)
        log_qz_x = ops.sum(log_normal_diag(z, loc, scale), axis=-1)
        log_qz = ops.logsumexp(ops.sum(pairs, axis=-1), axis=1) - log_nm
        log_qz_dims = ops.sum(ops.logsumexp(pairs, axis=1) - log_nm, axis=-1)
        return log_qz_x - log_qz, log_qz - log_qz_dims, log_qz_dims - self._log_pz(z)

    def _warmup_fraction(self):
        return self.current_beta() / self.beta if self.beta else 1.0

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        outputs = y_pred if isinstance(y_pred, dict) else self.forward(x, training=False)
        importance_weighted = self.iw_samples > 1 and isinstance(y_pred, dict)
        per_example, reconstruction, kl = self.objective_terms(self.loss_target(x, y), outputs, importance_weighted)
        if self.kl_warmup_steps and self.objective != "beta_tcvae":  # (β-TCVAE tracks its own)
            # −ELBO with the full β, or the IW bound, which no warm-up weights.
            self.objective_tracker.update_state(per_example if importance_weighted else reconstruction + self.beta * kl)
        self.elbo_tracker.update_state(-(reconstruction + kl))
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        loss = replica_mean(per_example)
        if self.losses:
            loss += ops.sum(self.losses) / tf.distribute.get_strategy().num_replicas_in_sync
        return loss

    def loss_target(self, x, y):
        """The examples the likelihood is of: the target y when given, else the inputs x."""
        return x if y is None else y

    def objective_terms(self, target, outputs, importance_weighted: bool):
        """(per-example loss, reconstruction, KL) of the configured objective (−ELBO or its IW
        bound, or β-TCVAE's decomposition), for `compute_loss`."""
        if self.objective == "beta_tcvae":
            return self._tcvae_loss(target, outputs)
        return self.negative_elbo_surrogate(target, outputs, importance_weighted)

    def negative_elbo_surrogate(self, x, outputs, importance_weighted: bool = False):
        """(per-example loss, reconstruction, KL): the loss is −ELBO (β-weighted), or the IW bound,
        plus for `gradient = "score_function"` the zero-valued term whose gradient is the
        log-derivative estimate of ∇_φ (its baseline over the k samples when k > 1, else over
        the batch)."""
        reconstruction, kl, log_w, parts = self._sample_terms(x, outputs, with_log_weights=importance_weighted)
        if importance_weighted:
            k = ops.cast(ops.shape(log_w)[0], "float32")
            return -(ops.logsumexp(log_w, axis=0) - ops.log(k)), reconstruction, kl
        beta = self.current_beta()
        per_example = reconstruction + beta * kl
        if self.gradient == "score_function":
            cost = -parts["log_px_z"]  # (k, B)
            if self.prior_name != "normal":  # the Monte Carlo KL depends on z too
                cost = cost + beta * (parts["log_qz"] - parts["log_pz"])
            log_qz = parts["log_qz"]
            if log_qz is None:
                log_qz = ops.sum(log_normal_diag(outputs["z"], outputs["loc"], outputs["scale"]), axis=-1)
            k = int(outputs["eps"].shape[0])
            axis = 0 if k > 1 else 1
            per_example += ops.mean(score_function_surrogate(cost, log_qz, self.score_baseline, axis=axis), axis=0)
        return per_example, reconstruction, kl

    def _tcvae_loss(self, x, outputs):
        """−E_q[log p(x|z)] + w·(α·MI + β·TC + γ·DWKL) on the first sample of each example."""
        loc, scale, eps = outputs["loc"], outputs["scale"], outputs["eps"]
        k = ops.shape(eps)[0]
        reconstruction = -ops.mean(self._log_px_z(x, ops.reshape(outputs["logits"], (k,) + tuple(ops.shape(x)))),
                                   axis=0)
        terms = self.total_correlation_terms(loc + scale * eps[0], loc, scale)
        for tracker, term in zip(self.tc_trackers, terms):
            tracker.update_state(term)
        mi, tc, dwkl = terms
        kl = mi + tc + dwkl
        weighted = self.tc_alpha * mi + self.tc_beta * tc + self.tc_gamma * dwkl
        if self.kl_warmup_steps:
            self.objective_tracker.update_state(reconstruction + weighted)
        return reconstruction + self._warmup_fraction() * weighted, reconstruction, kl

    def elbo_gradient_loss(self, x, num_samples: int, seed, gradient=None, score_baseline=None):
        """The batch mean of −ELBO with `num_samples` stateless draws per example (seed: int32 (2,)),
        whose gradient is the chosen estimator's: gradient "reparameterization" or
        "score_function", score_baseline "none" or "leave_one_out" (over the samples of each
        example when num_samples > 1). The model's own options when None; for the estimator
        comparison of benchmarks/gradient_variance.py."""
        saved = self.gradient, self.score_baseline
        self.gradient = saved[0] if gradient is None else gradient
        self.score_baseline = saved[1] if score_baseline is None else score_baseline
        try:
            loc, scale = self.posterior_params(x)
            eps = tf.random.stateless_normal((num_samples, tf.shape(loc)[0], self.code_size), seed=seed)
            outputs = self._decode_samples(loc, scale, eps)
            per_example, _, _ = self.negative_elbo_surrogate(x, outputs)
        finally:
            self.gradient, self.score_baseline = saved
        return ops.mean(per_example)

    # Likelihood and sampling.
    def elbo(self, x):
        """Per-example ELBO (β = 1, one posterior sample, analytic KL for the normal prior)."""
        loc, scale = self.posterior_params(x)
        eps = self._epsilon((1, ops.shape(loc)[0], self.code_size))
        logits = self.decoder(ops.reshape(loc + scale * eps, (-1, self.code_size)))
        reconstruction, kl, _ = self._terms(x, {"loc": loc, "scale": scale, "eps": eps, "logits": logits},
                                               with_log_weights=False)
        return -(reconstruction + kl)

    def importance_log_weights(self, x, num, seed):
        """log w_i = log p_θ(x|z_i) + log p(z_i) − log q_φ(z_i|x), z_i = μ + σ ⊙ ε_i, shape (num, B).

        ε_i are `tf.random.stateless_normal` draws of shape (num, B, d) seeded by `seed` (int32,
        shape (2,)), so one call always gives one answer; the evaluation's estimator and the
        exported `log_likelihood` signature both compute the weights here.
        """
        loc, scale = self.posterior_params(x)
        eps = tf.random.stateless_normal(tf.stack([num, tf.shape(loc)[0], self.code_size]), seed=seed)
        logits = self.decoder(ops.reshape(loc + scale * eps, (-1, self.code_size)))
        log_px_z, log_pz, log_qz = self._log_weights(x, loc, scale, eps, ops.cast(logits, "float32"))
        return log_px_z + log_pz - log_qz

    @tf.function(reduce_retracing=True)
    def log_importance_weights(self, x, num, seed):
        """`importance_log_weights` compiled, for the estimator's repeated calls."""
        return self.importance_log_weights(x, num, seed)

    def log_likelihood(self, x, num_samples: int = 1000, batch_size: int = 100, chunk: int = 100, seed: int = 0):
        """Importance-sampled log p(x) per example, in nats.

        log p(x) ≈ log (1/k)·Σ_{i=1}^{k} p(x, z_i)/q(z_i|x), z_i ~ q(z|x), computed with
        logsumexp. Examples go in batches of `batch_size` and samples in chunks of `chunk`, so
        memory stays at batch_size·chunk decoder outputs whatever k is. The samples are
        stateless draws derived from `seed`: the same call gives the same numbers.

        Returns:
            A float64 numpy array of shape (N,).
        """
        from zoo.models.estimators import importance_sampled_log_likelihood

        log_px, _ = importance_sampled_log_likelihood(self.log_importance_weights, np.asarray(x, dtype="float32"),
                                                      num_samples, batch_size=batch_size, chunk=chunk, seed=seed)
        return log_px

    def sample(self, n: int, seed: int = 0):
        """n draws of the mean of p(x|z), z ~ p(z), deterministic given the seed."""
        z = self.prior().sample(n, seed=tf.constant([seed, 0], dtype=tf.int32))
        return self.decode(z)

    # Hooks of the consumers.
    @property
    def latent_prior(self) -> str | None:
        """"gaussian" for prior = "normal"; None for the learned mixture and VampPrior, which are not isotropic."""
        return "gaussian" if self.prior_name == "normal" else None

    def serving_signatures(self) -> dict:
        """The base signatures with encode → (mean, stddev) of q(z|x), and two more:

        sample: num_samples, seed (int32 scalars) → samples, means of p(x|z), z ~ p(z);
        log_likelihood: x, num_samples, seed → log p(x) [B] in nats, the importance-sampled
        estimate logsumexp_i log w_i − log k of `importance_log_weights`.
        Both use stateless random ops seeded by `seed`: one request, one answer.
        """
        fns = super().serving_signatures()
        x_spec = tf.TensorSpec([None, *self.input_shape_], tf.float32, name="x")
        n_spec = tf.TensorSpec([], tf.int32, name="num_samples")
        seed_spec = tf.TensorSpec([], tf.int32, name="seed")

        def encode(x):
            # μ and σ as tensors: a distribution object would bring ops TFLite's built-ins lack.
            mean, stddev = self.posterior_params(x)
            return {"mean": tf.cast(mean, tf.float32), "stddev": tf.cast(stddev, tf.float32)}

        def sample(num_samples, seed):
            num_samples = positive_count(num_samples)
            z = self.prior().sample(num_samples, seed=tf.stack([seed, 0]))
            return {"samples": tf.cast(self.decode(z), tf.float32)}

        def log_likelihood(x, num_samples, seed):
            num_samples = positive_count(num_samples)
            log_w = self.importance_log_weights(x, num_samples, tf.stack([seed, 0]))
            return {"log_likelihood": tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(tf.cast(num_samples, tf.float32))}

        fns["encode"] = tf.function(encode, input_signature=[x_spec], autograph=False)
        fns["sample"] = tf.function(sample, input_signature=[n_spec, seed_spec], autograph=False)
        fns["log_likelihood"] = tf.function(log_likelihood, input_signature=[x_spec, n_spec, seed_spec],
                                            autograph=False)
        return fns

    def signature_inputs(self, x) -> dict:
        n, seed = np.int32(2), np.int32(0)
        return {**super().signature_inputs(x), "sample": {"num_samples": n, "seed": seed},
                "log_likelihood": {"x": np.asarray(x, "float32"), "num_samples": n, "seed": seed}}

    def evaluation_metrics(self, x, settings) -> dict:
        """active_units: units j with Var_x(E_q[z_j | x]) > 0.01 (Burda et al., 2016); nll =
        −log p(x) and neg_elbo = −(1/k)·Σ_i log w_i from the same k = `settings.nll_samples`
        importance samples (stateless, seeded by `settings.seed`) on the first
        `settings.nll_examples` examples (0: all), in nats per example."""
        from zoo.models.estimators import importance_sampled_log_likelihood

        x = np.asarray(x, "float32")
        size = settings.batch_size
        loc = np.concatenate([np.asarray(self.encode(x[i:i + size])) for i in range(0, len(x), size)])
        x_nll = x[: settings.nll_examples or None]
        log_px, elbo = importance_sampled_log_likelihood(self.log_importance_weights, x_nll, settings.nll_samples,
                                                         seed=settings.seed)
        return {"active_units": int((loc.var(axis=0) > ACTIVE_UNIT_THRESHOLD).sum()),
                "neg_elbo": float(-elbo.mean()), "nll": float(-log_px.mean()),
                "nll_samples": settings.nll_samples, "nll_examples": len(x_nll), "likelihood": self.likelihood,
                PER_EXAMPLE: {"nll": -log_px, "neg_elbo": -elbo}}

    def figures(self, x, y) -> dict:
        """Samples: 32 means of p(x|z), z ~ p(z); interpolation: decoded points on the segments
        between the posterior means of test examples of different classes."""
        rows = []
        classes = np.unique(y)
        for i in range(min(4, len(classes) // 2)):
            a = int(np.flatnonzero(y == classes[2 * i])[0])
            b = int(np.flatnonzero(y == classes[2 * i + 1])[0])
            za, zb = (np.asarray(self.encode(x[j:j + 1])) for j in (a, b))
            t = np.linspace(0.0, 1.0, 10, dtype="float32")[:, None]
            rows.append((f"{a}→{b}", np.asarray(self.decode((1 - t) * za + t * zb))))
        return {"samples": {"kind": "grid", "images": np.asarray(self.sample(32, seed=0)),
                            "title": "means of p(x|z), z ~ p(z)"},
                "interpolation": {"kind": "rows", "rows": rows,
                                  "title": "decoded straight lines between posterior means"}}

    def anomaly_score(self, x):
        """−ELBO(x) at the posterior mean: −log p_θ(x | z = μ_φ(x)) + KL(q_φ(z|x) ‖ p(z)), the KL
        analytic for the normal prior and log q(μ|x) − log p(μ) (the Monte Carlo estimate at ε = 0)
        for the learned ones; deterministic.

        Built-in ops only, so the exported `score` signature converts to TFLite and ONNX (TFP's
        KL and mixture log_prob do not: tf2onnx lacks BroadcastArgs).
        """
        loc, scale = self.posterior_params(x)
        reconstruction = per_example_sum(self.feature_scores(x))
        if self.prior_name == "normal":  # ½·Σ_j (μ_j² + σ_j² − 1 − log σ_j²)
            kl = 0.5 * ops.sum(ops.square(loc) + ops.square(scale) - 1.0 - 2.0 * ops.log(scale), axis=-1)
        else:
            kl = -ops.sum(ops.log(scale), axis=-1) - 0.5 * self.code_size * LOG_2PI - self._log_pz(loc)
        return reconstruction + kl

    def anomaly_score_names(self) -> tuple:
        """The base's scores (objective = elbo here), "elbo" and the importance-sampled "nll"."""
        base = super().anomaly_score_names()
        return base[:1] + ("elbo", "nll") + base[1:]

    def anomaly_scores(self, x, name: str = "objective", num_samples: int = 100, seed: int = 0):
        """elbo (= objective): −ELBO(x), `anomaly_score`; nll: −log p(x) ≈ −(logsumexp_i log w_i −
        log k) from k = `num_samples` importance samples of `importance_log_weights` (stateless,
        `seed`); the others as the base class computes them."""
        self.check_score_name(name)
        if name in ("objective", "elbo"):
            return self.anomaly_score(x)
        if name == "nll":
            log_w = self.importance_log_weights(x, num_samples, tf.constant([seed, 0], tf.int32))
            return -(ops.logsumexp(log_w, axis=0) - math.log(num_samples))
        return super().anomaly_scores(x, name)

    def feature_scores(self, x, name: str = "objective"):
        """−log p_θ(x_d | z = μ_φ(x)) for every feature d (objective, elbo: the ELBO's
        reconstruction term per feature); mse, mae, bce as the base class computes them."""
        self.check_score_name(name)
        if name == "nll":
            raise ValueError("score 'nll' is per example only (log p(x) does not split over features): "
                             "use 'elbo' for per-feature scores")
        if name not in ("objective", "elbo"):
            return super().feature_scores(x, name)
        loc, _ = self.posterior_params(x)
        logits = ops.cast(self.decoder(loc), "float32")
        target = ops.cast(self.normalize(x), "float32")
        if self.likelihood == "bernoulli":
            # −log Bernoulli(x | σ(l)) = softplus(l) − x·l: built-in ops (TFP's log_prob uses
            # MulNoNan, which ONNX lacks).
            return ops.softplus(logits) - target * logits
        if self.likelihood == "gaussian":
            sigma = ops.exp(ops.cast(self.log_sigma, "float32"))
            return 0.5 * ops.square((target - self.output_mean(logits)) / sigma) + ops.log(sigma) + 0.5 * LOG_2PI
        return -self.likelihood_from_logits(logits).distribution.log_prob(target)
