"""The vector-quantized autoencoder of van den Oord, Vinyals & Kavukcuoglu (2017), with a PixelCNN prior."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from zoo.configs.vqvae import VQVAEHParams
from zoo.data.examples import materialize
from zoo.layers.masked_conv import PixelCNNPrior
from zoo.layers.quantizer import VectorQuantizer, perplexity_of
from zoo.models.base import PER_EXAMPLE, Autoencoder, num_replicas, positive_count, replica_mean
from zoo.registry import register

#: Examples per batch when the frozen encoder computes the prior's training indices.
ENCODE_BATCH = 500


def _float32(t):
    return tf.cast(t, tf.float32)


@keras.saving.register_keras_serializable(package="zoo")
@register("vqvae")
class VQVAE(Autoencoder):
    """x → z_e = F(x) ∈ R^{L×D} → z_q (each vector's nearest codebook entry) → x̂ = G(z_q).

    The encoder's last layer has code_size = L·D units, read as L vectors of D dimensions; the
    quantizer (`zoo.layers.quantizer.VectorQuantizer`) replaces each by its nearest entry e_k of a
    codebook of K entries and passes the decoder's gradient straight through to the encoder. Per
    example, with k_l the index of vector l, the objective is

        L(x) = ‖x − x̂‖² (or the cross-entropy, loss = "bce")
               + Σ_l ‖sg[z_e,l] − e_{k_l}‖²   (codebook; dropped with codebook_update = "ema")
               + β Σ_l ‖z_e,l − sg[e_{k_l}]‖²  (commitment, β = `commitment`),

    averaged over the global batch. The prior p(k_1, …, k_L) = Π_l p(k_l | k_<l) is a PixelCNN
    (`zoo.layers.masked_conv.PixelCNNPrior`) trained after the main fit on the indices of the
    frozen encoder (`after_fit`), minimising −(1/L)·Σ_l log p(k_l | k_<l) with its own Adam; it
    takes no part in the main objective.

    Codes. `encode(x)` is the quantized vectors z_q flattened, (B, L·D): what the probe, k-NN and
    the latent tools read, and what `decode` takes back; `encode_indices(x)` is the discrete code
    (B, L) of int32 indices, which `decode` (an integer tensor) or `decode_indices` also take.
    `sample(n)` draws indices from the prior, position by position, and decodes them.

    Metrics: `perplexity` exp(−Σ_k p_k log p_k) of the batch's usage p_k, `codebook_usage` the
    fraction of entries used in the batch, `vq_loss` the codebook and commitment terms.

    Example:
        >>> model = zoo.build("vqvae", input_shape=(28, 28, 1), code_size=64, embedding_dim=4, num_embeddings=64)
        >>> model.encode_indices(x)  # (B, 16) int32
        >>> model.sample(8, seed=0)  # 8 images from the prior
    """

    HParams = VQVAEHParams

    def __init__(self, input_shape=(28, 28, 1), **kwargs):
        super().__init__(input_shape=input_shape, **kwargs)
        hp = self.hparams
        self.code_length, self.embedding_dim, self.num_embeddings = hp.code_length, hp.embedding_dim, hp.num_embeddings
        self.quantizer = VectorQuantizer(hp.num_embeddings, hp.embedding_dim, commitment=hp.commitment,
                                         codebook_update=hp.codebook_update, ema_decay=hp.ema_decay,
                                         restart_after=hp.restart_after, seed=hp.seed, name="quantizer")
        self.quantizer.build((None, self.code_length, self.embedding_dim))
        self.prior = PixelCNNPrior(hp.num_embeddings, self.code_length, filters=hp.prior_filters,
                                   num_layers=hp.prior_layers, name="prior")
        self.prior.build((None, self.code_length))
        self.prior.trainable = False  # trained by `after_fit` only, never by the main objective
        self.vq_tracker = keras.metrics.Mean(name="vq_loss")
        self.perplexity_tracker = keras.metrics.Mean(name="perplexity")
        self.usage_tracker = keras.metrics.Mean(name="codebook_usage")
        #: The prior's training loss per epoch (nats per index), after `after_fit`; not saved.
        self.prior_history = []

    # The model.
    def _vectors(self, z_e):
        return ops.reshape(ops.cast(z_e, "float32"), (-1, self.code_length, self.embedding_dim))

    def encode_indices(self, x):
        """The discrete code: indices k_l = argmin_k ‖z_e,l − e_k‖², int32 of shape (B, L)."""
        return self.quantizer.nearest(self._vectors(self.encoder(self.normalize(x))))

    def encode(self, x):
        """The quantized code z_q, the L nearest entries flattened: float32 (B, L·D)."""
        return self.vectors_of(self.encode_indices(x))

    def vectors_of(self, indices):
        """The flattened codebook vectors (B, L·D) of indices (B, L)."""
        return ops.reshape(self.quantizer.lookup(indices), (-1, self.code_size))

    def decode(self, z):
        """x̂ = G(z) of flattened code vectors z (B, L·D), or of indices (B, L) when z is an integer tensor."""
        z = ops.convert_to_tensor(z)
        if "int" in str(z.dtype):
            z = self.vectors_of(z)
        return self.denormalize(self.output_mean(self.decoder(ops.cast(z, "float32"))))

    def decode_indices(self, indices):
        """x̂ of indices (B, L)."""
        return self.decode(ops.cast(indices, "int32"))

    def forward(self, x, training=False) -> dict:
        z_e = self.encoder(self.corrupt(self.normalize(x), training), training=training)
        quantized, indices, codebook_term, commitment_term, counts = self.quantizer(self._vectors(z_e),
                                                                                   training=training)
        code = ops.reshape(quantized, (-1, self.code_size))
        logits = ops.cast(self.decoder(code, training=training), "float32")
        return {"code": code, "indices": indices, "codebook": ops.sum(codebook_term, axis=-1),
                "commitment": ops.sum(commitment_term, axis=-1), "counts": counts, "logits": logits,
                "reconstruction": self.output_mean(logits)}

    def vq_terms(self, outputs):
        """Per-example Σ_l ‖sg[z_e,l] − e_{k_l}‖² (loss update only) + β Σ_l ‖z_e,l − sg[e_{k_l}]‖²."""
        if self.hparams.codebook_update == "ema":
            return outputs["commitment"]
        return outputs["codebook"] + outputs["commitment"]

    def penalty(self, outputs):
        """The codebook and commitment terms, a global-batch mean (the base divides by the replicas)."""
        per_example = self.vq_terms(outputs)
        self.vq_tracker.update_state(per_example)
        counts = outputs["counts"]
        self.perplexity_tracker.update_state(perplexity_of(counts))
        self.usage_tracker.update_state(ops.mean(ops.cast(counts > 0, "float32")))
        return replica_mean(per_example) * num_replicas()

    # The prior.
    def prior_negative_log_likelihood(self, indices):
        """−log p(k) per example under the PixelCNN prior, in nats."""
        return self.prior.negative_log_likelihood(indices)

    def sample_indices(self, n, seed):
        """n index grids (n, L) drawn from the prior, k_1 first, each k_l ~ p(k_l | k_<l); `seed` is
        an int32 (2,) tensor of stateless draws (one answer per seed)."""
        indices = tf.zeros(tf.stack([n, self.code_length]), tf.int32)
        for position in range(self.code_length):
            logits = self.prior(indices)[:, position]
            draw = tf.random.stateless_categorical(logits, 1, tf.random.experimental.stateless_fold_in(seed, position),
                                                   dtype=tf.int32)
            indices = indices + draw * tf.one_hot(position, self.code_length, dtype=tf.int32)[None, :]
        return indices

    def sample(self, n: int, seed: int = 0):
        """n images decoded from index grids drawn from the prior, deterministic given the seed."""
        return self.decode_indices(self._sample_graph(tf.constant(n, tf.int32), tf.constant([seed, 0], tf.int32)))

    @tf.function(reduce_retracing=True)
    def _sample_graph(self, n, seed):
        return self.sample_indices(n, seed)

    @tf.function(reduce_retracing=True)
    def _indices_graph(self, x):
        return self.encode_indices(x)

    @tf.function(reduce_retracing=True)
    def _prior_nll_graph(self, indices):
        return self.prior_negative_log_likelihood(indices)

    def after_fit(self, x, y=None, *, batch_size: int, seed: int = 0, steps_per_epoch: int | None = None) -> None:
        """The second stage: the PixelCNN prior fitted for `prior_epochs` epochs to the indices of the
        frozen encoder on the training examples x, minimising the mean −log p(k_l | k_<l) per index
        with Adam (`prior_learning_rate`). An epoch is a pass over x, or `steps_per_epoch` batches
        (the main fit's, then only the examples those batches need are encoded). Runs under the
        current `tf.distribute` strategy: each replica's loss is its share of the global batch's
        mean, and the optimizer sums the replicas' gradients. The loss of each epoch goes to
        `prior_history`."""
        epochs = self.hparams.prior_epochs
        if not epochs or x is None or not len(x):
            return
        n = len(x) if not steps_per_epoch else min(len(x), steps_per_epoch * batch_size * epochs)
        indices = np.concatenate([np.asarray(self._indices_graph(materialize(x[i:min(i + ENCODE_BATCH, n)])))
                                  for i in range(0, n, ENCODE_BATCH)])
        strategy = tf.distribute.get_strategy()
        self.prior.trainable = True
        try:
            weights = self.prior.trainable_variables
            optimizer = keras.optimizers.Adam(self.hparams.prior_learning_rate)
            optimizer.build(weights)
            data = (tf.data.Dataset.from_tensor_slices(indices).shuffle(len(indices), seed=seed)
                    .batch(batch_size, drop_remainder=len(indices) >= batch_size))
            if steps_per_epoch:
                data = data.repeat().take(steps_per_epoch)  # each epoch draws its steps anew
            per_position = float(self.code_length)

            def replica_step(batch):
                with tf.GradientTape() as tape:
                    nll = self.prior.negative_log_likelihood(batch) / per_position
                    loss = tf.nn.compute_average_loss(nll, global_batch_size=tf.shape(batch)[0] * num_replicas())
                optimizer.apply(tape.gradient(loss, weights), weights)
                return loss

            @tf.function
            def step(batch):
                losses = strategy.run(replica_step, args=(batch,))
                return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

            self.prior_history = []
            for _ in range(epochs):
                total, batches = 0.0, 0
                for batch in strategy.experimental_distribute_dataset(data):
                    total, batches = total + float(step(batch)), batches + 1
                self.prior_history.append(total / max(batches, 1))
        finally:
            self.prior.trainable = False

    # Hooks of the consumers.
    def serving_signatures(self) -> dict:
        """The base signatures (encode: x → code, the flattened z_q; decode: code → reconstruction) and:

        encode_indices: x → indices [B, L] int32; decode_indices: indices → reconstruction;
        sample: num_samples, seed (int32 scalars) → samples (decoded) and their indices, drawn
        from the PixelCNN prior with stateless categorical draws: one request, one answer.
        """
        fns = super().serving_signatures()
        x_spec = tf.TensorSpec([None, *self.input_shape_], tf.float32, name="x")
        index_spec = tf.TensorSpec([None, self.code_length], tf.int32, name="indices")
        n_spec = tf.TensorSpec([], tf.int32, name="num_samples")
        seed_spec = tf.TensorSpec([], tf.int32, name="seed")

        def sample(num_samples, seed):
            num_samples = positive_count(num_samples)
            indices = self.sample_indices(num_samples, tf.stack([seed, 0]))
            return {"samples": _float32(self.decode_indices(indices)), "indices": indices}

        fns["encode_indices"] = tf.function(lambda x: {"indices": tf.cast(self.encode_indices(x), tf.int32)},
                                            input_signature=[x_spec], autograph=False)
        fns["decode_indices"] = tf.function(lambda indices: {"reconstruction": _float32(self.decode_indices(indices))},
                                            input_signature=[index_spec], autograph=False)
        fns["sample"] = tf.function(sample, input_signature=[n_spec, seed_spec], autograph=False)
        return fns

    def signature_inputs(self, x) -> dict:
        x = np.asarray(x, "float32")
        return {**super().signature_inputs(x), "encode_indices": {"x": x},
                "decode_indices": {"indices": np.asarray(self.encode_indices(x), "int32")},
                "sample": {"num_samples": np.int32(2), "seed": np.int32(0)}}

    def evaluation_metrics(self, x, settings) -> dict:
        """perplexity exp(−Σ_k p_k log p_k) and codebook_usage (the fraction of the K entries used)
        of the test set's indices; prior_nll = −log p(k) under the PixelCNN prior in nats per
        example, and prior_bits_per_index = prior_nll / (L·log 2)."""
        x = np.asarray(x, "float32")
        size = settings.batch_size
        indices = np.concatenate([np.asarray(self._indices_graph(x[i:i + size])) for i in range(0, len(x), size)])
        counts = np.bincount(indices.ravel(), minlength=self.num_embeddings).astype("float64")
        p = counts / counts.sum()
        used = p[p > 0]
        per_example = np.concatenate([np.asarray(self._prior_nll_graph(indices[i:i + size]))
                                      for i in range(0, len(indices), size)])
        prior_nll = float(np.mean(per_example))
        return {"perplexity": float(np.exp(-(used * np.log(used)).sum())),
                "codebook_usage": float((counts > 0).mean()), "prior_nll": prior_nll,
                "prior_bits_per_index": prior_nll / (self.code_length * math.log(2.0)),
                "num_embeddings": self.num_embeddings, "code_length": self.code_length,
                PER_EXAMPLE: {"prior_nll": per_example}}

    def figures(self, x, y) -> dict:
        """samples: 32 decodes of index grids drawn from the PixelCNN prior."""
        return {"samples": {"kind": "grid", "images": np.asarray(self.sample(32, seed=0)),
                            "title": "decoded indices k ~ PixelCNN prior"}}
