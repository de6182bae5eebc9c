"""A distributed training loop that drives Keras's own `train_step`, for strategies `Model.fit` cannot use.

Keras 3's `Model.fit` fails under `tf.distribute.MultiWorkerMirroredStrategy` (keras-team/keras#20585:
a PerReplica conversion error in its symbolic build, then a reduction error when it aggregates
metrics). This loop keeps everything that works: the model and its optimizer are built inside
`strategy.scope()` (`zoo.training.trainer.build_model`), and each step runs the model's own `train_step`
(tape, loss scaling, optimizer, metrics) under `strategy.run`, over
`strategy.distribute_datasets_from_function`, inside a `tf.function`. The same Keras callbacks
see the same events as under `fit` (progress bar, history, checkpoints, the divergence guard,
`EarlyStopping`), so a run looks the same either way.

Metrics are Keras's own: their variables are on-read synchronized, so every replica updates its
local totals and reading a result in cross-replica context sums them over all replicas of all
workers. Every log the callbacks see is therefore a global figure, the same on every worker,
which keeps decisions such as early stopping identical across the cluster. Callbacks that stop
training on local state (a wall-clock budget) are honoured at the end of an epoch: if one
worker stops, all do. A callback that stops mid-epoch must decide from the (global) logs.

The same code takes any `tf.distribute` strategy: the default one, `MirroredStrategy`,
`MultiWorkerMirroredStrategy` or `TPUStrategy`.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from zoo.data.pipeline import PREFETCH_BATCHES


def is_multi_worker(strategy) -> bool:
    """Whether `strategy` spans more than one worker process."""
    extended = strategy.extended
    return bool(getattr(extended, "_in_multi_worker_mode", lambda: False)())


def worker_index(strategy) -> tuple[str | None, int]:
    """The task type and index of this process in its cluster (None, 0 on a single machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not is_multi_worker(strategy):
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy) -> bool:
    """Whether this process writes the run's outputs: the "chief" task, or worker 0 if there is none."""
    task_type, index = worker_index(strategy)
    if task_type is None:
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and index == 0


def check_global_batch(global_batch: int, strategy) -> None:
    """Raises a one-line ValueError unless the global batch splits evenly over the replicas."""
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ValueError(f"batch_size {global_batch} does not split evenly over {replicas} replicas: "
                         f"choose a multiple of {replicas}")


def shard_global_batches(make_global_dataset):
    """A `dataset_fn` for `distribute_datasets_from_function` that shards each global batch.

    `make_global_dataset()` returns the batched dataset a single process would train on. Every
    worker builds that same (seeded) pipeline, keeps its own contiguous slice of each global
    batch and splits the slice into one batch per local replica: replica r of the cluster sees
    rows [r·b, (r+1)·b) of the global batch, b = global batch / replicas. The global batch of
    every step is thus exactly the single-process batch, whatever the number of workers, which
    makes N workers train exactly like one process (deterministic shuffling and dynamic
    binarization included). Each worker reads the whole (in-memory) dataset, a small cost
    next to the training step for datasets of this size.

    Every batch, the last partial one included, must have a multiple of the replica count
    rows (see `trim_to_replicas`).
    """

    def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        workers = input_context.num_input_pipelines
        worker = input_context.input_pipeline_id
        replicas = input_context.num_replicas_in_sync
        local = replicas // workers

        def my_part(x):
            rows = tf.shape(x)[0]
            tf.debugging.assert_equal(rows % replicas, 0, message="batch does not split over the replicas")
            per_worker = rows // workers
            part = x[worker * per_worker:(worker + 1) * per_worker]
            return tf.reshape(part, tf.concat([[local, rows // replicas], tf.shape(x)[1:]], axis=0))

        ds = make_global_dataset()
        if replicas == 1:
            return ds
        # An element may be a structure (a model's inputs with labels): every part is sliced alike.
        return ds.map(lambda element: tf.nest.map_structure(my_part, element)).unbatch().prefetch(
            PREFETCH_BATCHES * local)

    return dataset_fn


def trim_to_replicas(x, replicas: int):
    """`x` without its last `len(x) mod replicas` examples, so every batch splits evenly."""
    return x[: len(x) - len(x) % replicas]


def evaluation_batch(n: int, batch: int, replicas: int) -> int:
    """The batch size of an evaluation pass over n examples on `replicas` replicas.

    Under a strategy, Keras's `evaluate` (and `fit`'s validation) first reduces the first
    distributed batch to its mean over replicas, which fails ("AddN must have the same size")
    when the replicas' parts of that batch differ in size: the batch is rounded up to a multiple
    of the replica count, and a set smaller than one batch is cut after its largest multiple of
    the replica count (its last n mod replicas examples make a second, partial batch).
    """
    batch = -(-batch // replicas) * replicas
    if n < batch and n >= replicas:
        return n - n % replicas
    return batch


def steps_for(n: int, global_batch: int) -> int:
    """Batches in one pass over n examples (the last one partial)."""
    return max(1, math.ceil(n / global_batch))


class _Distributed:
    """A distributed dataset and, if it is infinite, the iterator that persists across epochs."""

    def __init__(self, strategy, dataset_fn):
        self.infinite = None

        def record(input_context):
            ds = dataset_fn(input_context)
            self.infinite = bool(ds.cardinality() == tf.data.INFINITE_CARDINALITY)
            return ds

        self.dataset = strategy.distribute_datasets_from_function(record)
        self._iterator = None

    def epoch_iterator(self):
        # Like Model.fit: a repeated dataset is consumed continuously, a finite one restarts
        # (and reshuffles) every epoch.
        if not self.infinite:
            return iter(self.dataset)
        if self._iterator is None:
            self._iterator = iter(self.dataset)
        return self._iterator


def _step_function(model, strategy, step):
    """A tf.function running `step` (train_step or test_step) n times, returning the global metrics."""

    def one_step(data):
        strategy.run(step, args=(data,))

    if model.jit_compile and strategy.num_replicas_in_sync == 1:
        # XLA only on one replica: compiled steps cannot reach other devices' variables (nor under fit).
        one_step = tf.function(one_step, jit_compile=True, reduce_retracing=True)

    @tf.function(reduce_retracing=True)
    def run(iterator, steps):
        for _ in tf.range(steps):
            one_step(next(iterator))
        # In cross-replica context, reading a metric sums its on-read variables over all replicas.
        return model.get_metrics_result()

    return run


def _python_logs(logs) -> dict:
    return {k: float(np.asarray(v)) for k, v in logs.items()}


def _steps_per_call(model) -> int:
    """Steps per call into the compiled function: the model's `steps_per_execution`."""
    return max(1, int(model.steps_per_execution or 1))


def _run_epoch(function, iterator, steps: int, chunk: int, on_begin, on_end, should_stop):
    logs = {}
    for begin in range(0, steps, chunk):
        n = min(chunk, steps - begin)
        on_begin(begin)
        logs = _python_logs(function(iterator, tf.constant(n)))
        on_end(begin + n - 1, logs)
        if should_stop():
            break
    return logs


def fit_custom_loop(model, strategy, make_dataset_fn, *, epochs: int, steps_per_epoch: int, initial_epoch: int = 0,
                    callbacks=(), validation_data=None, validation_steps: int | None = None,
                    verbose="auto") -> keras.callbacks.History:
    """Trains `model` like `Model.fit`, with a loop that also works under `MultiWorkerMirroredStrategy`.

    Args:
        model: a compiled model whose variables (optimizer's included) were created in
            `strategy.scope()`; see `zoo.training.trainer.build_model`.
        strategy: the `tf.distribute` strategy the model was built in.
        make_dataset_fn: `dataset_fn(input_context)` for `strategy.distribute_datasets_from_function`,
            yielding per-replica batches, e.g. `shard_global_batches(...)`. An infinite (repeated)
            dataset is consumed continuously across epochs; a finite one restarts every epoch.
        epochs: index of the last epoch (as in `fit`).
        steps_per_epoch: train steps per epoch (on a finite dataset: the batches of one pass).
        initial_epoch: epochs already done (a resumed run).
        callbacks: Keras callbacks; they receive the same calls as under `fit`.
        validation_data: optional `dataset_fn` of a finite validation set, evaluated after every
            epoch with the model's `test_step`; its metrics are logged with a `val_` prefix.
        validation_steps: batches of one pass over the validation set.
        verbose: "auto", 0, 1 or 2, as in `fit` (0: no progress bar).

    Returns:
        The `History` callback (also set as `model.history`).
    """
    if validation_data is not None and not validation_steps:
        raise ValueError("validation_steps is required with validation_data (the batches of one pass)")
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_history=True, add_progbar=verbose != 0, model=model,
        verbose=verbose, epochs=epochs, steps=steps_per_epoch)
    train = _Distributed(strategy, make_dataset_fn)
    val = _Distributed(strategy, validation_data) if validation_data is not None else None
    train_function = _step_function(model, strategy, model.train_step)
    test_function = _step_function(model, strategy, model.test_step) if val is not None else None
    chunk = _steps_per_call(model)
    any_worker = _any_worker_function(strategy)
    model.stop_training = False
    callback_list.on_train_begin()
    epoch_logs = None
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        logs = _run_epoch(train_function, train.epoch_iterator(), steps_per_epoch, chunk,
                          callback_list.on_train_batch_begin, callback_list.on_train_batch_end,
                          lambda: model.stop_training)
        epoch_logs = dict(logs)  # the last chunk's logs are the metrics over the whole epoch
        if val is not None:
            val_logs = evaluate_custom_loop(model, strategy, val, validation_steps, callbacks=callback_list,
                                            _function=test_function)
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if is_multi_worker(strategy):
            # A callback may stop on local state (a wall-clock budget): stop everywhere if anywhere.
            model.stop_training = any_worker(model.stop_training)
        if model.stop_training:
            break
    if isinstance(model.optimizer, keras.optimizers.Optimizer) and epochs > 0:
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callback_list.on_train_end(logs=epoch_logs)
    return model.history


def _any_worker_function(strategy):
    """`any_worker(flag)`: whether `flag` is true on any worker (every worker calls it together)."""

    @tf.function
    def votes(local):
        def replica_fn(vote):
            return tf.distribute.get_replica_context().all_reduce("SUM", tf.identity(vote))

        return strategy.run(replica_fn, args=(local,))

    def any_worker(flag: bool) -> bool:
        result = votes(tf.constant(1.0 if flag else 0.0))
        return bool(strategy.experimental_local_results(result)[0].numpy() > 0)

    return any_worker


def evaluate_custom_loop(model, strategy, dataset_fn, steps: int, callbacks=None, _function=None) -> dict:
    """The model's metrics over one pass of a finite `dataset_fn` (or `_Distributed`), like `evaluate`.

    Args:
        model, strategy: as in `fit_custom_loop`.
        dataset_fn: `dataset_fn(input_context)` of a finite dataset, or a distributed one made before.
        steps: batches of one pass.
        callbacks: an optional `CallbackList` that receives the test events.

    Returns:
        The global metrics as floats, e.g. {"loss": ...}.
    """
    distributed = dataset_fn if isinstance(dataset_fn, _Distributed) else _Distributed(strategy, dataset_fn)
    function = _function or _step_function(model, strategy, model.test_step)
    if callbacks is None:
        callbacks = keras.callbacks.CallbackList([], model=model)
    callbacks.on_test_begin()
    model.reset_metrics()
    _run_epoch(function, distributed.epoch_iterator(), steps, _steps_per_call(model),
               callbacks.on_test_batch_begin, callbacks.on_test_batch_end, lambda: False)
    logs = _python_logs(model.get_metrics_result())
    callbacks.on_test_end(logs)
    return logs


def sync_from_chief(strategy, model, epoch: int) -> int:
    """Copies the chief's model and optimizer state, and its epoch count, to every worker.

    Only the chief restores a checkpoint (other workers need not see the run directory: no
    shared filesystem is assumed); this broadcast then starts every worker from the same state.
    Returns the chief's `epoch`.
    """
    if not is_multi_worker(strategy):
        return epoch
    variables = [v for v in [*model.variables, *model.optimizer.variables] if v.synchronization != "on_read"]
    seen, unique = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            unique.append(v)
    chief = is_chief(strategy)

    @tf.function
    def broadcast(values):
        def replica_fn(values):
            ctx = tf.distribute.get_replica_context()
            keep = tf.logical_and(tf.constant(chief), tf.equal(ctx.replica_id_in_sync_group, 0))
            # Zero everywhere but on the chief's first replica: the sum is the chief's value.
            masked = [tf.where(keep, v, tf.zeros_like(v)) for v in values]
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, masked)

        return strategy.run(replica_fn, args=(values,))

    # Collectives move floats; float64 carries integer counters (steps, seeds) exactly.
    values = [tf.cast(tf.convert_to_tensor(v), tf.float64) for v in unique]
    values.append(tf.constant(float(epoch), tf.float64))
    results = broadcast(values)
    results = [strategy.experimental_local_results(r)[0] for r in results]
    for v, value in zip(unique, results[:-1]):
        v.assign(tf.cast(value, v.dtype))
    return int(results[-1].numpy())
