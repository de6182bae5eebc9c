"""Kills, full disks, divergence and two writers: what is on disk afterwards, and what the user reads.

Faults are injected at controlled points by a small driver script that patches one function
(Keras's `Model.save`, `os.rename`) in a fresh `zoo` process before running the CLI; the rerun
is the plain `zoo` command. Data: scikit-learn's bundled digits (8x8 images), so a fit takes
seconds.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import zoo
from conftest import run_signature, tf1_session
from zoo.errors import TrainingDiverged
from zoo.io import LOCK_FILE, exclusive_lock, write_json
from zoo.training.callbacks import DivergenceGuard

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3
RECIPE = f"""
[model]
family = "basic"
code_size = 8
loss = "bce"

[data]
dataset = "digits"

[train]
epochs = {EPOCHS}
batch_size = 64
"""


def env():
    return {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ZOO_DEBUG")}


def zoo_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "zoo.cli", *map(str, args)], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=600)


def with_fault(patch: str, *args, cwd):
    """`zoo ARGS` in a fresh process after running `patch` (Python source) in it."""
    body = textwrap.indent(textwrap.dedent(patch), "    ")
    driver = textwrap.dedent("""
        import errno, os, signal, sys
        from zoo.quiet import quiet_tensorflow
        with quiet_tensorflow():  # as the CLI keeps TensorFlow's start-up lines away, here imported earlier
            import keras
        {body}
            from zoo.cli import main
            code = main(sys.argv[1:])
        sys.exit(code)
    """).format(body=body.strip("\n"))
    return subprocess.run([sys.executable, "-c", driver, *map(str, args)], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=600)


def one_line(result, code: int, *fragments) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stderr[-3000:]
    assert len(lines) == 1, lines
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def temporaries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".tmp*"))


def history_epochs(run: Path) -> list[int]:
    lines = (run / "history.csv").read_text().splitlines()[1:]
    return [int(line.split(",")[0]) for line in lines]


def strict_json(path: Path):
    def refuse(constant):
        raise AssertionError(f"{path} holds the non-JSON literal {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture
def work(tmp_path):
    (tmp_path / "r.toml").write_text(RECIPE)
    return tmp_path


# SIGKILL at controlled points.
def kill_when_saving(name_part: str) -> str:
    """A patch of keras.Model.save that writes half of the matching temporary file, then SIGKILLs."""
    return f"""
        _save = keras.Model.save
        def save(self, path, *a, **k):
            _save(self, path, *a, **k)
            name = os.path.basename(str(path))
            if name.startswith(".tmp") and {name_part!r} in name:
                with open(path, "r+b") as f:
                    f.truncate(os.path.getsize(path) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
        keras.Model.save = save
    """


def test_sigkill_inside_the_final_model_write_leaves_no_model_and_the_rerun_finishes(work):
    run = work / "run"
    killed = with_fault(kill_when_saving(".model.keras"), "fit", "r.toml", "--out", run, "--quiet", cwd=work)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (run / "model.keras").exists() and not (run / "metrics.json").exists()
    assert any(name.endswith(".model.keras") for name in temporaries(run)), "the kill did not land in the write"
    assert history_epochs(run) == list(range(1, EPOCHS + 1))

    rerun = zoo_cli("fit", "r.toml", "--out", run, "--quiet", cwd=work)  # the killer's lock is gone with it
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    metrics = strict_json(run / "metrics.json")
    assert metrics["finished"] is True and metrics["epochs"] == EPOCHS
    assert history_epochs(run) == list(range(1, EPOCHS + 1))  # resumed at the end: nothing trained twice
    assert temporaries(run) == []
    model = zoo.load_model(run / "model.keras")
    assert all(np.isfinite(np.asarray(w)).all() for w in model.weights)


def test_sigkill_inside_a_checkpoint_write_resumes_from_the_previous_epoch(work):
    run = work / "run"
    killed = with_fault(kill_when_saving("epoch-0002.state.keras"), "fit", "r.toml", "--out", run, "--quiet",
                        cwd=work)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert history_epochs(run) == [1]
    assert sorted(p.name for p in (run / "checkpoints").glob("epoch-*")) == ["epoch-0001.json",
                                                                             "epoch-0001.state.keras"]
    rerun = zoo_cli("fit", "r.toml", "--out", run, "--quiet", cwd=work)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert history_epochs(run) == list(range(1, EPOCHS + 1))
    assert strict_json(run / "metrics.json")["finished"] is True
    assert temporaries(run) == []


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    (root / "r.toml").write_text(RECIPE)
    result = zoo_cli("fit", "r.toml", "--out", root / "run", "--quiet", "--epochs", 1, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run"


def test_sigkill_while_the_export_temporary_exists_publishes_no_version(finished_run, tmp_path):
    base = tmp_path / "models"
    patch = """
        _rename = os.rename
        def rename(src, dst):
            if os.path.basename(str(src)).startswith(".tmp-export-"):
                os.kill(os.getpid(), signal.SIGKILL)
            return _rename(src, dst)
        os.rename = rename
    """
    killed = with_fault(patch, "export", finished_run, "--base", base, cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    model_dir = base / "r"
    assert [p.name for p in model_dir.iterdir() if p.name.isdigit()] == []  # TF Serving sees no version
    assert len(temporaries(model_dir)) == 1 and (model_dir / temporaries(model_dir)[0] / "saved_model.pb").is_file()

    rerun = zoo_cli("export", finished_run, "--base", base, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert temporaries(model_dir) == []  # the dead exporter's temporary is removed
    session, signatures = tf1_session(model_dir / "1")
    x = np.random.default_rng(0).random((2, 8, 8, 1), dtype="float32")
    out = run_signature(session, signatures["serving_default"], x=x)
    expected = np.asarray(zoo.load_model(finished_run / "model.keras")(x))
    np.testing.assert_allclose(next(iter(out.values())), expected, rtol=1e-4, atol=1e-5)


# A full disk.
def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_last_checkpoint(work):
    run = work / "run"
    patch = """
        _save = keras.Model.save
        def save(self, path, *a, **k):
            if "epoch-0002.state.keras" in str(path):
                with open(path, "wb") as f:
                    f.write(b"partial")
                raise OSError(errno.ENOSPC, "No space left on device")
            return _save(self, path, *a, **k)
        keras.Model.save = save
    """
    full = with_fault(patch, "fit", "r.toml", "--out", run, "--quiet", cwd=work)
    line = one_line(full, 1, "zoo fit: error: ", "epoch-0002.state.keras", "No space left on device",
                    "free some space")
    assert str(run / "checkpoints") in line
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-0001.json", "epoch-0001.state.keras"]
    assert not (run / "metrics.json").exists()
    assert temporaries(run) == []  # the partial temporary was removed
    rerun = zoo_cli("fit", "r.toml", "--out", run, "--quiet", cwd=work)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert history_epochs(run) == list(range(1, EPOCHS + 1))


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def test_a_disk_too_small_for_the_run_is_refused_before_training(work, monkeypatch):
    tiny = work / "tiny"
    if _mount_tmpfs(tiny, "1m"):  # a real 1 MiB file system where this machine allows mounting one
        try:
            result = zoo_cli("fit", "r.toml", "--out", tiny / "run", "--quiet", cwd=work)
            one_line(result, 1, "MiB free", "this run needs about", "choose another directory")
            assert sorted(p.name for p in (tiny / "run").iterdir()) == [LOCK_FILE]
        finally:
            subprocess.run(["umount", str(tiny)], capture_output=True, timeout=30)
    patch = """
        import collections, shutil
        shutil.disk_usage = lambda p: collections.namedtuple("u", "total used free")(2**20, 2**20 - 2**19, 2**19)
    """
    result = with_fault(patch, "fit", "r.toml", "--out", work / "run", "--quiet", cwd=work)
    one_line(result, 1, "0.5 MiB free", "this run needs about")
    assert sorted(p.name for p in (work / "run").iterdir()) == [LOCK_FILE]


# Divergence.
@pytest.mark.parametrize("start, losses, fires", [
    (500.0, [400.0, 300.0, 200.0], False),  # falling
    (500.0, [500.0 + 1000 * 500 - 1], False),  # just within 10³·|L₀|
    (500.0, [500.0 + 1000 * 500 + 1], True),  # just past
    (-50.0, [-49.0, -800.0], False),  # a Gaussian likelihood's negative loss, falling far below zero
    (-50.0, [-50.0 + 1000 * 50 + 1], True),
    (0.1, [0.1 + 1000 * 1.0 - 1], False),  # |L₀| < 1: the scale is 1
    (0.1, [0.1 + 1000 * 1.0 + 1], True),
    (500.0, [float("nan")], True),
    (500.0, [float("inf")], True),
])
def test_the_divergence_rule_by_hand(start, losses, fires):
    guard = DivergenceGuard(1e3)
    guard.set_model(keras.Sequential([keras.layers.Dense(1)]))
    guard.model.stop_training = False
    guard.on_epoch_begin(0)
    for batch, loss in enumerate([start, *losses]):
        guard.on_train_batch_end(batch, {"loss": loss})
    assert guard.start == start
    assert guard.diverged is fires and guard.model.stop_training is fires
    if fires:
        assert guard.epoch == 1 and guard.batch == len(losses) + 1


def test_a_non_finite_validation_loss_is_divergence():
    guard = DivergenceGuard()
    guard.set_model(keras.Sequential([keras.layers.Dense(1)]))
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"loss": 3.0})
    guard.on_epoch_end(2, {"loss": 2.0, "val_loss": float("nan")})
    assert guard.diverged and guard.epoch == 3 and "val_loss" in guard.describe()


def test_a_diverged_run_exits_3_is_unfinished_strict_json_and_resumes_only_when_asked(work):
    run = work / "run"
    result = zoo_cli("fit", "r.toml", "--out", run, "--quiet", "--set", "train.learning_rate=1e6", cwd=work)
    line = one_line(result, 3, "zoo fit: error: training diverged", "--resume", "train.learning_rate")
    assert "nan" not in (run / "metrics.json").read_text().lower()
    metrics = strict_json(run / "metrics.json")
    assert metrics["finished"] is False and metrics["diverged"]["learning_rate"] == 1e6
    assert metrics["diverged"]["reason"] in line
    assert not (run / "model.keras").exists()

    again = zoo_cli("fit", "r.toml", "--out", run, "--quiet", "--set", "train.learning_rate=1e6", cwd=work)
    one_line(again, 2, "diverged", "--resume", "--overwrite")
    lower = zoo_cli("fit", "r.toml", "--out", run, "--quiet", cwd=work)  # the recipe fixed, but no flag: refused
    one_line(lower, 2, "diverged", "--resume")
    resumed = zoo_cli("fit", "r.toml", "--out", run, "--quiet", "--resume", cwd=work)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert strict_json(run / "metrics.json")["finished"] is True
    assert history_epochs(run) == list(range(1, EPOCHS + 1))


class BlowUp(keras.callbacks.Callback):
    """Multiplies every weight by 10⁶ at the start of the second epoch: a loss that explodes."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            for w in self.model.trainable_weights:
                w.assign(w * 1e6)


def test_divergence_after_a_good_epoch_keeps_it_and_resume_continues_from_it(work, monkeypatch):
    from zoo.training import trainer

    make_callbacks = trainer.make_callbacks
    monkeypatch.setattr(trainer, "make_callbacks", lambda *a, **k: make_callbacks(*a, **k) + [BlowUp()])
    recipe = zoo.load_recipe(str(work / "r.toml"))
    with pytest.raises(TrainingDiverged, match="epoch 2") as info:
        zoo.fit(recipe, out=work / "run", verbose=0)
    run = work / "run"
    assert info.value.epoch == 1 and info.value.run_dir == run
    assert history_epochs(run) == [1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-0001.json", "epoch-0001.state.keras"]
    metrics = strict_json(run / "metrics.json")
    assert metrics["finished"] is False and metrics["diverged"]["last_finite_epoch"] == 1
    assert metrics["diverged"]["epoch"] == 2
    best = zoo.load_model(run / "best.keras")
    assert all(np.isfinite(np.asarray(w)).all() and np.abs(np.asarray(w)).max() < 1e3 for w in best.weights)

    monkeypatch.setattr(trainer, "make_callbacks", make_callbacks)
    with pytest.raises(ValueError, match="--resume"):
        zoo.fit(recipe, out=run, verbose=0)
    done = zoo.fit(recipe, out=run, resume=True, verbose=0)
    assert done.metrics["finished"] is True and history_epochs(run) == [1, 2, 3]


def test_a_resumed_run_takes_the_recipes_learning_rate_not_the_checkpoints(work):
    run = work / "run"
    recipe = zoo.load_recipe(str(work / "r.toml")).replace("train", epochs=1, learning_rate=0.05)
    zoo.fit(recipe, out=run, verbose=0)
    (run / "metrics.json").unlink()  # an unfinished run of the same recipe, then resumed with a new rate
    write_json(run / "metrics.json", {"finished": False, "diverged": {"reason": "test", "last_finite_epoch": 1}})
    resumed = zoo.fit(recipe.replace("train", epochs=2, learning_rate=1e-4), out=run, resume=True, verbose=0)
    assert float(resumed.model.optimizer.learning_rate) == pytest.approx(1e-4)


def test_json_is_strict_everywhere(tmp_path):
    write_json(tmp_path / "m.json", {"loss": float("nan"), "rows": [1.0, float("inf"), {"x": -float("inf")}]})
    assert strict_json(tmp_path / "m.json") == {"loss": None, "rows": [1.0, None, {"x": None}]}


# One writer.
def hold_lock(directory: Path):
    """A process that holds the lock of `directory` until killed; returns it once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from zoo.io import exclusive_lock
        with exclusive_lock({str(directory)!r}):
            print("held", flush=True)
            time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_of_a_run_directory_exits_2_naming_the_holder(work):
    run = work / "run"
    holder = hold_lock(run)
    try:
        result = zoo_cli("fit", "r.toml", "--out", run, "--quiet", cwd=work)
        one_line(result, 2, "in use by another zoo process", f"pid {holder.pid}", str(run))
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # nothing written beside the lock
    finally:
        holder.kill()
        holder.wait()
    # The holder died holding it: the kernel released the lock, its file with the dead pid stays.
    assert (run / LOCK_FILE).read_text().strip() == str(holder.pid)
    result = zoo_cli("fit", "r.toml", "--out", run, "--quiet", "--epochs", 1, cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_second_exporter_of_a_base_exits_2(finished_run, tmp_path):
    base = tmp_path / "models"
    holder = hold_lock(base)
    try:
        result = zoo_cli("export", finished_run, "--base", base, cwd=tmp_path)
        one_line(result, 2, "export base is in use", f"pid {holder.pid}")
        assert sorted(p.name for p in base.iterdir()) == [LOCK_FILE]
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_exclusive_within_a_process_too(tmp_path):
    with exclusive_lock(tmp_path, "run directory"):
        with pytest.raises(ValueError, match=f"pid {os.getpid()}"):
            with exclusive_lock(tmp_path, "run directory"):
                pass
    with exclusive_lock(tmp_path):  # released
        pass


def test_two_fits_started_together_one_runs(work):
    run = work / "run"
    procs = [subprocess.Popen([sys.executable, "-m", "zoo.cli", "fit", "r.toml", "--out", str(run), "--quiet"],
                              cwd=work, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    # Either one is refused while the other trains, or the second starts after the first finished
    # and is refused as "already finished": never two writers, never a silent success of both.
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "in use by another zoo process" in refused or "already holds a finished run" in refused
    assert strict_json(run / "metrics.json")["finished"] is True
