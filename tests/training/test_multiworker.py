"""The custom distributed loop (zoo/loop.py) trains exactly like `Model.fit`, on one process or two workers.

Equality is the test: the same global batches, the same initial state and the same optimizer
must give the same weights, whether the gradient of a global batch is computed on one device,
on two replicas of one process, or on two worker processes that each see half of every batch
and all-reduce over loopback with `MultiWorkerMirroredStrategy`.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_images, tiny_params

import zoo
import zoo.training.loops as zloop
from zoo.training import trainer as ztrainer

FAMILY = "stacked"


def _cpus():
    return tf.config.list_logical_devices("CPU")


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def _max_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def _model(strategy, initial, steps_per_execution=1):
    with strategy.scope():
        model = zoo.build(FAMILY, **tiny_params(FAMILY, hidden=[16]))
        model(np.zeros((1, 8, 8, 1), "float32"))
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.Adam(0.01), steps_per_execution=steps_per_execution)
        model.optimizer.build(model.trainable_variables)
    return model


def _initial_weights():
    model = zoo.build(FAMILY, **tiny_params(FAMILY, hidden=[16]))
    model(np.zeros((1, 8, 8, 1), "float32"))
    return _weights(model)


STRATEGIES = {
    "default": lambda: tf.distribute.get_strategy(),
    # The process's one mirrored strategy: a second one over the same CPUs collides with it.
    "mirrored": lambda: ztrainer.make_strategy("mirrored"),
}


@pytest.mark.parametrize("repeat", [False, True], ids=["finite", "repeated"])
@pytest.mark.parametrize("steps_per_execution", [1, 2])
@pytest.mark.parametrize("strategy_name", list(STRATEGIES))
def test_custom_loop_matches_fit(strategy_name, steps_per_execution, repeat):
    if strategy_name == "mirrored" and len(_cpus()) < 2:
        pytest.skip("needs two logical CPU devices (set up in conftest)")
    x = tiny_images(20, seed=5)  # batches of 8, 8 and 4: the partial one splits over two replicas too
    x[10:] *= 0.5

    def global_batches():
        # Model.fit opens two iterators between the epochs of a finite dataset, so a reshuffling
        # dataset would give it another order from epoch 2 on; a fixed shuffle keeps the orders equal.
        ds = tf.data.Dataset.from_tensor_slices(x).shuffle(20, seed=3, reshuffle_each_iteration=repeat).batch(8)
        return ds.repeat() if repeat else ds

    initial = _initial_weights()
    steps = 2 if repeat else 3  # a repeated dataset runs on across epochs; a finite one restarts

    reference = _model(tf.distribute.get_strategy(), initial, steps_per_execution)
    expected = reference.fit(global_batches(), epochs=3, steps_per_epoch=steps if repeat else None, verbose=0)

    strategy = STRATEGIES[strategy_name]()
    model = _model(strategy, initial, steps_per_execution)
    history = zloop.fit_custom_loop(model, strategy, zloop.shard_global_batches(global_batches), epochs=3,
                                    steps_per_epoch=steps, verbose=0)

    assert _max_diff(_weights(reference), initial) > 1e-3  # training moved the weights
    assert _max_diff(_weights(model), _weights(reference)) < 1e-5
    # The logged loss is the global mean over the epoch, as under fit.
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], rtol=1e-5)


def test_custom_loop_validation_and_early_stopping_match_fit():
    x = tiny_images(24, seed=6)
    val = tiny_images(10, seed=7)
    initial = _initial_weights()
    train_data = lambda: tf.data.Dataset.from_tensor_slices(x).batch(8)  # noqa: E731
    val_data = lambda: tf.data.Dataset.from_tensor_slices(val).batch(4)  # noqa: E731

    def stopper():  # never "improves": stops after the second epoch of five
        return keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e9, patience=1)

    reference = _model(tf.distribute.get_strategy(), initial)
    expected = reference.fit(train_data(), validation_data=val_data(), epochs=5, callbacks=[stopper()], verbose=0)
    strategy = ztrainer.make_strategy("mirrored")
    model = _model(strategy, initial)
    history = zloop.fit_custom_loop(model, strategy, zloop.shard_global_batches(train_data), epochs=5,
                                    steps_per_epoch=3, callbacks=[stopper()],
                                    validation_data=zloop.shard_global_batches(val_data), validation_steps=3,
                                    verbose=0)

    assert len(expected.history["loss"]) == 2
    assert set(history.history) == {"loss", "val_loss"}
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(history.history[key], expected.history[key], rtol=1e-5)
    assert _max_diff(_weights(model), _weights(reference)) < 1e-5


def test_batch_that_does_not_split_over_the_replicas_is_refused():
    strategy = ztrainer.make_strategy("mirrored")
    with pytest.raises(ValueError, match="batch_size 7 does not split evenly over 2 replicas"):
        zloop.check_global_batch(7, strategy)


def test_fit_loop_is_refused_under_multi_worker():
    with pytest.raises(zoo.RecipeError, match="loop 'fit' does not work under strategy 'multi_worker'"):
        zoo.load_recipe("stacked", overrides=["train.strategy='multi_worker'", "train.loop='fit'"])


# Two worker processes on loopback.

TINY_RUN = ["--strategy", "multi_worker", "--set", "model.hidden=[32]", "--set", "train.batch_size=64", "--set", "data.validation_size=512",
            "--steps-per-epoch", "4", "--quiet"]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _launch_workers(command, tmp_path, timeout=600):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs, logs = [], []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        env = dict(os.environ, TMPDIR=str(scratch), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
                   TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        log = open(tmp_path / f"worker{index}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, *command], env=env,
                                      stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    for index, code in enumerate(codes):
        assert code == 0, f"worker {index} exited with {code}:\n" + (tmp_path / f"worker{index}.log").read_text()[-3000:]


def _history(run_dir):
    lines = (run_dir / "history.csv").read_text().splitlines()
    keys = lines[0].split(",")
    return [dict(zip(keys, map(float, line.split(",")))) for line in lines[1:]]


@pytest.mark.slow
def test_two_workers_resume_and_train_like_one_process(tmp_path):
    """Epoch 1 on one process; epoch 2 resumed on two workers equals epoch 2 resumed on one process.

    Only the chief can read the checkpoint here (the other worker gets a fresh temporary
    directory), so equality also shows that the chief's restored weights, optimizer state and
    epoch count reach the other worker.
    """
    zoo.list_models()
    single, multi = tmp_path / "single", tmp_path / "multi"
    recipe = zoo.load_recipe(FAMILY, overrides=["model.hidden=[32]", "train.batch_size=64",
                                                "data.validation_size=512", "train.steps_per_epoch=4"])
    first = zoo.fit(recipe, epochs=1, out=single, verbose=0)
    assert first.metrics["epochs"] == 1
    after_first = _weights(first.model)
    shutil.copytree(single, multi)

    _launch_workers(["-m", "zoo.cli", "fit", FAMILY, "--epochs", "2", "--resume", "--out", str(multi), *TINY_RUN],
                    tmp_path)
    zoo.fit(recipe, epochs=2, out=single, resume=True, verbose=0)

    one = keras.saving.load_model(single / "model.keras", safe_mode=True)
    two = keras.saving.load_model(multi / "model.keras", safe_mode=True)
    assert _max_diff(_weights(two), after_first) > 1e-4  # the second epoch moved the weights
    assert _max_diff(_weights(two), _weights(one)) < 1e-5
    # One history row per epoch; the second one is the global mean over both workers' halves.
    rows_one, rows_two = _history(single), _history(multi)
    assert [r["epoch"] for r in rows_two] == [1, 2]
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose([r[key] for r in rows_two], [r[key] for r in rows_one], rtol=1e-5)
    assert 'strategy = "multi_worker"' in (multi / "recipe.toml").read_text()
    metrics = json.loads((multi / "metrics.json").read_text())
    assert metrics["finished"] and metrics["epochs"] == 2
    np.testing.assert_allclose(metrics["test_loss"], json.loads((single / "metrics.json").read_text())["test_loss"],
                               rtol=1e-5)
    # The other worker wrote its copy to a temporary directory and removed it.
    assert list((tmp_path / "tmp1").iterdir()) == []


STOP_ON_ONE_WORKER = """
import json, sys
import numpy as np, keras, tensorflow as tf, zoo
from zoo.training import loops as loop, trainer

strategy = trainer.make_strategy("multi_worker")
worker = loop.worker_index(strategy)[1]
x = np.random.default_rng(0).random((64, 8, 8, 1)).astype("float32")
with strategy.scope():
    model = zoo.build("stacked", input_shape=(8, 8, 1), code_size=4, hidden=[16])
    model(x[:1])
    model.compile(optimizer="adam")
    model.optimizer.build(model.trainable_variables)


class StopOnWorkerOne(keras.callbacks.Callback):  # a decision on local state, e.g. a wall-clock budget
    def on_epoch_end(self, epoch, logs=None):
        if worker == 1 and epoch == 1:
            self.model.stop_training = True


history = loop.fit_custom_loop(model, strategy, loop.shard_global_batches(
    lambda: tf.data.Dataset.from_tensor_slices(x).batch(16)), epochs=5, steps_per_epoch=4,
    callbacks=[StopOnWorkerOne()], verbose=0)
np.savez(sys.argv[1] + f"/worker{worker}.npz", epochs=len(history.history["loss"]), *model.get_weights())
"""


@pytest.mark.slow
def test_a_stop_on_one_worker_stops_all_workers_in_step(tmp_path):
    script = tmp_path / "stop.py"
    script.write_text(STOP_ON_ONE_WORKER)
    _launch_workers([str(script), str(tmp_path)], tmp_path, timeout=300)  # a worker left alone would hang
    results = [np.load(tmp_path / f"worker{i}.npz") for i in range(2)]
    assert [int(r["epochs"]) for r in results] == [2, 2]
    weights = [[r[f"arr_{i}"] for i in range(len(r.files) - 1)] for r in results]
    assert _max_diff(*weights) == 0.0  # the workers hold the same model
