"""The conditional variational autoencoder of Sohn, Lee & Yan (2015), conditioned on class labels."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from keras import ops

from zoo.configs.families import MISSING_LABELS, CVAEHParams
from zoo.models.base import PER_EXAMPLE, per_example_sum, positive_count, reconstruction_feature_scores
from zoo.models.estimators import importance_sampled_log_likelihood
from zoo.models.vae import ACTIVE_UNIT_THRESHOLD, LOG_2PI, VariationalAutoencoder, log_normal_diag
from zoo.registry import register

tfd = tfp.distributions

#: Classes drawn in the figures (one row each), at most.
FIGURE_CLASSES = 16


def _symbolic(t) -> bool:
    return isinstance(t, keras.KerasTensor) or tf.is_symbolic_tensor(t)


def _length(x):
    """The number of examples of a concrete batch x (an array, an eager tensor, streamed files), else None."""
    if x is None or _symbolic(x):
        return None
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) and shape[0] is not None:
        return int(shape[0])
    return len(x) if hasattr(x, "__len__") else None


def check_labels(y, num_classes: int, n: int | None = None):
    """Labels y as int32, checked: integers in [0, num_classes), one per example (n of them; one
    int is repeated n times). Symbolic tensors (inside a traced function) are only cast.

    Raises:
        ValueError: no labels, labels that are not integers or out of range, or not one per
            example; one line naming the offending value and the allowed range.
    """
    if y is None:
        raise ValueError(MISSING_LABELS)
    if _symbolic(y):
        return tf.cast(y, tf.int32)
    values = np.asarray(y)
    allowed = f"labels must be integers in [0, {num_classes})"
    if values.ndim == 0 and n is not None:
        values = np.full(n, values)
    if values.dtype.kind not in "iu":
        flat = values.ravel()
        bad = next((v for v in flat if not (np.isreal(v) and float(v).is_integer())), flat[0] if flat.size else None)
        bad = bad.item() if hasattr(bad, "item") else bad
        raise ValueError(f"{allowed}. Received: label={bad!r} (dtype {values.dtype})")
    if values.ndim != 1:
        raise ValueError(f"labels must be a vector, one label per example. Received: shape {values.shape}")
    if n is not None and len(values) != n:
        raise ValueError(f"labels must hold one label per example: {n} examples. Received: {len(values)} labels")
    outside = (values < 0) | (values >= num_classes)
    if outside.any():
        raise ValueError(f"{allowed}. Received: label={int(values[np.argmax(outside)])}")
    return values.astype(np.int32)


def kl_diagonal(loc, scale, prior_loc, prior_scale):
    """KL(N(μ, diag σ²) ‖ N(m, diag s²)) = Σ_j [log(s_j/σ_j) + (σ_j² + (μ_j − m_j)²)/(2 s_j²) − ½], per example."""
    return ops.sum(ops.log(prior_scale / scale) + (ops.square(scale) + ops.square(loc - prior_loc))
                   / (2.0 * ops.square(prior_scale)) - 0.5, axis=-1)


@keras.saving.register_keras_serializable(package="zoo")
@register("cvae")
class ConditionalVariationalAutoencoder(VariationalAutoencoder):
    """q_φ(z|x, y) = N(μ_φ(x, y), diag σ_φ(x, y)²), p(z|y), p_θ(x|z, y) for labels y ∈ {0, …, K − 1}.

    −ELBO(x|y) = −E_{q_φ(z|x,y)}[log p_θ(x|z, y)] + β·KL(q_φ(z|x, y) ‖ p(z|y)),

    a bound on −log p(x|y), with z = μ + σ ⊙ ε, ε ~ N(0, I). The encoder reads x' = normalize(x)
    with onehot(y) (K channels broadcast over the pixels for the conv backbone, K inputs beside
    the flattened x' for the dense one); the decoder reads [z, onehot(y)]. The prior is N(0, I)
    for every class (prior = "normal") or N(μ_y, diag σ_y²) with learned μ_y and σ_y =
    softplus(ρ_y) (prior = "conditional"); the KL between the two diagonal Gaussians is
    analytic either way (`kl_diagonal`). With `iw_samples` k > 1 training minimises the
    importance-weighted bound −log (1/k)·Σ_i p(x, z_i|y)/q(z_i|x, y).

    Labels travel with the examples: `inputs_of(x, y)` = {"x": x, "label": y} is what `call`,
    `encode`, `reconstruct` and the scores take, `codes_of(z, y)` = {"code": z, "label": y} what
    `decode` takes; data without labels is refused in one line. Since y is given to both sides,
    the code z carries what the label does not say (style, stroke, pose): the probes of the
    evaluation measure that, and `figures` decodes one code under every class. The likelihood,
    the NLL (−log p(x|y) by importance sampling), the anomaly scores (−ELBO(x|y)) and the
    serving signatures follow the VAE's (`VariationalAutoencoder`), given y.

    Args:
        input_shape: shape of one example.
        num_classes: K.
        prior: "normal" or "conditional".
        (the others as `VariationalAutoencoder`: code_size, hidden, backbone, activation,
        likelihood, sigma, learn_sigma, beta, kl_warmup_steps, iw_samples, seed, weight_decay.)

    Example:
        >>> cvae = zoo.build("cvae", input_shape=(28, 28, 1), code_size=16, num_classes=10)
        >>> x_hat = cvae.reconstruct(cvae.inputs_of(x, y))
        >>> shirts = cvae.sample(8, labels=6, seed=0)  # eight draws of class 6
    """

    HParams = CVAEHParams

    def __init__(self, input_shape=(28, 28, 1), **kwargs):
        super().__init__(input_shape=input_shape, **kwargs)
        self.num_classes = self.hparams.num_classes
        if self.prior_name == "conditional":
            k, d = self.num_classes, self.code_size
            self.prior_loc = self.add_weight(shape=(k, d), initializer="zeros", name="prior_loc")
            self.prior_raw_scale = self.add_weight(shape=(k, d), initializer=keras.initializers.Constant(0.5413),
                                                   name="prior_raw_scale")  # softplus⁻¹(1): p(z|y) starts at N(0, I)

    # Labels.
    def inputs_of(self, x, y=None):
        """{"x": x, "label": y} with y checked (`check_labels`) and cast to int32."""
        return {"x": x, "label": check_labels(y, self.num_classes, _length(x))}

    def codes_of(self, z, y=None):
        """{"code": z, "label": y} with y checked and cast to int32."""
        return {"code": z, "label": check_labels(y, self.num_classes, _length(z))}

    def _parts(self, inputs, key: str = "x"):
        if not isinstance(inputs, dict) or inputs.get("label") is None:
            raise ValueError(MISSING_LABELS)
        return inputs[key], inputs["label"]

    def one_hot(self, label):
        """onehot(y), float32 (B, K): the rows y of the identity I_K (a gather, which full-integer
        TFLite keeps exact, where its quantized OneHot op does not)."""
        identity = ops.eye(self.num_classes, dtype="float32")
        return ops.take(identity, ops.cast(ops.reshape(label, (-1,)), "int32"), axis=0)

    def _encoder_input(self, x_units, onehot):
        x_units = ops.cast(x_units, "float32")
        if self.backbone == "conv":  # K constant channels per class, the pixels' extra inputs
            spatial = ops.reshape(onehot, (-1,) + (1,) * (len(self.input_shape_) - 1) + (self.num_classes,))
            return ops.concatenate([x_units, spatial * ops.ones_like(x_units[..., :1])], axis=-1)
        return ops.concatenate([ops.reshape(x_units, (-1, int(np.prod(self.input_shape_)))), onehot], axis=-1)

    def _decoder_logits(self, z, onehot, training=False):
        return ops.cast(self.decoder(ops.concatenate([ops.cast(z, "float32"), onehot], axis=-1), training=training),
                        "float32")

    # Distributions.
    def prior_params(self, label):
        """(μ_y, σ_y) of p(z|y) for labels (B,), float32 (B, d): 0 and 1 for the normal prior."""
        onehot = self.one_hot(label)
        if self.prior_name == "conditional":
            return ops.matmul(onehot, self.prior_loc), ops.matmul(onehot, ops.softplus(self.prior_raw_scale))
        zeros = ops.zeros((ops.shape(onehot)[0], self.code_size))
        return zeros, zeros + 1.0

    def prior(self, label) -> tfd.Distribution:
        """p(z|y) of labels (B,) as a `tfd.MultivariateNormalDiag`."""
        loc, scale = self.prior_params(label)
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)

    def posterior_params(self, inputs, training=False):
        """(μ_φ(x, y), σ_φ(x, y)) of q_φ(z|x, y), float32 (B, d)."""
        x, label = self._parts(inputs)
        return self._posterior_of_units(self._encoder_input(self.normalize(x), self.one_hot(label)), training=training)

    # The model.
    def decode(self, codes):
        """The mean of p_θ(x|z, y) of codes_of(z, y), in the input's units."""
        z, label = self._parts(codes, "code")
        return self.denormalize(self._mean(self._decoder_logits(z, self.one_hot(label))))

    def reconstruct(self, inputs):
        """The mean of p_θ(x | z = μ_φ(x, y), y)."""
        _, label = self._parts(inputs)
        return self.decode({"code": self.encode(inputs), "label": label})

    def forward(self, inputs, training=False) -> dict:
        _, label = self._parts(inputs)
        loc, scale = self.posterior_params(inputs, training=training)
        k = self.iw_samples if training else 1
        eps = self._epsilon((k, ops.shape(loc)[0], self.code_size))
        z = loc + scale * eps
        logits = self._decoder_logits(ops.reshape(z, (-1, self.code_size)), ops.tile(self.one_hot(label), (k, 1)),
                                      training=training)
        return {"loc": loc, "scale": scale, "eps": eps, "logits": logits, "z": z, "label": label}

    def loss_target(self, x, y):
        """The images of the inputs {"x": x, "label": y} (or of a target given as such inputs)."""
        return self._parts(x)[0] if y is None else (self._parts(y)[0] if isinstance(y, dict) else y)

    def objective_terms(self, target, outputs, importance_weighted: bool):
        return self.negative_elbo(target, outputs, importance_weighted)

    def negative_elbo(self, x, outputs, importance_weighted: bool = False):
        """(per-example loss, −E_q[log p(x|z, y)], KL(q ‖ p(z|y))): the loss is reconstruction +
        β·KL, or −log (1/k)·Σ_i w_i over the k samples of `outputs` when `importance_weighted`."""
        loc, scale, eps = outputs["loc"], outputs["scale"], outputs["eps"]
        k = ops.shape(eps)[0]
        log_px_z = self._log_px_z(x, ops.reshape(outputs["logits"], (k,) + tuple(ops.shape(x))))  # (k, B)
        prior_loc, prior_scale = self.prior_params(outputs["label"])
        reconstruction = -ops.mean(log_px_z, axis=0)
        kl = kl_diagonal(loc, scale, prior_loc, prior_scale)
        if importance_weighted:
            log_pz = ops.sum(log_normal_diag(loc + scale * eps, prior_loc, prior_scale), axis=-1)
            log_w = log_px_z + log_pz - self._log_qz(scale, eps)
            return -(ops.logsumexp(log_w, axis=0) - ops.log(ops.cast(k, "float32"))), reconstruction, kl
        return reconstruction + self.current_beta() * kl, reconstruction, kl

    # Likelihood and sampling.
    def elbo(self, inputs):
        """Per-example ELBO(x|y) (β = 1, one posterior sample, the analytic KL)."""
        outputs = self.forward(inputs)
        _, reconstruction, kl = self.negative_elbo(self._parts(inputs)[0], outputs)
        return -(reconstruction + kl)

    def importance_log_weights(self, inputs, num, seed):
        """log w_i = log p_θ(x|z_i, y) + log p(z_i|y) − log q_φ(z_i|x, y), shape (num, B), with
        stateless ε of shape (num, B, d) seeded by `seed` (int32 (2,))."""
        x, label = self._parts(inputs)
        loc, scale = self.posterior_params(inputs)
        eps = tf.random.stateless_normal(tf.stack([num, tf.shape(loc)[0], self.code_size]), seed=seed)
        z = loc + scale * eps
        logits = self._decoder_logits(ops.reshape(z, (-1, self.code_size)), tf.tile(self.one_hot(label), [num, 1]))
        log_px_z = self._log_px_z(x, ops.reshape(logits, (ops.shape(eps)[0],) + tuple(ops.shape(x))))
        prior_loc, prior_scale = self.prior_params(label)
        return log_px_z + ops.sum(log_normal_diag(z, prior_loc, prior_scale), axis=-1) - self._log_qz(scale, eps)

    def log_likelihood(self, inputs, num_samples: int = 1000, batch_size: int = 100, chunk: int = 100, seed: int = 0):
        """Importance-sampled log p(x|y) per example, in nats (float64 (N,)); see
        `VariationalAutoencoder.log_likelihood`."""
        x, label = self._parts(inputs)
        inputs = {"x": np.asarray(x, "float32"), "label": np.asarray(label, "int32")}
        log_px, _ = importance_sampled_log_likelihood(self.log_importance_weights, inputs, num_samples,
                                                      batch_size=batch_size, chunk=chunk, seed=seed)
        return log_px

    def sample(self, n: int, labels, seed: int = 0):
        """n draws of the mean of p(x|z, y), z ~ p(z|y), for `labels` (n ints, or one int for all);
        deterministic given the seed."""
        labels = check_labels(labels, self.num_classes, int(n))
        loc, scale = self.prior_params(labels)
        z = loc + scale * tf.random.stateless_normal((int(n), self.code_size), seed=[seed, 0])
        return self.decode({"code": z, "label": labels})

    # Hooks of the consumers.
    def serving_signatures(self) -> dict:
        """The VAE's signatures, each taking the labels: serving_default, score (and detect): x,
        label [B] int32; encode: x, label → mean, stddev; decode: code, label → reconstruction;
        sample: labels [N] int32, seed → samples, means of p(x|z, y), z ~ p(z|y); log_likelihood:
        x, label, num_samples, seed → log p(x|y) [B]. Random ops are stateless, seeded by `seed`."""
        x_spec = tf.TensorSpec([None, *self.input_shape_], tf.float32, name="x")
        label_spec = tf.TensorSpec([None], tf.int32, name="label")
        code_spec = tf.TensorSpec([None, self.code_size], tf.float32, name="code")
        n_spec, seed_spec = (tf.TensorSpec([], tf.int32, name=n) for n in ("num_samples", "seed"))

        def f32(t):
            return tf.cast(t, tf.float32)

        def score(x, label):
            inputs = {"x": x, "label": label}
            return {"score": f32(self.anomaly_scores(inputs)), "feature_scores": f32(self.feature_scores(inputs))}

        def encode(x, label):
            mean, stddev = self.posterior_params({"x": x, "label": label})
            return {"mean": f32(mean), "stddev": f32(stddev)}

        def sample(labels, seed):
            allowed = f"labels must be in [0, {self.num_classes})"
            checks = [tf.debugging.assert_non_negative(labels, message=allowed),
                      tf.debugging.assert_less(labels, self.num_classes, message=allowed)]
            with tf.control_dependencies(checks):  # before the labels are used
                labels = tf.identity(labels)
            loc, scale = self.prior_params(labels)
            z = loc + scale * tf.random.stateless_normal(tf.shape(loc), seed=tf.stack([seed, 0]))
            return {"samples": f32(self.decode({"code": z, "label": labels}))}

        def log_likelihood(x, label, num_samples, seed):
            num_samples = positive_count(num_samples)
            log_w = self.importance_log_weights({"x": x, "label": label}, num_samples, tf.stack([seed, 0]))
            k = tf.cast(num_samples, tf.float32)
            return {"log_likelihood": tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(k)}

        def function(fn, *specs):
            return tf.function(fn, input_signature=list(specs), autograph=False)

        fns = {"serving_default": function(lambda x, label: {"reconstruction": f32(self.reconstruct(
                   {"x": x, "label": label}))}, x_spec, label_spec),
               "encode": function(encode, x_spec, label_spec),
               "decode": function(lambda code, label: {"reconstruction": f32(self.decode(
                   {"code": code, "label": label}))}, code_spec, label_spec),
               "score": function(score, x_spec, label_spec),
               "sample": function(sample, tf.TensorSpec([None], tf.int32, name="labels"), seed_spec),
               "log_likelihood": function(log_likelihood, x_spec, label_spec, n_spec, seed_spec)}
        if self.anomaly_threshold:
            name, threshold = self.anomaly_threshold["score"], float(self.anomaly_threshold["threshold"])
            self.check_score_name(name)

            def detect(x, label):
                s = f32(self.anomaly_scores({"x": x, "label": label}, name))
                return {"score": s, "is_anomaly": tf.greater(s, threshold)}

            fns["detect"] = function(detect, x_spec, label_spec)
        return fns

    def signature_inputs(self, x) -> dict:
        """Example inputs of every signature for the examples `x`, labelled 0, 1, …, K − 1, 0, … in turn."""
        x = np.asarray(x, "float32")
        inputs = {"x": x, "label": (np.arange(len(x)) % self.num_classes).astype("int32")}
        n, seed = np.int32(2), np.int32(0)
        out = {"serving_default": inputs, "encode": inputs, "score": inputs,
               "decode": {"code": np.asarray(self.encode(inputs), "float32"), "label": inputs["label"]},
               "sample": {"labels": inputs["label"], "seed": seed},
               "log_likelihood": {**inputs, "num_samples": n, "seed": seed}}
        return {**out, "detect": inputs} if self.anomaly_threshold else out

    def evaluation_metrics(self, inputs, settings) -> dict:
        """The VAE's metrics given the labels: active_units (of E_q[z | x, y]), nll = −log p(x|y)
        and neg_elbo = −ELBO(x|y) from `settings.nll_samples` importance samples, in nats."""
        x, label = self._parts(inputs)
        x, label = np.asarray(x, "float32"), np.asarray(label, "int32")
        size = settings.batch_size
        loc = np.concatenate([np.asarray(self.encode({"x": x[i:i + size], "label": label[i:i + size]}))
                              for i in range(0, len(x), size)])
        n = settings.nll_examples or None
        log_px, elbo = importance_sampled_log_likelihood(self.log_importance_weights, {"x": x[:n], "label": label[:n]},
                                                         settings.nll_samples, seed=settings.seed)
        return {"active_units": int((loc.var(axis=0) > ACTIVE_UNIT_THRESHOLD).sum()),
                "neg_elbo": float(-elbo.mean()), "nll": float(-log_px.mean()), "nll_samples": settings.nll_samples,
                "nll_examples": len(log_px), "likelihood": self.likelihood, "nll_of": "x given its label y",
                PER_EXAMPLE: {"nll": -log_px, "neg_elbo": -elbo}}

    def figures(self, x, y) -> dict:
        """samples: one row per class (at most FIGURE_CLASSES), means of p(x|z, y), z ~ p(z|y);
        analogies: the codes of test examples decoded under every class, the example first."""
        classes = range(min(self.num_classes, FIGURE_CLASSES))
        samples = [(f"y = {c}", np.asarray(self.sample(10, c, seed=c))) for c in classes]
        rows = []
        for i in range(min(6, len(x))):
            inputs = self.inputs_of(x[i:i + 1], y[i:i + 1])
            z = np.repeat(np.asarray(self.encode(inputs)), len(classes), axis=0)
            decoded = np.asarray(self.decode(self.codes_of(z, np.arange(len(classes)))))
            rows.append((f"test {i} (y = {int(y[i])})", np.concatenate([np.asarray(x[i:i + 1]), decoded])))
        return {"samples": {"kind": "rows", "rows": samples,
                            "title": "means of p(x|z, y), z ~ p(z|y), one class a row"},
                "analogies": {"kind": "rows", "rows": rows,
                              "title": "a test image, then its code z = E[z|x, y] decoded under y = 0, 1, ..."}}

    def anomaly_score(self, inputs):
        """−ELBO(x|y) at the posterior mean: −log p_θ(x | z = μ, y) + KL(q_φ(z|x, y) ‖ p(z|y))
        (analytic), in built-in ops."""
        loc, scale = self.posterior_params(inputs)
        prior_loc, prior_scale = self.prior_params(self._parts(inputs)[1])
        return per_example_sum(self.feature_scores(inputs)) + kl_diagonal(loc, scale, prior_loc, prior_scale)

    def feature_scores(self, inputs, name: str = "objective"):
        """−log p_θ(x_d | z = μ_φ(x, y), y) for every feature d (objective, elbo); mse, mae, bce of
        the reconstruction as the base class defines them."""
        self.check_score_name(name)
        if name == "nll":
            raise ValueError("score 'nll' is per example only (log p(x|y) does not split over features): "
                             "use 'elbo' for per-feature scores")
        x, label = self._parts(inputs)
        target = ops.cast(self.normalize(x), "float32")
        if name not in ("objective", "elbo"):
            return reconstruction_feature_scores(target, ops.cast(self.normalize(self.reconstruct(inputs)), "float32"),
                                                 name)
        logits = self._decoder_logits(self.posterior_params(inputs)[0], self.one_hot(label))
        if self.likelihood == "bernoulli":
            return ops.softplus(logits) - target * logits  # −log Bernoulli(x | σ(l)) in built-in ops
        if self.likelihood == "gaussian":
            sigma = ops.exp(ops.cast(self.log_sigma, "float32"))
            return 0.5 * ops.square((target - self.output_mean(logits)) / sigma) + ops.log(sigma) + 0.5 * LOG_2PI
        return -self.likelihood_from_logits(logits).distribution.log_prob(target)
