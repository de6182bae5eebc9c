"""The autoencoder base class every family derives from, and the hooks every consumer calls.

Consumers — export, evaluation, bench, report, anomaly scoring — never ask which family they
hold: they call the hooks below, and each family overrides the ones it has.

    hook                          base behaviour                         overridden by
    HParams                       the hyperparameter dataclass           every family
    serving_signatures()          serving_default, encode, decode        vae (+ sample, log_likelihood)
    device_signatures             names that convert to TFLite / ONNX    -
    signature_inputs(x)           example inputs of every signature      vae
    evaluation_metrics(x, s)      {}                                     sparse (ρ̂), vae (NLL, ELBO, AU;
                                                                           per-example under PER_EXAMPLE)
    selection_metric              "loss" (what early stopping watches)   vae ("objective" under KL warm-up)
    figures(x, y)                 {}                                     vae (samples, interpolation)
    latent_prior                  None (no prior over codes)             vae ("gaussian" for N(0, I))
    training_noise                None (trained on clean inputs)         denoising (its noise table)
    anomaly_score_names()         objective, mse, mae (+ bce in [0, 1])  vae (+ elbo, nll)
    anomaly_scores(x, name)       a named per-example score              vae (objective = elbo)
    anomaly_score(x)              the objective's reconstruction term    vae (−ELBO)
    feature_scores(x, name)       per-feature scores                     vae (−log p(x_d | z = μ))
    reconstruct(x)                x̂ = G(F(x)), in the input's units      vae (mean of p(x | z = μ))
    output_mean(logits)           sigmoid, or identity when standardized vae (the likelihood's mean)
    takes_labels                  False (inputs are examples only)       cvae (True: x with class labels y)
    inputs_of(x, y=None)          x (labels ignored)                     cvae ({"x": x, "label": y}, checked)
    codes_of(z, y=None)           z (labels ignored)                     cvae ({"code": z, "label": y}, checked)
    after_fit(x, y, batch_size=…) nothing (one training stage)           vqvae (its prior on the frozen codes)

Units. A model built with `preprocessing` (`zoo.layers.preprocessing`) takes raw inputs and
returns raw outputs: `encode`, `decode`, `reconstruct`, `call` and the serving signatures apply
x' = normalize(x) on the way in and its inverse on the way out. The objective, the anomaly
scores and the per-feature scores are computed in the model's units x' (pixels in [0, 1],
standardized columns), so features are comparable and the built-in datasets (no preprocessing)
behave as before.

Labels. A consumer never feeds a model bare examples: it calls `model.inputs_of(x, y)` for what
`call`, `forward`, `encode`, `reconstruct`, `anomaly_scores`, `feature_scores` and
`evaluation_metrics` take for examples x with labels y (None when the data has none), and
`model.codes_of(z, y)` for what `decode` takes. Both return x and z themselves here, so an
unconditional model is fed exactly as before; a conditional one (`takes_labels`) checks y and
returns a dict, and refuses data without labels in one line. The trainer's pipeline, the
evaluation, the latent tools, anomaly scoring and the benchmark's figures pass the split's labels
this way; export asks `signature_inputs(x)`, where a conditional family supplies labels itself.
A model that takes a dict names its serving signatures' inputs like the dict's keys.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from zoo.configs.families import AutoencoderHParams
from zoo.layers.blocks import make_decoder, make_encoder
from zoo.layers.preprocessing import check_preprocessing, is_bounded, make_preprocessing
from zoo.models.sharded_step import sharded_train_step

KERAS_MODEL_ARGUMENTS = ("name", "trainable", "dtype")

#: The key of `Autoencoder.evaluation_metrics` under which a family gives per-example values.
PER_EXAMPLE = "per_example"


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


def reconstruction_feature_scores(x, x_hat, name: str):
    """(x_d − x̂_d)², |x_d − x̂_d| or the clipped binary cross-entropy of every feature."""
    if name == "mse":
        return ops.square(x - x_hat)
    if name == "mae":
        return ops.abs(x - x_hat)
    p = ops.clip(x_hat, 1e-7, 1 - 1e-7)
    return -(x * ops.log(p) + (1 - x) * ops.log(1 - p))


def _float32(t):
    return tf.cast(t, tf.float32)  # mixed-precision models compute in float16


def positive_count(num_samples):
    """`num_samples` once it is checked to be positive, for serving signatures.

    The check is a control dependency of the value returned, so every op that uses the count runs
    after it: a loaded graph (TF Serving's session) may otherwise run a shape op on a count of zero
    first and answer with that op's error instead of this one.
    """
    check = tf.debugging.assert_positive(num_samples, message="num_samples must be positive")
    with tf.control_dependencies([check]):
        return tf.identity(num_samples)


class Autoencoder(keras.Model):
    """x → code z = F(x | Θ) → x̂ = G(z | Φ), trained to minimise L(x, x̂).

    The reconstruction error per example is the squared error ‖x − x̂‖² (loss="mse") or the
    binary cross-entropy −Σ_d [x_d log x̂_d + (1−x_d) log(1−x̂_d)] (loss="bce"), both summed over
    pixels and averaged over the (global) batch. Optional L2 weight decay adds (λ/2)·Σ‖W‖².

    `call(x)` returns the reconstruction x̂ in the input's units ([0, 1] without preprocessing). In training, `call` returns the dict of
    tensors the objective needs (`forward`), which Keras passes on to `compute_loss` as y_pred,
    so each step runs the network once; `test_step` does the same for validation.

    Args:
        input_shape: shape of one example: (H, W, C) images, (F,) table rows, (T, C) windows.
        preprocessing: how raw inputs become the model's units (`zoo.layers.preprocessing`):
            None/{"kind": "none"}, {"kind": "scale", "scale": s} or {"kind": "standardize",
            "mean": [...], "variance": [...]}; computed from the training split by the trainer.
        **hparams: the family's hyperparameters, the fields of its `HParams` dataclass (any
            other key is an error); plus Keras's `name`, `trainable`, `dtype`.

    Attributes:
        hparams: the checked `HParams` instance; `get_config` returns it.
        batch_shards: shards of each training batch whose passes run side by side
            (`zoo.models.sharded_step`); a training setting, not saved with the model.
    """

    HParams = AutoencoderHParams
    per_example_objective = True  # set from the family's HParams by `zoo.register`
    batch_shards = 1
    #: The calibrated threshold the `detect` signature bakes in: {"score": name, "threshold": t}
    #: from a run's threshold.json (`zoo.anomaly`), set by the exporter; not saved with the model.
    anomaly_threshold = None
    #: Scores computed by sampling, which the deterministic serving signatures do not offer.
    SAMPLED_SCORES = ("nll",)

    def __init__(self, input_shape=(28, 28, 1), preprocessing=None, **kwargs):
        keras_kwargs = {k: kwargs.pop(k) for k in KERAS_MODEL_ARGUMENTS if k in kwargs}
        schema = type(self).HParams
        unknown = sorted(set(kwargs) - set(schema.keys()))
        if unknown:
            raise ValueError(f"Unknown argument '{unknown[0]}' for model '{getattr(self, 'family', type(self).__name__)}'"
                             f". Allowed: input_shape, {', '.join(schema.keys())}")
        try:
            hparams = schema(**kwargs)
        except TypeError as e:
            raise ValueError(str(e)) from None
        input_shape = tuple(input_shape)
        hparams.check_shape(input_shape)
        preprocessing = check_preprocessing(preprocessing)
        hparams.check_units(is_bounded(preprocessing))
        super().__init__(**keras_kwargs)
        self.hparams = hparams
        self.preprocessing = preprocessing
        self.bounded = is_bounded(preprocessing)
        self.preprocess, self.postprocess = make_preprocessing(preprocessing)
        for layer in (self.preprocess, self.postprocess):
            if layer is not None:  # built now (no weights): else Keras warns that the model holds unbuilt layers
                layer.build((None, *input_shape))
        self.input_shape_ = tuple(int(d) for d in input_shape)
        self.code_size = hparams.code_size
        self.hidden = list(hparams.hidden)
        self.backbone = hparams.backbone
        self.activation = hparams.activation
        self.code_activation = hparams.code_activation
        self.loss_name = hparams.loss
        self.weight_decay = float(hparams.weight_decay)
        regularizer = keras.regularizers.L2(self.weight_decay / 2) if self.weight_decay else None
        self.encoder = make_encoder(hparams.encoder_input_shape(self.input_shape_), self.hidden, hparams.encoder_units(),
                                    backbone=self.backbone,
                                    activation=self.activation, out_activation=self.code_activation,
                                    kernel_regularizer=regularizer)
        self.decoder = make_decoder(hparams.decoder_input_size(), self.hidden, self.input_shape_, backbone=self.backbone,
                                    activation=self.activation, out_channels=self.input_shape_[-1],
                                    kernel_regularizer=regularizer)

    # Parts of the objective that families override.
    def corrupt(self, x, training):
        """The input the encoder sees; identity here, noise in the denoising family."""
        return x

    def penalty(self, outputs):
        """Extra terms of the objective, already weighted, over the global batch; None here."""
        return None

    # Units.
    def normalize(self, x):
        """x' = the model's units of raw inputs x (identity without preprocessing)."""
        return x if self.preprocess is None else self.preprocess(x)

    def denormalize(self, x):
        """Raw units of model-unit values x' (the inverse of `normalize`)."""
        return x if self.postprocess is None else self.postprocess(x)

    def output_mean(self, logits):
        """The reconstruction in the model's units from the decoder's outputs: sigmoid(logits)
        when the units are [0, 1], the outputs themselves when they are standardized."""
        logits = ops.cast(logits, "float32")
        return ops.sigmoid(logits) if self.bounded else logits

    # The model.
    def encode(self, x):
        """The code z = F(x' | Θ) of raw inputs x."""
        return self.encoder(self.normalize(x))

    def decode(self, z):
        """The reconstruction x̂ = G(z | Φ), in the input's units ([0, 1] without preprocessing)."""
        return self.denormalize(self.output_mean(self.decoder(z)))

    def reconstruct(self, x):
        """x̂ = G(F(x)) at inference (no corruption, no sampling)."""
        return self.decode(self.encode(x))

    def forward(self, x, training=False) -> dict:
        """All tensors of one pass, in the model's units: code, logits (pre-sigmoid) and reconstruction."""
        code = self.encoder(self.corrupt(self.normalize(x), training), training=training)
        logits = ops.cast(self.decoder(code, training=training), "float32")
        return {"code": code, "logits": logits, "reconstruction": self.output_mean(logits)}

    def train_step(self, data):
        if self.batch_shards > 1:
            return sharded_train_step(self, data, self.batch_shards)
        return super().train_step(data)

    def test_step(self, data):
        # Keras's test step calls `self(x)`, which gives only x̂ at inference, so compute_loss
        # would run the network a second time: here one pass feeds both the loss and the metrics.
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        outputs = self.forward(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=outputs, sample_weight=sample_weight, training=False)
        self._loss_tracker.update_state(loss * num_replicas(), sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
        return self.compute_metrics(x, y, None, sample_weight=sample_weight)

    def call(self, inputs, training=False):
        return self.forward(inputs, training=True) if training else self.reconstruct(inputs)

    def reconstruction_error(self, target, outputs):
        """Per-example ‖x' − x̂'‖² or binary cross-entropy, summed over features (model units)."""
        return per_example_sum(self.reconstruction_error_per_feature(target, outputs))

    def reconstruction_error_per_feature(self, target, outputs):
        """(x'_d − x̂'_d)² or −[x'_d log x̂'_d + (1−x'_d) log(1−x̂'_d)] for every feature d of the
        raw target x, in the model's units x' = normalize(x)."""
        target = ops.cast(self.normalize(target), "float32")
        if self.loss_name == "bce":
            return ops.binary_crossentropy(target, outputs["logits"], from_logits=True)
        return ops.square(target - outputs["reconstruction"])

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
        config = {**super().get_config(), "input_shape": list(self.input_shape_), **self.hparams.to_dict()}
        if self.preprocessing["kind"] != "none":  # models without one keep their old config
            config["preprocessing"] = self.preprocessing
        return config

    # Hooks of the consumers.
    def serving_signatures(self) -> dict:
        """The SavedModel signatures: name → `tf.function` with named input specs.

        serving_default: x [B, *input_shape] → reconstruction; encode: x → code [B, d];
        decode: code → reconstruction; score: x → score [B] (`anomaly_scores(x)`, the objective)
        and feature_scores [B, *input_shape]; and, when `anomaly_threshold` is set, detect:
        x → score [B] of the calibrated score and is_anomaly [B] = score > threshold (baked in).
        Deterministic, built-in TFLite ops only.
        """
        x_spec = tf.TensorSpec([None, *self.input_shape_], tf.float32, name="x")
        code_spec = tf.TensorSpec([None, self.code_size], tf.float32, name="code")
        fns = {
            "serving_default": tf.function(lambda x: {"reconstruction": _float32(self.reconstruct(x))},
                                           input_signature=[x_spec], autograph=False),
            "encode": tf.function(lambda x: {"code": _float32(self.encode(x))}, input_signature=[x_spec],
                                  autograph=False),
            "decode": tf.function(lambda code: {"reconstruction": _float32(self.decode(code))},
                                  input_signature=[code_spec], autograph=False),
            "score": tf.function(lambda x: {"score": _float32(self.anomaly_scores(x)),
                                            "feature_scores": _float32(self.feature_scores(x))},
                                 input_signature=[x_spec], autograph=False),
        }
        if self.anomaly_threshold:
            name, threshold = self.anomaly_threshold["score"], float(self.anomaly_threshold["threshold"])
            self.check_score_name(name)

            def detect(x):
                score = _float32(self.anomaly_scores(x, name))
                return {"score": score, "is_anomaly": tf.greater(score, threshold)}

            fns["detect"] = tf.function(detect, input_signature=[x_spec], autograph=False)
        return fns

    def signature_inputs(self, x) -> dict:
        """Example inputs of every serving signature for the examples `x` (a numpy batch):
        warm-up requests, int8 calibration and parity checks use them."""
        x = np.asarray(x, "float32")
        inputs = {"serving_default": {"x": x}, "encode": {"x": x},
                  "decode": {"code": np.asarray(_float32(self.encode(x)))}, "score": {"x": x}}
        return {**inputs, "detect": {"x": x}} if self.anomaly_threshold else inputs

    def evaluation_metrics(self, x, settings) -> dict:
        """The family's own test metrics on `x`, the test examples as the model was trained on
        them (binarized when the recipe binarizes); `settings` is a `zoo.evaluation.EvalSettings`.

        A metric that is a mean over test examples may also give its values, one per example,
        under `PER_EXAMPLE` (column → array): the evaluation then adds its bootstrap interval
        `<column>_low`/`<column>_high` and drops the arrays from the row.
        """
        return {}

    def figures(self, x, y) -> dict:
        """The family's own figures of the test examples `x` (labels `y`): name → a dict with
        `kind` "grid" (`images`) or "rows" (`rows`, a list of (label, images)) and a `title`."""
        return {}

    def after_fit(self, x, y=None, *, batch_size: int, seed: int = 0, steps_per_epoch: int | None = None) -> None:
        """A second training stage, run by the trainer after the main fit inside the strategy's scope
        on the training examples `x` (labels `y`), with the main fit's batch size and steps per epoch
        (None: whole passes): nothing here; a family with a part trained apart (the vqvae's prior on
        the frozen encoder's codes) trains it here."""

    @property
    def training_noise(self) -> dict | None:
        """The corruption the model was trained to undo, a noise table {"kind", "stddev" | "rate"}
        (`zoo.configs.noises`), or None; the benchmark compares each model on its own noise with
        the plain baseline (`zoo.bench.questions`)."""
        return None

    @property
    def selection_metric(self) -> str:
        """The logged metric (lower is better) that early stopping and best.keras watch, as
        "val_<name>" when there is validation data: the training loss, unless the family's loss
        is annealed (a KL warm-up) and another metric tracks the objective at its final weights."""
        return "loss"

    @property
    def latent_prior(self) -> str | None:
        """"gaussian" when codes have the isotropic prior p(z) = N(0, I), else None (no prior, or
        one that is not isotropic). The latent tools (`zoo.evaluation.latent`) read it: spherical
        interpolation, traversal in prior standard deviations, the grid through Φ⁻¹."""
        return None

    @property
    def takes_labels(self) -> bool:
        """Whether the model's inputs carry class labels (a conditional model); then `inputs_of`
        and `codes_of` need the examples' labels. Declared on the HParams (`takes_labels`), so a
        recipe is checked against its data's labels before a model is built."""
        return bool(type(self.hparams).takes_labels)

    def inputs_of(self, x, y=None):
        """What `call`, `forward`, `encode`, `reconstruct`, `anomaly_scores`, `feature_scores` and
        `evaluation_metrics` take for the examples `x` with labels `y` (None: no labels): x here,
        the labels ignored."""
        return x

    def codes_of(self, z, y=None):
        """What `decode` takes for the codes `z` of examples with labels `y`: z here, the labels ignored."""
        return z

    @property
    def device_signatures(self) -> tuple:
        """The signatures that convert to TFLite / ONNX: the deterministic ones."""
        return ("serving_default", "encode", "decode", "score") + (("detect",) if self.anomaly_threshold else ())

    def anomaly_score_names(self) -> tuple:
        """The per-example scores `anomaly_scores` computes: "objective" (the family's own,
        `anomaly_score`), "mse", "mae" and, for values in [0, 1], "bce" (means over features)."""
        return ("objective", "mse", "mae") + (("bce",) if self.bounded else ())

    def check_score_name(self, name: str) -> str:
        if name not in self.anomaly_score_names():
            raise ValueError(f"Unknown score {name!r} for model '{getattr(self, 'family', type(self).__name__)}'. "
                             f"Allowed: {', '.join(self.anomaly_score_names())}")
        return name

    def anomaly_scores(self, x, name: str = "objective"):
        """Per-example anomaly score `name` of raw inputs x, in the model's units x' (higher is
        more anomalous): "objective" = `anomaly_score`; "mse", "mae", "bce" = the mean over the D
        features of `feature_scores(x, name)`, e.g. mse(x) = (1/D)·Σ_d (x'_d − x̂'_d)²."""
        self.check_score_name(name)
        if name == "objective":
            return self.anomaly_score(x)
        per_feature = self.feature_scores(x, name)
        return ops.mean(ops.reshape(per_feature, (ops.shape(per_feature)[0], -1)), axis=-1)

    def anomaly_score(self, x):
        """Per-example score: the reconstruction error of the objective, ‖x' − x̂'‖² or the
        cross-entropy summed over features in the model's units, at inference (no corruption).
        Higher is more anomalous."""
        return per_example_sum(self.feature_scores(x))

    def feature_scores(self, x, name: str = "objective"):
        """Score of each feature in the model's units, shape (B, *input_shape): where x is abnormal.

        objective: the objective's term, (x'_d − x̂'_d)² or the cross-entropy of the logits;
        mse: (x'_d − x̂'_d)²; mae: |x'_d − x̂'_d|; bce: −[x'_d log x̂'_d + (1 − x'_d) log(1 − x̂'_d)]
        with x̂'_d clipped to [1e-7, 1 − 1e-7]; x̂ = `reconstruct(x)` (no corruption, no sampling).
        """
        self.check_score_name(name)
        if name == "objective":
            outputs = self.forward(x, training=False)
            if self.loss_name == "bce":
                # The loss's cross-entropy of the logits as softplus(l) − x'·l: the same values in
                # ops every export converts (TensorFlow's logistic loss uses Log1p, which ONNX lacks).
                target = ops.cast(self.normalize(x), "float32")
                return ops.softplus(outputs["logits"]) - target * outputs["logits"]
            return self.reconstruction_error_per_feature(x, outputs)
        return reconstruction_feature_scores(ops.cast(self.normalize(x), "float32"),
                                             ops.cast(self.normalize(self.reconstruct(x)), "float32"), name)
