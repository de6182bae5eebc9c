"""Nearest-entry vector quantization with a straight-through gradient (van den Oord et al. 2017)."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

#: ε of the Laplace smoothing of the EMA counts.
LAPLACE_EPSILON = 1e-5


def replica_sum(value):
    """The sum of `value` over the replicas of the current `tf.distribute` context (itself on one device)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def replica_concat(value):
    """`value` of every replica concatenated along the batch axis, in replica order: the global batch."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_gather(value, axis=0)


def perplexity_of(counts):
    """exp(−Σ_k p_k log p_k) of the usage p_k = n_k / Σ_j n_j: K for uniform use, 1 for one entry."""
    p = counts / ops.maximum(ops.sum(counts), 1.0)
    return ops.exp(-ops.sum(p * ops.log(p + 1e-10)))


@keras.saving.register_keras_serializable(package="zoo")
class VectorQuantizer(keras.layers.Layer):
    """z_e (…, D) → the nearest of K codebook entries e_k, passed on with the straight-through gradient.

    k(z_e) = argmin_k ‖z_e − e_k‖², z_q = e_{k(z_e)}, and the output z_e + sg[z_q − z_e] has the
    value z_q and the gradient of z_e (sg: stop-gradient), so the decoder's gradient at z_q reaches
    the encoder unchanged. The two terms the objective adds, per vector (summed over its D
    dimensions; the model sums them over an example's L vectors):

        codebook:   ‖sg[z_e] − e_k‖²   (moves e_k towards its encoder outputs; "loss" update only)
        commitment: β‖z_e − sg[e_k]‖²  (keeps the encoder near its entries; β = `commitment`)

    With `codebook_update = "ema"` the codebook is not trained by gradient: in each training call,
    with n_k the number of vectors of the (global) batch assigned to entry k and s_k their sum,

        N_k ← γ N_k + (1 − γ) n_k,   m_k ← γ m_k + (1 − γ) s_k,
        Ñ_k = (N_k + ε) / (Σ_j N_j + K ε) · Σ_j N_j   (Laplace smoothing, ε = 1e-5),
        e_k = m_k / Ñ_k,

    starting from N_k = 1, m_k = e_k (an unused entry stays where it is). Under a `tf.distribute`
    strategy n_k and s_k are summed over the replicas first, so every replica makes the same
    update and N replicas equal one device with the same global batch.

    Data-dependent start: the first training call moves every entry onto a random encoder output
    of the global batch (EMA: N_k = 1, m_k = that output), so no entry starts far from the data.

    Dead-code restarts: an entry assigned no vector for `restart_after` consecutive training
    calls is moved the same way; 0 turns them off. The draws are stateless, seeded by `seed` and the call count.

    Args:
        num_embeddings: K.
        embedding_dim: D.
        commitment: β ≥ 0.
        codebook_update: "loss" or "ema".
        ema_decay: γ in [0, 1).
        restart_after: steps without use before an entry restarts (0: never).
        seed: seed of the initial codebook and of the restarts.
    """

    def __init__(self, num_embeddings, embedding_dim, commitment=0.25, codebook_update="loss", ema_decay=0.99,
                 restart_after=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if codebook_update not in ("loss", "ema"):
            raise ValueError(f"codebook_update must be one of loss, ema. Received: codebook_update={codebook_update!r}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1). Received: ema_decay={ema_decay}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.commitment, self.codebook_update = float(commitment), codebook_update
        self.ema_decay, self.restart_after, self.seed = float(ema_decay), int(restart_after), seed

    def build(self, input_shape):
        k, d = self.num_embeddings, self.embedding_dim
        ema = self.codebook_update == "ema"
        # Replica-context assignments (EMA, restarts) write values every replica computed alike.
        self.codebook = self.add_weight(shape=(k, d), name="codebook", trainable=not ema, autocast=False,
                                        initializer=keras.initializers.RandomUniform(-1.0 / k, 1.0 / k, seed=self.seed),
                                        aggregation="only_first_replica")
        state = {"trainable": False, "autocast": False, "aggregation": "only_first_replica"}
        self.ema_count = self.add_weight(shape=(k,), name="ema_count", initializer="ones", **state)
        self.ema_sum = self.add_weight(shape=(k, d), name="ema_sum", initializer="zeros", **state)
        self.unused_steps = self.add_weight(shape=(k,), name="unused_steps", initializer="zeros", **state)
        self.calls = self.add_weight(shape=(), name="calls", initializer="zeros", **state)
        self.ema_sum.assign(self.codebook)

    def nearest(self, z):
        """Indices argmin_k ‖z − e_k‖² (int32, shape z.shape[:-1]) of vectors z (…, D)."""
        z = ops.cast(z, "float32")
        flat = ops.reshape(z, (-1, self.embedding_dim))
        e = ops.convert_to_tensor(self.codebook)
        # ‖z‖² − 2 z·e + ‖e‖², one matrix product.
        distances = (ops.sum(ops.square(flat), axis=1, keepdims=True) - 2.0 * ops.matmul(flat, ops.transpose(e))
                     + ops.sum(ops.square(e), axis=1)[None, :])
        # tf.argmin and tf.gather rather than Keras's: its NaN handling brings ops TFLite's built-ins lack.
        indices = tf.argmin(distances, axis=1, output_type=tf.int32)
        return ops.reshape(indices, ops.shape(z)[:-1])

    def lookup(self, indices):
        """The entries e_k of integer indices (…) as vectors (…, D)."""
        return tf.gather(ops.convert_to_tensor(self.codebook), ops.cast(indices, "int32"), axis=0)

    def call(self, z_e, training=False):
        """(straight-through z_q, indices, per-vector codebook term, per-vector commitment term, counts n_k)."""
        z_e = ops.cast(z_e, "float32")
        indices = self.nearest(z_e)
        z_q = self.lookup(indices)
        codebook_term = ops.sum(ops.square(ops.stop_gradient(z_e) - z_q), axis=-1)
        commitment_term = self.commitment * ops.sum(ops.square(z_e - ops.stop_gradient(z_q)), axis=-1)
        quantized = z_e + ops.stop_gradient(z_q - z_e)
        one_hot = ops.reshape(ops.one_hot(indices, self.num_embeddings, dtype="float32"), (-1, self.num_embeddings))
        counts = ops.sum(one_hot, axis=0)
        if training:
            counts = self.update(ops.reshape(ops.stop_gradient(z_e), (-1, self.embedding_dim)), one_hot)
        return quantized, indices, codebook_term, commitment_term, counts

    def update(self, flat, one_hot):
        """The training call's state updates from this replica's vectors `flat` (n, D) and their
        one-hot assignments (n, K); returns the global counts n_k."""
        counts = replica_sum(ops.sum(one_hot, axis=0))
        if self.codebook_update == "ema":
            sums = replica_sum(ops.matmul(ops.transpose(one_hot), flat))
            g = self.ema_decay
            self.ema_count.assign(g * self.ema_count + (1.0 - g) * counts)
            self.ema_sum.assign(g * self.ema_sum + (1.0 - g) * sums)
            total = ops.sum(self.ema_count)
            smoothed = (self.ema_count + LAPLACE_EPSILON) / (total + self.num_embeddings * LAPLACE_EPSILON) * total
            self.codebook.assign(self.ema_sum / smoothed[:, None])
        self.restart(flat, counts)
        return counts

    def restart(self, flat, counts):
        unused = ops.where(counts > 0, 0.0, self.unused_steps + 1.0)
        first = ops.equal(self.calls, 0.0)  # the first training call places every entry on the data
        dead = ops.logical_or(first, unused >= self.restart_after) if self.restart_after else first
        dead = ops.broadcast_to(dead, (self.num_embeddings,))
        everyone = replica_concat(flat)  # the global batch's vectors, identical on every replica
        seed = tf.stack([tf.constant(self.seed or 0, tf.int32), tf.cast(self.calls, tf.int32)])
        rows = tf.random.stateless_uniform((self.num_embeddings,), seed, 0, tf.shape(everyone)[0], dtype=tf.int32)
        fresh = ops.take(everyone, rows, axis=0)
        self.codebook.assign(ops.where(dead[:, None], fresh, self.codebook))
        self.ema_sum.assign(ops.where(dead[:, None], fresh, self.ema_sum))
        self.ema_count.assign(ops.where(dead, 1.0, self.ema_count))
        self.unused_steps.assign(ops.where(dead, 0.0, unused))
        self.calls.assign(self.calls + 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "commitment": self.commitment, "codebook_update": self.codebook_update, "ema_decay": self.ema_decay,
                "restart_after": self.restart_after, "seed": self.seed}

