"""The sharded train step: one training batch cut into pieces whose passes run side by side, one per core.

On a small CPU, a reference-VAE batch of 128 examples is too small for a matmul to keep every
core busy, while independent chains of fewer rows, one thread each, run closer to the
machine's matmul rate (measured in docs/performance.md, `python benchmarks/step_levers.py
chains`). So the step cuts the batch into S shards and builds one forward and backward pass per shard; with one intra-op
thread and S inter-op threads TensorFlow's executor runs the shards' passes concurrently, one
per core.

The gradient is the batch's. The objective of the families that allow shards is a mean over
examples plus terms of the parameters only:

    L(B) = (1/|B|)·Σ_{x∈B} ℓ(x) + R(θ),

and with B = B_1 ∪ … ∪ B_S, shard s's loss L(B_s) weighted by |B_s|/|B| sums back to L(B):

    Σ_s (|B_s|/|B|)·L(B_s) = (1/|B|)·Σ_s Σ_{x∈B_s} ℓ(x) + R(θ)·Σ_s |B_s|/|B| = L(B),

so ∇L(B) is the weighted sum of the shards' gradients (equal up to the order of float sums)
and one optimizer step follows, exactly as for the whole batch. Random draws inside a step
(ε of a VAE, denoising noise) come from the same generators, in other draws. An objective that
uses statistics of the whole batch (the sparse family's KL penalty on the batch-mean
activation ρ̂) does not split this way; such a family sets `per_example_objective = False`.
"""

from __future__ import annotations


import keras
import tensorflow as tf


def shard_sizes(n, shards: int) -> list:
    """Sizes of `shards` contiguous shards of n examples, as equal as possible, larger first.

    The first n mod S shards have ⌈n/S⌉ examples, the rest ⌊n/S⌋ (possibly 0 when n < S; an
    empty shard's loss is 0, `tf.nn.compute_average_loss` dividing with `div_no_nan`).
    """
    return [n // shards + tf.cast(i < n % shards, n.dtype) for i in range(shards)]


def sharded_train_step(model: keras.Model, data, shards: int) -> dict:
    """Keras's train step with the batch cut into `shards` (see the module docstring).

    As `Model.train_step` for the TensorFlow backend: loss tracker, loss scaling (mixed
    precision), one `apply_gradients`, metrics; `compute_loss` is the model's own, per shard.
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    n = tf.shape(tf.nest.flatten(x)[0])[0]
    sizes = shard_sizes(n, shards)

    def split(structure):
        if structure is None:
            return [None] * shards
        pieces = [tf.split(t, tf.stack(sizes), num=shards) for t in tf.nest.flatten(structure)]
        return [tf.nest.pack_sequence_as(structure, [p[s] for p in pieces]) for s in range(shards)]

    with tf.GradientTape() as tape:
        total = 0.0
        for x_s, y_s, w_s, size in zip(split(x), split(y), split(sample_weight), sizes):
            y_pred = model(x_s, training=True)
            loss = model.compute_loss(x=x_s, y=y_s, y_pred=y_pred, sample_weight=w_s, training=True)
            total += loss * tf.cast(size, loss.dtype) / tf.cast(n, loss.dtype)
        # The tracker logs the batch loss; compute_loss divides by the replicas, Keras's tracker does not.
        model._loss_tracker.update_state(total * tf.distribute.get_strategy().num_replicas_in_sync,
                                         sample_weight=n)
        scaled = model.optimizer.scale_loss(total)
    gradients = tape.gradient(scaled, model.trainable_weights)
    model.optimizer.apply_gradients(zip(gradients, model.trainable_weights))
    return model.compute_metrics(x, y, None, sample_weight=sample_weight)
