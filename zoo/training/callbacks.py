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


class ResumableCheckpoint(keras.callbacks.Callback):
    """Backup-and-restore of the whole training state, safe against a kill at any instant.

    Keras's `BackupAndRestore` writes its weights and its metadata in place, so a kill during
    a write can leave a torn file, and the history CSV is a separate file that can lose or
    double a row. Here each epoch's state is one pair written atomically: the weights
    (model, optimizer and random-generator state) as `epoch-NNNN.weights.h5`, then
    `epoch-NNNN.json` holding the epoch count and every history row so far. `restore` takes
    the newest complete pair, so what is resumed and the history agree by construction.
    `history.csv` is regenerated from the rows after each epoch.

    Args:
        directory: where the checkpoints go (a run's `checkpoints/`).
        history_csv: path of the CSV with one row per finished epoch.
        keep: complete checkpoints to keep.
    """

    def __init__(self, directory, history_csv, keep: int = 2):
        super().__init__()
        self.directory = Path(directory)
        self.history_csv = Path(history_csv)
        self.keep = keep
        self.rows: list[dict] = []

    def _complete(self) -> list[int]:
        epochs = []
        for meta in self.directory.glob("epoch-*.json"):
            epoch = int(meta.stem.split("-")[1])
            if (self.directory / f"epoch-{epoch:04d}.weights.h5").is_file():
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
        model.load_weights(self.directory / f"epoch-{epoch:04d}.weights.h5")
        meta = json.loads((self.directory / f"epoch-{epoch:04d}.json").read_text())
        self.rows = meta["history"][:epoch]
        self._write_csv()
        return epoch

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.rows = [r for r in self.rows if r["epoch"] < epoch + 1] + [row]
        self.save(self.model, epoch + 1)

    def save(self, model, epoch: int) -> None:
        """Writes the checkpoint of `epoch` finished epochs and prunes older ones."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.directory / f"epoch-{epoch:04d}.weights.h5") as tmp:
            model.save_weights(tmp)
        write_json(self.directory / f"epoch-{epoch:04d}.json", {"epoch": epoch, "history": self.rows})
        self._write_csv()
        for old in self._complete()[: -self.keep]:
            for suffix in (".json", ".weights.h5"):
                (self.directory / f"epoch-{old:04d}{suffix}").unlink(missing_ok=True)

    def _write_csv(self) -> None:
        keys = sorted({k for r in self.rows for k in r} - {"epoch"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["epoch", *keys], lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.history_csv, buffer.getvalue())


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model with the lowest `monitor` so far to `path` (a .keras file), atomically."""

    def __init__(self, path, monitor: str = "val_loss"):
        super().__init__()
        self.path, self.monitor = Path(path), monitor
        self.best = math.inf

    def on_epoch_end(self, epoch, logs=None):
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
