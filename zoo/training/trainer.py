"""One trainer for every family: a strategy by name, build and compile in its scope, fit.

A run lives in one directory (by default `runs/<recipe name>`):

    model.keras        the trained model (reloads with safe_mode=True)
    best.keras         the best model by validation loss (or training loss)
    recipe.toml        the resolved recipe
    history.csv        one row per epoch
    metrics.json       final metrics and steady-state `train_samples_per_second`
    reconstructions.png test images above their reconstructions
    logs/              TensorBoard
    checkpoints/       resumable state; a killed run resumes when the same command is rerun
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import zoo.data.pipeline as zdata
from zoo.data.examples import materialize
from zoo.data.splits import load_splits
import zoo.training.loops as zloop
from zoo.training.callbacks import BestModelCheckpoint, DivergenceGuard, EpochTimer, ResumableCheckpoint, TimeBudget
from zoo.configs.recipe import Recipe, check_model_for_data
from zoo.training.run_dir import diverged_at, run_state, same_recipe
from zoo.registry import Registry
from zoo.errors import TrainingDiverged
from zoo.io import (LOCK_FILE, atomic_path, check_free_space, exclusive_lock, remove_dead_temporaries, remove_path,
                    write_json, write_text)
from zoo.training.optimizers import FusedAdam
from zoo.training.sharding import batch_shards_here, setup_batch_shards

#: Distribution strategies by name: name → a function that creates it.
STRATEGIES: Registry = Registry("strategy")
_strategy = STRATEGIES.register


@_strategy("auto")
def _auto():
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


@_strategy("one_device")
def _one_device():
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


_MIRRORED = {}


@_strategy("mirrored")
def _mirrored():
    gpus = tf.config.list_logical_devices("GPU")
    # Without GPUs, mirror over the logical CPU devices (one unless configured otherwise).
    devices = tuple(d.name for d in gpus) or tuple(d.name for d in tf.config.list_logical_devices("CPU"))
    # One strategy per device set and process: a second MirroredStrategy over the same devices
    # numbers its collective ops like the first, and its all-reduces then fail with a shape mismatch.
    if devices not in _MIRRORED:
        _MIRRORED[devices] = tf.distribute.MirroredStrategy(list(devices))
    return _MIRRORED[devices]


_MULTI_WORKER = []


@_strategy("multi_worker")
def _multi_worker():
    if "TF_CONFIG" not in os.environ:
        raise ValueError("strategy 'multi_worker' needs TF_CONFIG set on every worker "
                         '(e.g. {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}})')
    # One per process: it configures the runtime's collectives, which is possible only once, at startup.
    if not _MULTI_WORKER:
        try:
            _MULTI_WORKER.append(tf.distribute.MultiWorkerMirroredStrategy())
        except RuntimeError as e:
            if "startup" not in str(e):
                raise
            raise ValueError("strategy 'multi_worker' must be created before TensorFlow runs anything: call "
                             "zoo.training.trainer.make_strategy('multi_worker') first in the program (`zoo fit` does)") from None
    return _MULTI_WORKER[0]


@_strategy("tpu")
def _tpu():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError) as e:
        raise ValueError(f"strategy 'tpu': no TPU found ({str(e).splitlines()[0]})") from None
    return tf.distribute.TPUStrategy(resolver)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy called `name`: auto, one_device, mirrored, multi_worker or tpu."""
    return STRATEGIES.get(name)()


def early_strategy(recipe_path, overrides=()) -> None:
    """Configures TensorFlow's runtime as the recipe asks, before anything runs TensorFlow.

    Validating a recipe builds its model, which starts TensorFlow's runtime; a multi-worker
    strategy and the threads of `train.batch_shards` must configure that runtime first. This
    reads only the recipe's `train.strategy`, `train.batch_shards` and `model.family` (with its
    `base` chain and `overrides`), without validating the recipe.
    """
    from zoo import registry
    from zoo.configs.recipe import apply_override, read_recipe, resolve_recipe_path

    try:
        raw = read_recipe(resolve_recipe_path(recipe_path))
        for override in overrides:
            raw = apply_override(raw, override)
    except (ValueError, OSError):
        return  # load_recipe reports the problem
    train = raw.get("train")
    if isinstance(train, dict) and train.get("strategy") == "multi_worker":
        make_strategy("multi_worker")
    shards = train.get("batch_shards", "auto") if isinstance(train, dict) else "auto"
    family = raw.get("model", {}).get("family") if isinstance(raw.get("model"), dict) else None
    hparams = registry.hparams_class(family) if family in registry.list_models() else None
    if (shards == "auto" or isinstance(shards, int)) and hparams is not None:
        setup_batch_shards(shards, hparams.per_example_objective)


@dataclasses.dataclass
class Run:
    """The outcome of `fit`: the trained model, its history and its directory.

    `dir` is None on a non-chief worker of a multi-worker run: only the chief writes one.
    """

    model: keras.Model
    history: dict
    dir: Path | None
    recipe: Recipe
    metrics: dict


def make_optimizer(train, steps_total: int) -> keras.optimizers.Optimizer:
    """The optimizer and learning-rate schedule a `TrainConfig` asks for."""
    lr = train.learning_rate
    if train.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, steps_total))
    elif train.lr_schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(lr, decay_steps=max(1, steps_total), decay_rate=0.1)
    kwargs = {"learning_rate": lr}
    if train.clipnorm:
        kwargs["clipnorm"] = train.clipnorm
    if train.optimizer == "adamw":
        return keras.optimizers.AdamW(weight_decay=train.weight_decay, **kwargs)
    # "adam" is Keras's Adam applied by one fused kernel per variable (same update, fewer ops).
    return {"adam": FusedAdam, "sgd": keras.optimizers.SGD,
            "rmsprop": keras.optimizers.RMSprop}[train.optimizer](**kwargs)


def build_model(recipe: Recipe, strategy, steps_total: int, input_shape=None, preprocessing=None) -> keras.Model:
    """Builds, calls once and compiles the model (with its optimizer built) inside `strategy.scope()`,
    for examples of `input_shape` (default: the recipe's) with the data's `preprocessing`."""
    input_shape = tuple(input_shape or recipe.input_shape)
    with strategy.scope():
        model = recipe.model.build(input_shape, preprocessing)
        model(model.inputs_of(np.zeros((1, *input_shape), "float32"), np.zeros(1, "int64")))
        model.compile(optimizer=make_optimizer(recipe.train, steps_total), jit_compile=recipe.train.jit_compile,
                      steps_per_execution=recipe.train.steps_per_execution)
        model.optimizer.build(model.trainable_variables)
    model.batch_shards = batch_shards_here(recipe.train.batch_shards, recipe.model.hparams.per_example_objective)
    return model


def load_data(recipe: Recipe):
    """The recipe's `zoo.data.splits.Splits`, checked against its model before anything is written.

    Raises:
        DataError: data that cannot be read or split.
        RecipeError: a model that cannot take the data (its shape or units) or would not fit in memory.
    """
    splits = load_splits(recipe.data, recipe.train.seed, recipe.input_shape)
    labels = [y for y in (splits.y_fit, splits.y_val, splits.y_test) if y is not None]
    check_model_for_data(recipe.model, splits.input_shape, splits.bounded, recipe.path or recipe.name,
                         labels=np.concatenate(labels) if splits.labelled else None)
    return splits


def run_dir_of(recipe: Recipe, out) -> Path:
    """The run directory `fit` writes: `out`, or runs/<recipe name>."""
    run_dir = Path(out) if out else Path("runs") / recipe.name
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"Run directory {run_dir} is a file; choose another --out")
    return run_dir


def prepare_run_dir(recipe: Recipe, out, resume: bool, overwrite: bool) -> Path:
    """The run directory, refusing to clobber a finished or diverged run unless asked to.

    The caller holds the directory's lock (`zoo.io.exclusive_lock`): `overwrite` empties the
    directory but keeps its lock file.
    """
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: choose one")
    run_dir = run_dir_of(recipe, out)
    state = run_state(run_dir) if run_dir.is_dir() else "empty"
    if state == "finished" and not (resume or overwrite):
        raise ValueError(f"{run_dir} already holds a finished run: pass --resume to train it further, "
                         f"--overwrite to replace it, or --out for another directory")
    if state == "diverged" and not (resume or overwrite):
        epoch, reason = diverged_at(run_dir)
        raise ValueError(f"{run_dir} holds a run that diverged ({reason}); lower train.learning_rate (or set "
                         f"train.clipnorm) and rerun with --resume to continue from its last finite checkpoint "
                         f"(epoch {epoch}), or with --overwrite to start again")
    if run_dir.is_dir() and state != "empty":
        previous = (run_dir / "recipe.toml").read_text() if (run_dir / "recipe.toml").is_file() else None
        ignoring = RESUMABLE_CHANGES + (DIVERGED_CHANGES if state == "diverged" else ())
        if overwrite:
            for entry in run_dir.iterdir():
                if entry.name != LOCK_FILE:
                    remove_path(entry)
        elif previous is not None and not same_recipe(previous, recipe, ignoring=ignoring):
            changes = ", ".join(f"train.{k}" for k in ignoring)
            raise ValueError(f"{run_dir} holds a run of a different recipe (resuming it may change only {changes}): "
                             f"pass --overwrite to replace it, or --out for another directory")
        if state == "diverged":
            (run_dir / "metrics.json").unlink()  # resumed: a kill from here on leaves a partial run
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


# What a resumed run may change; everything else must match the run it continues.
RESUMABLE_CHANGES = ("epochs", "steps_per_epoch", "strategy", "loop", "max_minutes", "batch_shards", "steps_per_execution")
# What a diverged run resumed with --resume may change as well: the step size.
DIVERGED_CHANGES = ("learning_rate", "clipnorm")


def _same_training(previous_toml: str, recipe: Recipe) -> bool:
    """Whether a run's saved recipe.toml describes the same training as `recipe` (up to `RESUMABLE_CHANGES`)."""
    return same_recipe(previous_toml, recipe, ignoring=RESUMABLE_CHANGES)


def needed_disk_bytes(model) -> int:
    """A bound on what a run writes: its checkpoints, best.keras and model.keras (each the weights
    and the optimizer's slots, float32) and room for the history, figures and logs."""
    variables = sum(int(np.prod(v.shape)) for v in model.weights)
    slots = sum(int(np.prod(v.shape)) for v in model.optimizer.variables)
    per_file = 4 * (variables + slots)
    return per_file * (2 + 2 + 1) + 8 * 2**20  # two kept checkpoints and one being written, best, model


def make_callbacks(recipe: Recipe, run_dir: Path, checkpoint: ResumableCheckpoint, timer: EpochTimer,
                   monitor: str, guard: DivergenceGuard | None = None) -> list:
    """The callbacks of a run; shared by `fit` and the custom distributed loop. The divergence
    guard comes first, so the checkpoints of the same epoch know whether it fired."""
    guard = guard if guard is not None else checkpoint.guard or DivergenceGuard()
    callbacks = [
        guard,
        timer,
        checkpoint,
        BestModelCheckpoint(run_dir / "best.keras", monitor=monitor, guard=guard),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs")),
    ]
    if recipe.train.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=recipe.train.early_stopping_patience))
    if recipe.train.max_minutes:
        callbacks.append(TimeBudget(recipe.train.max_minutes))
    return callbacks


def use_custom_loop(train, strategy) -> bool:
    """Whether `train.loop` runs `zoo.training.loops.fit_custom_loop` (True) or Keras's `Model.fit` (False).

    "auto" takes the custom loop where `Model.fit` fails or miscounts: under
    MultiWorkerMirroredStrategy (keras-team/keras#20585); with `steps_per_execution` > 1 on more
    than one replica, where Keras's multi-step loop asks for an unfed placeholder
    (keras-team/keras#19246); and when `steps_per_epoch` is not a multiple of
    `steps_per_execution`, where `Model.fit` runs whole executions and so trains
    ⌈steps_per_epoch / steps_per_execution⌉·steps_per_execution steps per epoch. The custom loop
    runs exactly `steps_per_epoch`. `loop = "fit"` is refused in those cases, in one line.
    """
    per_call = train.steps_per_execution
    several_steps = per_call > 1 and strategy.num_replicas_in_sync > 1
    uneven = bool(train.steps_per_epoch) and train.steps_per_epoch % per_call != 0
    if train.loop == "fit" and several_steps:
        raise ValueError(f"loop 'fit' fails with steps_per_execution > 1 on {strategy.num_replicas_in_sync} replicas "
                         "(keras-team/keras#19246): use loop = \"auto\" or \"custom\", or steps_per_execution = 1")
    if train.loop == "fit" and uneven:
        raise ValueError(f"loop 'fit' would train {-(-train.steps_per_epoch // per_call) * per_call} steps per epoch, "
                         f"not steps_per_epoch = {train.steps_per_epoch}, with steps_per_execution = {per_call}: "
                         "use loop = \"auto\" or \"custom\", or a steps_per_epoch that is a multiple of it")
    return train.loop == "custom" or (train.loop == "auto"
                                      and (zloop.is_multi_worker(strategy) or several_steps or uneven))


def fit(recipe: Recipe, *, out=None, resume: bool = False, overwrite: bool = False, verbose="auto") -> Run:
    """Trains `recipe` and writes its run directory.

    Rerunning the same command after a crash resumes from the last finished epoch; a finished
    run is refused unless `resume` (train further, to `epochs`) or `overwrite` (start again).

    Under `multi_worker` (or `train.loop = "custom"`) training runs `zoo.training.loops.fit_custom_loop`,
    which drives the model's own train step like `Model.fit` does. There every worker runs this
    same function; only the chief writes the run directory, the other workers write theirs to a
    temporary directory that is deleted at the end, and they start from the chief's state.

    The chief holds the run directory's OS lock for the whole call (`zoo.io.exclusive_lock`), and
    the divergence guard (`zoo.training.callbacks.DivergenceGuard`, `DIVERGENCE_GROWTH`) stops a
    run whose loss diverged; docs/failures.md has the rules.

    Returns:
        A `Run` with the model, the history (all epochs, resumed ones included) and the directory.

    Raises:
        TrainingDiverged: the loss diverged; the run is kept at its last finite checkpoint and
            marked `"finished": false` (a rerun needs `resume=True`).
        RunLocked: another process is writing the run directory.
        NotEnoughSpace: the run directory's disk cannot hold the run's files.
        ValueError, DataError, RecipeError: a finished or different run in the way, bad data.
    """
    train = recipe.train
    setup_batch_shards(train.batch_shards, recipe.model.hparams.per_example_objective)  # CPU threads: no GPU only
    splits = load_data(recipe)
    x_fit, x_val, x_test = splits.x_fit, splits.x_val, splits.x_test
    keras.utils.set_random_seed(train.seed)
    if train.mixed_precision != "float32":
        keras.mixed_precision.set_global_policy(train.mixed_precision)
    scratch = None
    held = contextlib.ExitStack()
    try:
        # The strategy comes first: a multi-worker strategy must exist before TensorFlow runs anything.
        strategy = make_strategy(train.strategy)
        custom = use_custom_loop(train, strategy)
        if zloop.is_chief(strategy):
            # One writer per run directory, from reading its state to writing metrics.json.
            held.enter_context(exclusive_lock(run_dir_of(recipe, out), "run directory"))
            run_dir = prepare_run_dir(recipe, out, resume, overwrite)
        else:
            scratch = run_dir = Path(tempfile.mkdtemp(prefix=f"zoo-worker{zloop.worker_index(strategy)[1]}-"))
            verbose = 0
        remove_stale_temp_files(run_dir)
        if custom:
            zloop.check_global_batch(train.batch_size, strategy)
            # Every batch (the last partial one too) must split evenly over the replicas.
            replicas = strategy.num_replicas_in_sync
            x_fit, x_test = zloop.trim_to_replicas(x_fit, replicas), zloop.trim_to_replicas(x_test, replicas)
            x_val = zloop.trim_to_replicas(x_val, replicas) if x_val is not None else None
        steps = train.steps_per_epoch or int(np.ceil(len(x_fit) / train.batch_size))
        model = build_model(recipe, strategy, steps * train.epochs, splits.input_shape, splits.preprocessing)
        # The labels each split feeds a model that takes them (`Autoencoder.inputs_of`), else None.
        y_fit, y_val, y_test = (fed_labels(model, x, y) for x, y in
                                ((x_fit, splits.y_fit), (x_val, splits.y_val), (x_test, splits.y_test)))
        given = {"labels": y_fit, "inputs_of": model.inputs_of}
        check_free_space(run_dir, needed_disk_bytes(model), "this run")
        write_text(run_dir / "recipe.toml", recipe.to_toml())
        guard = DivergenceGuard(DIVERGENCE_GROWTH)
        checkpoint = ResumableCheckpoint(run_dir / "checkpoints", run_dir / "history.csv", guard=guard)
        initial_epoch = checkpoint.restore(model)
        if initial_epoch and train.lr_schedule == "constant":
            # The checkpoint restored the optimizer's learning-rate variable too: the recipe's value
            # wins (a diverged run resumed with --resume continues at its lowered rate).
            model.optimizer.learning_rate = train.learning_rate
        if custom:
            initial_epoch = zloop.sync_from_chief(strategy, model, initial_epoch)
        timer = EpochTimer()
        monitor = monitor_of(model, validation=x_val is not None)
        callbacks = make_callbacks(recipe, run_dir, checkpoint, timer, monitor, guard)
        for callback in callbacks:
            if isinstance(callback, BestModelCheckpoint):
                # A resumed run only replaces best.keras with a model better than all earlier epochs.
                seen = [r[monitor] for r in checkpoint.rows if np.isfinite(r.get(monitor, np.nan))]
                callback.best = min(seen, default=callback.best)
        binarize = "dynamic" if recipe.data.binarize == "dynamic" else "none"
        val_batch = max(train.batch_size, 500)
        test_loss = None
        start = time.perf_counter()
        if custom:
            replicas = strategy.num_replicas_in_sync
            val_batch = -(-val_batch // replicas) * replicas

            def fit_data():
                return zdata.make_dataset(x_fit, batch_size=train.batch_size, seed=train.seed, binarize=binarize,
                                          repeat=bool(train.steps_per_epoch), **given)

            def val_data():
                return zdata.make_dataset(x_val, batch_size=val_batch, shuffle=False, labels=y_val,
                                          inputs_of=model.inputs_of)

            if initial_epoch < train.epochs:
                zloop.fit_custom_loop(
                    model, strategy, zloop.shard_global_batches(fit_data), epochs=train.epochs,
                    initial_epoch=initial_epoch, steps_per_epoch=steps, callbacks=callbacks,
                    validation_data=zloop.shard_global_batches(val_data) if x_val is not None else None,
                    validation_steps=zloop.steps_for(len(x_val), val_batch) if x_val is not None else None,
                    verbose=verbose)
            wall = time.perf_counter() - start
            test_loss = zloop.evaluate_custom_loop(
                model, strategy,
                zloop.shard_global_batches(lambda: zdata.make_dataset(x_test, batch_size=val_batch, shuffle=False,
                                                                      labels=y_test, inputs_of=model.inputs_of)),
                zloop.steps_for(len(x_test), val_batch))["loss"]
        else:
            ds = zdata.make_dataset(x_fit, batch_size=train.batch_size, seed=train.seed, binarize=binarize,
                                    repeat=bool(train.steps_per_epoch), **given)
            if not train.steps_per_epoch:
                # A shuffled pass has an unknown cardinality (flat_map): Keras would learn its length by
                # running out of data in the first epoch, warning "Your input ran out of data". State it.
                ds = ds.apply(tf.data.experimental.assert_cardinality(steps))
            val = (zdata.make_dataset(x_val, shuffle=False, labels=y_val, inputs_of=model.inputs_of,
                                      batch_size=zloop.evaluation_batch(len(x_val), val_batch,
                                                                        strategy.num_replicas_in_sync))
                   if x_val is not None else None)
            if initial_epoch < train.epochs:
                model.fit(ds, epochs=train.epochs, initial_epoch=initial_epoch,
                          steps_per_epoch=train.steps_per_epoch or None, validation_data=val,
                          callbacks=callbacks, verbose=verbose, shuffle=False)  # the dataset shuffles itself
            wall = time.perf_counter() - start
        rows = checkpoint.rows
        if guard.diverged:
            stop_diverged(recipe, run_dir if scratch is None else None, guard, rows)
        with strategy.scope():  # the family's own second stage, if any (`Autoencoder.after_fit`)
            model.after_fit(x_fit, y=y_fit, batch_size=train.batch_size, seed=train.seed,
                            steps_per_epoch=train.steps_per_epoch or None)
        run = finish_run(recipe, model, run_dir, rows, timer, steps, wall, x_test, test_loss=test_loss, splits=splits,
                         y_test=y_test)
        if scratch is not None:
            run.dir = None  # this worker wrote no run directory: its scratch copy is deleted below
        return run
    finally:
        held.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        if train.mixed_precision != "float32":
            keras.mixed_precision.set_global_policy("float32")


#: The divergence rule's growth factor: a loss more than this many times max(|L₀|, 1) above its start L₀.
DIVERGENCE_GROWTH = 1e3


def stop_diverged(recipe: Recipe, run_dir: Path | None, guard: DivergenceGuard, rows: list) -> None:
    """Marks a diverged run unfinished (metrics.json with the reason) and raises `TrainingDiverged`.

    Its checkpoints end at the last epoch with a finite loss and best.keras holds the best
    finite model; no model.keras is written.
    """
    good = rows[-1]["epoch"] if rows else 0
    if run_dir is not None:
        last = {k: v for k, v in (rows[-1] if rows else {}).items() if k != "epoch"}
        write_json(run_dir / "metrics.json", {
            **last, "epochs": good, "finished": False,
            "diverged": {"reason": guard.describe(), "epoch": guard.epoch, "batch": guard.batch,
                         "start_loss": guard.start, "last_finite_epoch": good,
                         "learning_rate": recipe.train.learning_rate,
                         "rule": f"a non-finite loss, or one more than {guard.growth:g} x max(|start|, 1) above "
                                 f"its start"}})
    lr = recipe.train.learning_rate
    where = run_dir if run_dir is not None else "the run"
    kept = f"is kept at epoch {good} (checkpoints/, best.keras)" if good else "has no finite epoch to keep"
    rerun = (f"rerun with --resume to continue from epoch {good}, or --overwrite to start again" if good
             else "rerun with --resume (or --overwrite) to start again")
    raise TrainingDiverged(
        f"training diverged: {guard.describe()}; {where} {kept}. Lower train.learning_rate (now {lr:g}, e.g. "
        f"--set train.learning_rate={lr / 10:g}) or set train.clipnorm, and {rerun}",
        run_dir=run_dir, epoch=good, reason=guard.describe())


def fit_recipe(recipe: Recipe, epochs: int | None = None, steps_per_epoch: int | None = None,
               strategy: str | None = None, **kwargs) -> Run:
    """`fit` with the common `train` overrides (epochs, steps_per_epoch, strategy) applied first."""
    overrides = {k: v for k, v in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch),
                                   ("strategy", strategy)) if v is not None}
    return fit(recipe.replace("train", **overrides) if overrides else recipe, **kwargs)


def remove_stale_temp_files(run_dir: Path) -> None:
    """Deletes temporary files a killed process left behind (`zoo.io.atomic_path` names them .tmp<pid>.*)."""
    for directory in (run_dir, run_dir / "checkpoints"):
        remove_dead_temporaries(directory, ".tmp")


def monitor_of(model, validation: bool) -> str:
    """What early stopping and best.keras watch: the family's `selection_metric` (the loss, or
    the unannealed objective under a KL warm-up), on the validation split when there is one."""
    return ("val_" if validation else "") + model.selection_metric


def finish_run(recipe: Recipe, model, run_dir: Path, rows: list, timer: EpochTimer, steps: int, wall: float,
               x_test, test_loss=None, splits=None, y_test=None) -> Run:
    """Writes model.keras, the reconstructions figure and (last) metrics.json, which marks the run finished.

    `test_loss` is computed with `model.evaluate` unless given (the custom loop evaluates itself);
    `y_test` are the labels of `x_test` a model that takes labels is fed (`fed_labels`).
    """
    with atomic_path(run_dir / "model.keras") as tmp:
        model.save(tmp)
    save_reconstructions(model, materialize(x_test[:10]), run_dir / "reconstructions.png",
                         kind=splits.kind if splits is not None else "images", y=None if y_test is None else y_test[:10])
    steady = timer.steady_state_seconds()
    # Samples per epoch: a whole pass sees every fit example once (its last batch is partial).
    whole_pass = not recipe.train.steps_per_epoch and splits is not None
    samples = len(splits.x_fit) if whole_pass else steps * recipe.train.batch_size
    final = {k: v for k, v in (rows[-1] if rows else {}).items() if k != "epoch"}
    if test_loss is None:
        batch = zloop.evaluation_batch(len(x_test), 500, model.distribute_strategy.num_replicas_in_sync)
        test_loss = model.evaluate(zdata.make_dataset(x_test, batch_size=batch, shuffle=False, labels=y_test,
                                                      inputs_of=model.inputs_of), verbose=0,
                                   return_dict=True)["loss"]
    test_loss = float(test_loss)
    metrics = {
        **final,
        "test_loss": test_loss,
        "epochs": len(rows),
        "train_samples_per_second": round(samples * len(steady) / sum(steady), 1) if steady else None,
        "train_seconds_this_session": round(wall, 2),
        "timed_epochs": len(steady),
        "parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "batch_shards_resolved": int(getattr(model, "batch_shards", 1)),
        **({} if splits is None else {
            "data_kind": splits.kind, "data_source": splits.source, "input_shape": list(splits.input_shape),
            "fit_examples": len(splits.x_fit), "validation_examples": 0 if splits.x_val is None else len(splits.x_val),
            "test_examples": len(splits.x_test), "preprocessing": splits.preprocessing["kind"]}),
        "finished": True,
    }
    write_json(run_dir / "metrics.json", metrics)
    history = {k: [r.get(k) for r in rows] for k in (rows[-1] if rows else {}) if k != "epoch"}
    return Run(model=model, history=history, dir=run_dir, recipe=recipe, metrics=metrics)


def fed_labels(model, x, y):
    """The labels of the examples x (a prefix of the split's, after trimming to the replicas) a
    model that takes labels is fed, checked (`Autoencoder.inputs_of`); None for any other model."""
    if x is None or not model.takes_labels:
        return None
    y = None if y is None else np.asarray(y)[:len(x)]
    model.inputs_of(x, y)  # one line if the labels do not suit the model
    return y


def save_reconstructions(model, x, path, kind: str = "images", y=None) -> None:
    """A PNG: test images on the top row, their reconstructions below (images, shown in the
    model's [0, 1] units); the inputs and reconstructions of table rows and series windows as
    lines, in the data's units. `y`: the labels of x, for a model that takes them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # A direct call rather than `predict`, which fails under MultiWorkerMirroredStrategy like `fit`.
    recon = np.asarray(model(model.inputs_of(np.asarray(x, "float32"), y), training=False))
    n = len(x)
    if kind != "images":
        fig, axes = plt.subplots(1, min(n, 4), figsize=(3.2 * min(n, 4), 2.4), squeeze=False)
        for i, ax in enumerate(axes[0]):
            flat_x, flat_r = np.reshape(x[i], (x.shape[1], -1)), np.reshape(recon[i], (x.shape[1], -1))
            ax.plot(flat_x, color="black", lw=1)
            ax.plot(flat_r, color="tab:orange", lw=1, ls="--")
            ax.set_title(f"test {i}: input (black), reconstruction", fontsize=7)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80)
        plt.close(fig)
        return
    x, recon = np.asarray(model.normalize(x)), np.asarray(model.normalize(recon))
    fig, axes = plt.subplots(2, n, figsize=(n * 1.1, 2.4), squeeze=False)
    for i in range(n):
        for row, images in enumerate((x, recon)):
            img = np.clip(images[i], 0, 1)
            axes[row, i].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            axes[row, i].axis("off")
    axes[0, 0].set_title("input", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
