"""The trainer on real Fashion-MNIST, tiny: the run directory, refusal, resume, bad data."""

import csv
import dataclasses
import gzip
import json
import struct

import keras
import numpy as np
import pytest

import zoo
import zoo.training.loops as zloop
from zoo.training import trainer

EPOCHS = 2
STEPS = 3


def tiny_recipe(**train):
    """The shipped stacked recipe made tiny, as `--set` would."""
    recipe = zoo.load_recipe("stacked")
    recipe = recipe.replace("model", hidden=[16], code_size=4)
    recipe = recipe.replace("data", validation_size=64)
    return recipe.replace("train", **{"epochs": EPOCHS, "steps_per_epoch": STEPS, "batch_size": 32, **train})


def read_history(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return zoo.fit(tiny_recipe(), out=out, verbose=0)


def test_run_directory_files(finished):
    run = finished
    names = {p.name for p in run.dir.iterdir()}
    assert {"model.keras", "best.keras", "recipe.toml", "history.csv", "metrics.json", "reconstructions.png",
            "logs", "checkpoints"} <= names

    x = trainer.load_data(run.recipe).x_test[:16]
    loaded = keras.saving.load_model(run.dir / "model.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(run.model(x)))
    keras.saving.load_model(run.dir / "best.keras", safe_mode=True)

    rows = read_history(run.dir)
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    assert {"loss", "val_loss"} <= set(rows[0])
    assert [float(r["loss"]) for r in rows] == pytest.approx(run.history["loss"])

    metrics = json.loads((run.dir / "metrics.json").read_text())
    assert metrics["finished"] is True
    assert metrics["epochs"] == EPOCHS
    assert metrics["train_samples_per_second"] > 0  # epoch 2 only: the first epoch is excluded
    assert np.isfinite(metrics["test_loss"]) and metrics["loss"] == pytest.approx(float(rows[-1]["loss"]))
    assert metrics == run.metrics

    assert (run.dir / "reconstructions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = zoo.load_recipe(run.dir / "recipe.toml")
    assert dataclasses.replace(again, path=run.recipe.path) == run.recipe
    assert any(p.is_file() for p in (run.dir / "logs").rglob("*"))


def test_run_object(finished):
    assert isinstance(finished.model, zoo.registry.get("stacked"))
    assert len(finished.history["loss"]) == EPOCHS
    assert finished.model.optimizer.iterations.numpy() == EPOCHS * STEPS


def test_a_finished_run_is_refused(finished):
    with pytest.raises(ValueError, match="already holds a finished run") as info:
        zoo.fit(tiny_recipe(), out=finished.dir, verbose=0)
    message = str(info.value)
    assert "\n" not in message and "--resume" in message and "--overwrite" in message
    assert json.loads((finished.dir / "metrics.json").read_text())["finished"]  # nothing was lost


def test_resume_and_overwrite_exclude_each_other(tmp_path):
    with pytest.raises(ValueError, match="exclude each other"):
        zoo.fit(tiny_recipe(), out=tmp_path / "run", resume=True, overwrite=True, verbose=0)


def test_overwrite_and_resume_a_finished_run(tmp_path):
    out = tmp_path / "run"
    first = zoo.fit(tiny_recipe(epochs=1), out=out, verbose=0)
    (out / "marker").write_text("from the first run")
    # --resume trains the finished run further, to the new epoch count.
    resumed = zoo.fit(tiny_recipe(epochs=2), out=out, resume=True, verbose=0)
    assert [int(r["epoch"]) for r in read_history(out)] == [1, 2]
    assert float(read_history(out)[0]["loss"]) == pytest.approx(first.history["loss"][0])
    assert resumed.model.optimizer.iterations.numpy() == 2 * STEPS
    # A resumed run must be the same recipe (apart from its length).
    with pytest.raises(ValueError, match="different recipe"):
        zoo.fit(tiny_recipe(epochs=3, learning_rate=0.5), out=out, resume=True, verbose=0)
    # --overwrite starts again from nothing.
    zoo.fit(tiny_recipe(epochs=1), out=out, overwrite=True, verbose=0)
    assert not (out / "marker").exists()
    assert [int(r["epoch"]) for r in read_history(out)] == [1]


class Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    out = tmp_path / "run"
    recipe = tiny_recipe(epochs=3)
    seen = {}

    class Interrupt(keras.callbacks.Callback):
        """Stops the run after the checkpoint of epoch 1 is written, like a kill would."""

        def on_epoch_end(self, epoch, logs=None):
            seen["weights"] = [np.array(w) for w in self.model.get_weights()]
            seen["loss"] = logs["loss"]
            raise Interrupted

    class Watch(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["restored"] = [np.array(w) for w in self.model.get_weights()]
            seen["iterations"] = int(self.model.optimizer.iterations.numpy())

        def on_epoch_begin(self, epoch, logs=None):
            seen.setdefault("epochs", []).append(epoch)

    make_callbacks = trainer.make_callbacks
    extra = [Interrupt()]
    monkeypatch.setattr(trainer, "make_callbacks", lambda *a, **k: make_callbacks(*a, **k) + extra)
    with pytest.raises(Interrupted):
        zoo.fit(recipe, out=out, verbose=0)
    assert [int(r["epoch"]) for r in read_history(out)] == [1]
    assert not (out / "metrics.json").exists()

    extra[:] = [Watch()]
    run = zoo.fit(recipe, out=out, verbose=0)  # the same command again: no flag needed for an unfinished run
    assert seen["epochs"] == [1, 2]  # Keras counts from 0: epochs 2 and 3
    assert seen["iterations"] == STEPS  # the optimizer state came back too
    for restored, saved in zip(seen["restored"], seen["weights"]):
        np.testing.assert_array_equal(restored, saved)
    rows = read_history(out)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[0]["loss"]) == pytest.approx(seen["loss"])
    assert run.metrics["epochs"] == 3 and run.metrics["finished"] is True
    assert len(run.history["loss"]) == 3


def test_default_run_directory_is_runs_slash_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = zoo.fit(tiny_recipe(epochs=1, steps_per_epoch=1), verbose=0)
    assert run.dir.resolve() == (tmp_path / "runs" / "stacked").resolve()


def write_idx_dir(directory, images):
    """Fashion-MNIST's four IDX files, with float images (type 0x0D) so they can hold NaN."""
    directory.mkdir()
    n = len(images)
    for split in ("train", "t10k"):
        raw = bytes([0, 0, 0x0D, 3]) + struct.pack(">3I", *images.shape) + images.astype(">f4").tobytes()
        (directory / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
        labels = bytes([0, 0, 0x08, 1]) + struct.pack(">I", n) + bytes(n)
        (directory / f"{split}-labels-idx1-ubyte").write_bytes(labels)
    return directory


def test_nan_in_the_data_is_an_error(tmp_path):
    images = np.random.default_rng(0).random((8, 28, 28)).astype("float32")
    images[3, 5, 5] = np.nan
    data_dir = write_idx_dir(tmp_path / "idx", images)
    recipe = tiny_recipe().replace("data", data_dir=str(data_dir), source="idx", validation_size=0)
    with pytest.raises(ValueError, match="non-finite") as info:
        zoo.fit(recipe, out=tmp_path / "run", verbose=0)
    assert "\n" not in str(info.value) and "x_train" in str(info.value)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_data_shape_must_match_the_model(tmp_path):
    data_dir = write_idx_dir(tmp_path / "idx", np.random.default_rng(0).random((8, 20, 20)).astype("float32"))
    recipe = tiny_recipe().replace("data", data_dir=str(data_dir), source="idx", validation_size=0)
    with pytest.raises(ValueError, match=r"examples of shape \(20, 20, 1\) do not match the model's input \(28, 28, 1\)"):
        zoo.fit(recipe, out=tmp_path / "run", verbose=0)


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown strategy 'nope'. Known: auto, mirrored, multi_worker, one_device, tpu$"):
        trainer.make_strategy("nope")


def test_fit_under_the_mirrored_strategy(tmp_path):
    strategy = trainer.make_strategy("mirrored")
    assert trainer.make_strategy("mirrored") is strategy  # one per process: a second one's all-reduces collide
    run = zoo.fit(tiny_recipe(epochs=1, strategy="mirrored"), out=tmp_path / "run", verbose=0)
    assert run.model.distribute_strategy is strategy
    assert np.isfinite(run.metrics["loss"]) and run.metrics["finished"]
    # A second model of another size under the same strategy trains too.
    run = zoo.fit(tiny_recipe(epochs=1, strategy="mirrored").replace("model", code_size=6), out=tmp_path / "b", verbose=0)
    assert np.isfinite(run.metrics["loss"])


def test_mirrored_fit_on_odd_sized_validation_and_test_sets(tmp_path):
    """Bundled digits: 65 validation images and a test set of 359 (20% held out), each less
    than one evaluation batch and odd, used to stop Keras's evaluate on two replicas with an
    AddN shape error. The test loss must equal the one-device evaluation of the same weights."""
    recipe = zoo.load_recipe("stacked").replace("model", hidden=[16], code_size=4)
    recipe = recipe.replace("data", dataset="digits", validation_size=65)
    recipe = recipe.replace("train", epochs=1, batch_size=32, strategy="mirrored")
    run = zoo.fit(recipe, out=tmp_path / "run", verbose=0)
    assert run.metrics["finished"] and run.metrics["test_examples"] % 2 == 1
    assert np.isfinite(run.metrics["val_loss"])
    x_test = trainer.load_data(recipe).x_test
    single = keras.saving.load_model(run.dir / "model.keras")  # outside the strategy: one device
    want = single.evaluate(x_test, batch_size=500, verbose=0, return_dict=True)["loss"]
    assert run.metrics["test_loss"] == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("n, batch, replicas, want", [
    (10_000, 500, 2, 500), (10_000, 500, 3, 501),  # a multiple of the replicas
    (359, 500, 2, 358), (7, 500, 4, 4),  # below one batch: its largest even split, the rest a second batch
    (358, 500, 2, 358), (1, 500, 2, 500), (10, 500, 1, 10)])
def test_evaluation_batch_splits_the_first_batch_evenly(n, batch, replicas, want):
    got = zloop.evaluation_batch(n, batch, replicas)
    assert got == want and (min(n, got) % replicas == 0 or n < replicas)


def test_several_steps_per_execution_on_two_replicas_take_the_custom_loop(tmp_path):
    # Keras's Model.fit fails here (keras-team/keras#19246); "auto" trains with the custom loop instead.
    recipe = tiny_recipe(epochs=2, strategy="mirrored", steps_per_execution=2)
    run = zoo.fit(recipe, out=tmp_path / "run", verbose=0)
    assert run.metrics["finished"] and np.isfinite(run.metrics["loss"])
    assert [row["epoch"] for row in read_history(tmp_path / "run")] == ["1", "2"]
    with pytest.raises(ValueError, match="loop 'fit' fails with steps_per_execution > 1 on 2 replicas"):
        zoo.fit(recipe.replace("train", loop="fit"), out=tmp_path / "fit", verbose=0)
    assert not (tmp_path / "fit").exists()  # refused before anything is written
    # On one replica the same recipe, with whole executions per epoch, keeps Model.fit.
    assert trainer.use_custom_loop(recipe.replace("train", steps_per_epoch=4).train,
                                   trainer.make_strategy("one_device")) is False


def test_steps_per_epoch_is_exact_with_several_steps_per_execution(tmp_path):
    # Model.fit would run whole executions: 2 epochs x ceil(3 / 2) x 2 = 8 steps instead of 6.
    recipe = tiny_recipe(epochs=2, steps_per_execution=2)
    one_device = trainer.make_strategy("one_device")
    assert trainer.use_custom_loop(recipe.train, one_device) is True
    run = zoo.fit(recipe, out=tmp_path / "run", verbose=0)
    assert int(run.model.optimizer.iterations.numpy()) == 2 * STEPS
    assert [row["epoch"] for row in read_history(tmp_path / "run")] == ["1", "2"]
    with pytest.raises(ValueError, match=r"^loop 'fit' would train 4 steps per epoch, not steps_per_epoch = 3, "
                                         r"with steps_per_execution = 2: use loop"):
        zoo.fit(recipe.replace("train", loop="fit"), out=tmp_path / "fit", verbose=0)
    assert not (tmp_path / "fit").exists()
    # A multiple of steps_per_execution, or a whole pass over the data, keeps Model.fit.
    assert trainer.use_custom_loop(tiny_recipe(steps_per_execution=3).train, one_device) is False
    assert trainer.use_custom_loop(tiny_recipe(steps_per_epoch=0, steps_per_execution=2).train, one_device) is False


def test_binarized_test_set_is_fixed():
    recipe = tiny_recipe().replace("data", binarize="dynamic")
    first, second = trainer.load_data(recipe).x_test, trainer.load_data(recipe).x_test
    assert set(np.unique(first[:100])) <= {0.0, 1.0}
    np.testing.assert_array_equal(first[:100], second[:100])


def test_resume_check_compares_recipes_not_text():
    recipe = zoo.load_recipe("stacked")
    saved = recipe.to_toml()
    older = "\n".join(line for line in saved.splitlines() if not line.startswith("max_minutes"))  # a field added later
    assert trainer._same_training(older, recipe)
    assert trainer._same_training(saved, recipe.replace("train", epochs=99, strategy="mirrored"))
    assert not trainer._same_training(saved, recipe.replace("model", code_size=7))
    assert not trainer._same_training(saved, recipe.replace("train", learning_rate=0.5))
    assert not trainer._same_training("not = [toml", recipe)


@pytest.mark.parametrize("family", zoo.list_models())
def test_the_selection_metric_is_logged_and_watched(family):
    """Early stopping and best.keras watch `selection_metric`; each family logs it in training
    and validation. Under a KL warm-up it is the loss at the full β, reconstruction + β·KL,
    while the annealed loss weighs the KL by the warm-up's fraction step/warm-up < 1."""
    from conftest import accepts, build_tiny, fed, tiny_images

    warm = accepts(family, "kl_warmup_steps")
    model = build_tiny(family, **({"kl_warmup_steps": 1000, "beta": 2.0} if warm else {}))
    model.compile(optimizer=keras.optimizers.SGD(1e-3))
    x = fed(model, tiny_images(16))
    logs = model.fit(x, batch_size=8, epochs=1, validation_data=(x,), verbose=0, shuffle=False).history
    assert trainer.monitor_of(model, validation=True) == "val_" + model.selection_metric in logs
    assert trainer.monitor_of(model, validation=False) == model.selection_metric in logs
    if warm:
        assert model.selection_metric == "objective"
        full = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)
        assert full["objective"] == pytest.approx(full["reconstruction"] + 2.0 * full["kl"], rel=1e-5)
        assert full["loss"] < full["objective"]  # 2 steps of 1000: the KL barely weighs yet
    else:
        assert model.selection_metric == "loss"
