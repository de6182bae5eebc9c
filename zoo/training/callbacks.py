"""Callbacks that make a run resumable and measurable, writing every file atomically."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import keras

from zoo.io import atomic_path, write_json, write_text


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training whose loss diverged, before its state is checkpointed.

    The rule, checked after every batch on the logged loss (Keras's running mean over the
    epoch) and after every epoch on the loss and the validation loss: training has diverged when
    a loss is not finite (NaN or ±inf), or when it rises above its start L₀ (the first loss this
    session logs) by more than `growth` · max(|L₀|, 1), i.e. L − L₀ > 10³ · max(|L₀|, 1) by
    default. A loss that falls from its start, even far below zero (a Gaussian likelihood's),
    is never divergence.

    When it fires it sets `model.stop_training`, records what it saw in `reason`, `epoch` and
    `batch`, and the checkpoint callbacks skip the diverged epoch (they ask `diverged`).
    It replaces Keras's `TerminateOnNaN`, at the same cost (one look at the loss per batch).
    """

    def __init__(self, growth: float = 1e3):
        super().__init__()
        self.growth = float(growth)
        self.start = None
        self.diverged = False
        self.reason = ""
        self.epoch = self.batch = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _check(self, name: str, value, batch=None) -> None:
        if self.diverged or value is None:
            return
        value = float(value)
        if math.isfinite(value) and self.start is None and name == "loss":
            self.start = value
            return
        if not math.isfinite(value):
            self.reason = f"{name} became {value}"
        elif self.start is not None and value - self.start > self.growth * max(abs(self.start), 1.0):
            self.reason = f"{name} {value:.4g} rose more than {self.growth:g}× past its start {self.start:.4g}"
        else:
            return
        self.diverged, self.epoch, self.batch = True, self._epoch + 1, batch
        self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._check("loss", (logs or {}).get("loss"), batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        for name in ("loss", "val_loss"):
            self._check(name, (logs or {}).get(name))

    def describe(self) -> str:
        """Where and how training diverged, in words."""
        where = f"epoch {self.epoch}" + (f", batch {self.batch}" if self.batch is not None else "")
        return f"{self.reason} in {where}"


class ResumableCheckpoint(keras.callbacks.Callback):
    """Backup-and-restore of the whole training state, safe against a kill at any instant.

    Keras's `BackupAndRestore` writes its weights and its metadata in place, so a kill during
    a write can leave a torn file, and the history CSV is a separate file that can lose or
    double a row. Here each epoch's state is one pair written atomically: the whole model
    (weights, optimizer and random-generator state) as `epoch-NNNN.state.keras`, then
    `epoch-NNNN.json` holding the epoch count and every history row so far. `restore` takes
    the newest complete pair, so what is resumed and the history agree by construction.
    `history.csv` is regenerated from the rows after each epoch.

    The state is a `.keras` archive rather than Keras's `.weights.h5` because h5py writes an
    `.h5` file in place: on a full disk its failed write leaves HDF5's library in a state that
    crashes the interpreter at exit (a segmentation fault), where the `.keras` archive is
    assembled in memory and written by `zipfile`, which fails with a plain `OSError`. Runs
    checkpointed as `.weights.h5` by earlier versions still resume.

    An epoch in which `guard` (a `DivergenceGuard`) fired is not saved: the newest checkpoint
    stays the last finite state.

    Args:
        directory: where the checkpoints go (a run's `checkpoints/`).
        history_csv: path of the CSV with one row per finished epoch.
        keep: complete checkpoints to keep.
        guard: the run's divergence guard, if any.
    """

    SUFFIXES = (".state.keras", ".weights.h5")  # written, and read as well (earlier runs)

    def __init__(self, directory, history_csv, keep: int = 2, guard: DivergenceGuard | None = None):
        super().__init__()
        self.directory = Path(directory)
        self.history_csv = Path(history_csv)
        self.keep = keep
        self.guard = guard
        self.rows: list[dict] = []

    def _state_file(self, epoch: int) -> Path | None:
        for suffix in self.SUFFIXES:
            path = self.directory / f"epoch-{epoch:04d}{suffix}"
            if path.is_file():
                return path
        return None

    def _complete(self) -> list[int]:
        epochs = []
        for meta in self.directory.glob("epoch-*.json"):
            epoch = int(meta.stem.split("-")[1])
            if self._state_file(epoch) is not None:
                epochs.append(epoch)
        return sorted(epochs)

    def restore(self, model) -> int:
        """Loads the newest complete checkpoint into `model`; returns the epochs it had finished."""
        complete = self._complete()
        if not complete:
            self.rows = []
            return 0
        epoch = complete[-1]
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(self._state_file(epoch))
        meta = json.loads((self.directory / f"epoch-{epoch:04d}.json").read_text())
        self.rows = meta["history"][:epoch]
        self._write_csv()
        return epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.diverged:
            return
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.rows = [r for r in self.rows if r["epoch"] < epoch + 1] + [row]
        self.save(self.model, epoch + 1)

    def save(self, model, epoch: int) -> None:
        """Writes the checkpoint of `epoch` finished epochs and prunes older ones."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.directory / f"epoch-{epoch:04d}.state.keras") as tmp:
            model.save(tmp)
        write_json(self.directory / f"epoch-{epoch:04d}.json", {"epoch": epoch, "history": self.rows})
        self._write_csv()
        for old in self._complete()[: -self.keep]:
            for suffix in (".json", *self.SUFFIXES):
                (self.directory / f"epoch-{old:04d}{suffix}").unlink(missing_ok=True)

    def _write_csv(self) -> None:
        keys = sorted({k for r in self.rows for k in r} - {"epoch"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["epoch", *keys], lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.history_csv, buffer.getvalue())


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model with the lowest finite `monitor` so far to `path` (a .keras file),
    atomically; never an epoch in which `guard` fired."""

    def __init__(self, path, monitor: str = "val_loss", guard: DivergenceGuard | None = None):
        super().__init__()
        self.path, self.monitor, self.guard = Path(path), monitor, guard
        self.best = math.inf

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.diverged:
            return
        value = (logs or {}).get(self.monitor)
        if value is not None and math.isfinite(value) and value < self.best:
            self.best = float(value)
            with atomic_path(self.path) as tmp:
                self.model.save(tmp)


class EpochTimer(keras.callbacks.Callback):
    """Wall time of the training part of each epoch (validation excluded)."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()

    def _stop(self):
        if self._start is not None:
            self.times.append(time.perf_counter() - self._start)
            self._start = None

    def steady_state_seconds(self) -> list[float]:
        """Epoch times excluding the first (tracing, compilation, cache filling)."""
        return self.times[1:] if len(self.times) > 1 else self.times


class TimeBudget(keras.callbacks.Callback):
    """Stops training before the session's wall time exceeds `minutes`.

    After each epoch it stops if one more epoch as long as the longest so far would end past
    the budget, so the last epoch finishes within it (up to the variation of epoch times).
    Time counts from the start of `fit` in this session; a resumed run gets a fresh budget.
    """

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds = 60.0 * float(minutes)
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self._start = self._epoch_start = time.perf_counter()
        self._longest = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self._longest = max(self._longest, now - self._epoch_start)
        if now - self._start + self._longest > self.seconds:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True
