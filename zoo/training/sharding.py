"""Threads for batch shards: one intra-op thread per shard's pass, S inter-op threads.

The step itself, and why its gradient is the batch's, is `zoo.models.sharded_step`.
"""

from __future__ import annotations

import warnings

import tensorflow as tf

from zoo.models.sharded_step import shard_sizes, sharded_train_step  # noqa: F401  (the step, re-exported)


def configure_threads(shards: int) -> None:
    """TensorFlow's threads for `shards` concurrent shards: 1 intra-op thread, `shards` inter-op threads.

    Possible only before TensorFlow's runtime starts (`zoo fit` calls it first); later it warns,
    and training goes on correctly with the threads it has, only slower.
    """
    if shards <= 1:
        return
    threading = tf.config.threading
    if (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()) == (1, shards):
        return
    try:
        threading.set_intra_op_parallelism_threads(1)
        threading.set_inter_op_parallelism_threads(shards)
    except RuntimeError:
        warnings.warn(f"batch_shards = {shards}: TensorFlow was already running, so its threads stay as they are "
                      f"(the shards' passes may not run side by side); set them first in the program with "
                      f"zoo.training.sharding.configure_threads({shards})", stacklevel=2)
