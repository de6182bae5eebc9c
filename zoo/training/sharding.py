"""Threads for batch shards: one intra-op thread per shard's pass, S inter-op threads.

The step itself, and why its gradient is the batch's, is `zoo.models.sharded_step`.
`train.batch_shards = "auto"` is resolved on the machine that trains, by `resolve_batch_shards`
(docs/performance.md, "What `batch_shards = "auto"` picks").
"""

from __future__ import annotations

import os
import warnings

import tensorflow as tf

from zoo.models.sharded_step import shard_sizes, sharded_train_step  # noqa: F401  (the step, re-exported)

#: The only machine measured: 2 shards (1 intra-op, 2 inter-op threads) were 20-24% faster there.
MEASURED_CORES = 2


def resolve_batch_shards(setting, *, gpus: int, cpu_cores: int, per_example_objective: bool) -> int:
    """The number of shards `train.batch_shards = setting` means on a machine with `gpus` GPUs and `cpu_cores` cores.

    An integer is returned as it is. "auto" is 1 (the whole batch, TensorFlow's own threads) on
    any GPU, for a family whose objective uses whole-batch statistics, and on a CPU of other than
    2 cores; 2 on a CPU of exactly 2 cores, the only case measured faster. On more cores 1 intra-op
    thread × 2 inter-op threads would leave the others idle, and no other split has been measured.
    """
    if setting != "auto":
        return setting
    if gpus > 0 or not per_example_objective:
        return 1
    return 2 if cpu_cores == MEASURED_CORES else 1


def visible_gpus() -> int:
    """GPUs TensorFlow sees, found without starting its runtime (threads can still be set afterwards)."""
    return len(tf.config.list_physical_devices("GPU"))


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def batch_shards_here(setting, per_example_objective: bool) -> int:
    """`resolve_batch_shards` for this machine's devices."""
    return resolve_batch_shards(setting, gpus=visible_gpus(), cpu_cores=cpu_cores(),
                                per_example_objective=per_example_objective)


def setup_batch_shards(setting, per_example_objective: bool) -> int:
    """Resolves `setting` on this machine and sets the shards' CPU threads, never where a GPU is visible.

    Returns:
        The number of shards.
    """
    gpus = visible_gpus()
    shards = resolve_batch_shards(setting, gpus=gpus, cpu_cores=cpu_cores(),
                                  per_example_objective=per_example_objective)
    if gpus == 0:
        configure_threads(shards)
    return shards


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
