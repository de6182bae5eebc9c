"""tf.data input pipelines: whole batches gathered from in-memory images, optionally binarized."""

import numpy as np
import tensorflow as tf

from zoo.checks import check_int
from zoo.data.catalog import BINARIZATIONS
from zoo.data.sources import binarize_static

# Batches made ahead of the training step, on tf.data's own thread.
PREFETCH_BATCHES = 2


def fixed_pipeline_options() -> tf.data.Options:
    """tf.data options of a fixed pipeline: autotuning off.

    A batch costs the pipeline a small fraction of a training step, so one map thread and two
    prefetched batches keep up; autotuning stalled the first step of many epochs instead
    (measured in docs/performance.md, `python benchmarks/step_levers.py epoch-starts`).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def labelled_inputs(x, y):
    """The default inputs structure of a labelled batch: {"x": x, "label": y}."""
    return {"x": x, "label": y}


def make_dataset(x, *, batch_size, shuffle=True, seed=0, binarize="none", drop_remainder=False,
                 repeat=False, labels=None, inputs_of=None) -> tf.data.Dataset:
    """Builds a batched tf.data pipeline of inputs only (the target is the input).

    The images stay in memory as one tensor and every element of the pipeline is a whole batch:
    a shuffled pass draws one seeded permutation of the row indices and gathers each batch's
    rows with one op, instead of shuffling and batching example by example (which cost about a
    tenth of the CPU time of a reference-VAE training step on two cores).

    Streamed examples (`zoo.data.folders.ImageFiles`, which have a `dataset` method) are read
    from their files by their own pipeline instead.

    Args:
        x: Examples (an array, e.g. images in [0, 1]), or an `ImageFiles`.
        batch_size: Examples per batch, >= 1.
        shuffle: A new permutation of the whole set every pass (every epoch, every iterator).
        seed: Makes shuffling and binarization reproducible.
        binarize: "none", "static" (sampled once) or "dynamic" (resampled per batch and epoch).
        drop_remainder: Drop the last partial batch.
        repeat: Repeat forever (each pass reshuffled).
        labels: int labels of x, one per example, for a model that takes them: each batch then
            carries its examples' labels, gathered by the same (shuffled) row indices.
        inputs_of: (x batch, int32 labels batch) → the element, e.g. the model's
            `Autoencoder.inputs_of`; default `labelled_inputs`. Used only with labels.

    Returns:
        A dataset yielding float32 batches of x (Keras then calls compute_loss with y=None), or,
        with labels, `inputs_of(x batch, labels batch)`.

    Raises:
        ValueError: On an unknown binarize, batch_size < 1 or labels that are not one per example.
    """
    if binarize not in BINARIZATIONS:
        raise ValueError(f"Unknown binarize {binarize!r}. Allowed: {', '.join(BINARIZATIONS)}")
    check_int("batch_size", batch_size, 1)
    pack = inputs_of or labelled_inputs
    if labels is not None:
        labels = np.asarray(labels).astype(np.int32)
        if labels.shape != (len(x),):
            raise ValueError(f"labels must hold one label per example: {len(x)} examples. "
                             f"Received: labels of shape {labels.shape}")
    if hasattr(x, "dataset"):
        if binarize != "none":
            raise ValueError("binarize applies to in-memory images in [0, 1], not to files read as they stream")
        ds = x.dataset(int(batch_size), shuffle=shuffle, seed=seed, repeat=repeat, drop_remainder=drop_remainder,
                       labels=labels)
        return ds if labels is None else ds.map(pack)
    x = np.asarray(x, dtype=np.float32)
    if binarize == "static":
        x = binarize_static(x, seed)
    n, size = len(x), int(batch_size)
    images = tf.constant(x)
    starts = tf.data.Dataset.range(0, n - size + 1 if drop_remainder else n, size)  # first row of each batch
    if shuffle:
        # Dataset.random draws a new stream for every iterator, deterministic given the seed:
        # one stateless key per pass, so each epoch has its own permutation, the same ones for
        # the same seed. The key's second word differs from the binarization keys' below.
        def one_pass(key):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64), seed=tf.stack([key, tf.constant(-1 - seed, tf.int64)]))
            return starts.map(lambda a: order[a:a + size])

        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        batches = (keys if repeat else keys.take(1)).flat_map(one_pass)
    else:
        batches = starts.repeat() if repeat else starts

    def rows(item, table=images):  # a batch's rows: item holds its row indices (shuffled) or its first row
        return tf.gather(table, item) if shuffle else table[item:item + size]

    if labels is not None:  # the labels are gathered by the same indices as their images
        label_table = tf.constant(labels)

        def labelled(xb, item):
            return pack(xb, rows(item, label_table))

    if binarize == "dynamic":
        # Every batch gets its own stateless key from a seeded stream that restarts differently
        # for each iterator: fresh samples per batch and epoch, the same sequence for the same seed.
        def sample(item, key):
            xb = rows(item)
            u = tf.random.stateless_uniform(tf.shape(xb), seed=tf.stack([key, tf.constant(seed, tf.int64)]))
            xb = tf.cast(u < xb, tf.float32)
            return xb if labels is None else labelled(xb, item)

        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((batches, keys)).map(sample)
    elif labels is None:
        ds = batches.map(rows)
    else:
        ds = batches.map(lambda item: labelled(rows(item), item))
    return ds.prefetch(PREFETCH_BATCHES).with_options(fixed_pipeline_options())
