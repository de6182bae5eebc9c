"""A run killed at any instant resumes when the same command is rerun, losing and doubling nothing."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from conftest import build_tiny, tiny_images

import zoo
from zoo.training.callbacks import ResumableCheckpoint
from zoo.io import atomic_path, write_json
from zoo.training.trainer import remove_stale_temp_files

EPOCHS = 4
COMMAND = [sys.executable, "-m", "zoo.cli", "fit", "stacked", "--epochs", str(EPOCHS), "--steps-per-epoch", "40",
           "--set", "data.validation_size=1000", "--quiet"]


def _history_epochs(run_dir):
    lines = (run_dir / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,")
    return [int(line.split(",")[0]) for line in lines[1:]]


def _temp_files(run_dir):
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob(".tmp*"))


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_finishes_with_one_row_per_epoch(tmp_path):
    run_dir = tmp_path / "run"
    command = [*COMMAND, "--out", str(run_dir)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while not (run_dir / "checkpoints" / "epoch-0001.json").is_file():
                assert proc.poll() is None, f"training exited ({proc.returncode}) before its first checkpoint:\n" \
                                            + log.read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint within 300 s"
                time.sleep(0.02)
            time.sleep(0.2)  # into the second epoch (40 steps of the 784-512-256-32 MLP)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    assert not (run_dir / "metrics.json").exists()  # written last, when the run finishes
    assert _history_epochs(run_dir) == [1], "the kill did not land in the second epoch"

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.strip().splitlines()[-1] == str(run_dir)

    assert _history_epochs(run_dir) == list(range(1, EPOCHS + 1))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["finished"] is True and metrics["epochs"] == EPOCHS
    assert np.isfinite(metrics["test_loss"])
    zoo.list_models()
    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    assert [w.shape for w in model.trainable_weights][0] == (784, 512)
    keras.saving.load_model(run_dir / "best.keras", safe_mode=True)
    # Every file went through temp + rename; nothing half-written is left behind.
    assert _temp_files(run_dir) == []
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert kept == ["epoch-0003.json", "epoch-0003.state.keras", "epoch-0004.json", "epoch-0004.state.keras"]


def _checkpointed_model(directory, epochs):
    """A tiny model with `epochs` checkpoints written the way training writes them."""
    model = build_tiny("stacked")
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    checkpoint = ResumableCheckpoint(directory / "checkpoints", directory / "history.csv")
    checkpoint.set_model(model)
    x = tiny_images(8)
    for epoch in range(epochs):
        model.fit(x, x, epochs=1, verbose=0)
        checkpoint.on_epoch_end(epoch, {"loss": float(10 - epoch)})
    return model


def test_newest_complete_pair_wins_over_a_lone_newer_weights_file(tmp_path):
    model = _checkpointed_model(tmp_path, 2)
    saved = [np.asarray(w) for w in model.get_weights()]
    directory = tmp_path / "checkpoints"
    # Killed between the two writes of epoch 3: its weights exist, its json does not.
    model.fit(tiny_images(8), tiny_images(8), epochs=3, verbose=0)
    model.save(directory / "epoch-0003.state.keras")
    # Killed while writing epoch 4's json: only a torn temp file.
    (directory / ".tmp999999.epoch-0004.json").write_text('{"epoch": 4, "hist')

    fresh = build_tiny("stacked")
    fresh.compile(optimizer=keras.optimizers.Adam(0.01))
    checkpoint = ResumableCheckpoint(directory, tmp_path / "history.csv")
    assert checkpoint.restore(fresh) == 2
    for restored, expected in zip(fresh.get_weights(), saved):
        np.testing.assert_array_equal(np.asarray(restored), expected)
    assert [row["epoch"] for row in checkpoint.rows] == [1, 2]
    assert _history_epochs(tmp_path) == [1, 2]


def test_resumed_epoch_rewrites_history_without_doubling(tmp_path):
    model = _checkpointed_model(tmp_path, 3)
    checkpoint = ResumableCheckpoint(tmp_path / "checkpoints", tmp_path / "history.csv")
    checkpoint.set_model(model)
    assert checkpoint.restore(model) == 3
    checkpoint.on_epoch_end(3, {"loss": 6.0})  # the epoch after the restored ones
    checkpoint.on_epoch_end(3, {"loss": 5.5})  # the same epoch again (killed after its checkpoint, rerun)
    assert _history_epochs(tmp_path) == [1, 2, 3, 4]
    assert checkpoint.rows[-1]["loss"] == 5.5
    # Two complete checkpoints are kept; older ones are pruned.
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.json")) == ["epoch-0003.json", "epoch-0004.json"]


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"finished": True, "epochs": 3})

    class Killed(Exception):
        pass

    with pytest.raises(Killed):
        with atomic_path(path) as tmp:
            tmp.write_text('{"finished": fal')  # half-written when the "kill" arrives
            raise Killed
    assert json.loads(path.read_text()) == {"finished": True, "epochs": 3}
    assert _temp_files(tmp_path) == []


def test_temp_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "checkpoints").mkdir()
    stale = [tmp_path / f".tmp{dead.pid}.model.keras", tmp_path / "checkpoints" / f".tmp{dead.pid}.epoch-0002.json"]
    live = tmp_path / f".tmp{os.getpid()}.metrics.json"  # a write in progress in a live process
    for path in [*stale, live]:
        path.write_text("partial")
    remove_stale_temp_files(tmp_path)
    assert not any(p.exists() for p in stale)
    assert live.exists()
