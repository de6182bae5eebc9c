"""The run directory of `zoo fit`: its files, its state, and whether it holds a given recipe.

    recipe.toml      the resolved recipe (written first)
    checkpoints/     the resumable state of the last finished epoch
    history.csv      one row per epoch
    best.keras       the best model by validation loss (or training loss)
    model.keras      the final model (written last, atomically)
    metrics.json     the final metrics; "finished": true marks a finished run, and
                     "finished": false with "diverged" a run stopped by its divergence rule
    .zoo.lock        the lock a writing process holds (`zoo.io.exclusive_lock`)
    threshold.json   the anomaly threshold `zoo score` calibrated (optional)

Evaluation, export and bench read runs through this module, never through the trainer.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from zoo.errors import first_line


def _metrics(run_dir: Path) -> dict:
    try:
        value = json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def run_state(run_dir: Path) -> str:
    """"empty", "partial" (checkpoints but unfinished), "diverged" (stopped by the divergence
    rule, kept at its last finite checkpoint) or "finished"."""
    run_dir = Path(run_dir)
    metrics = _metrics(run_dir)
    if metrics.get("finished"):
        return "finished"
    if isinstance(metrics.get("diverged"), dict):
        return "diverged"
    if (run_dir / "checkpoints").is_dir() or (run_dir / "recipe.toml").is_file():
        return "partial"
    return "empty"


def diverged_at(run_dir: Path) -> tuple[int, str]:
    """A diverged run's last finite epoch and what its divergence rule saw."""
    record = _metrics(run_dir).get("diverged") or {}
    return int(record.get("last_finite_epoch") or 0), str(record.get("reason") or "its loss diverged")


def same_recipe(previous_toml: str, recipe, ignoring=()) -> bool:
    """Whether a run's saved recipe.toml describes `recipe`, up to its description and the
    `train` keys in `ignoring`. Both sides are compared as validated recipes, so a key added to
    the configs since the run was made compares as its default instead of as a missing line.
    The trainer (may this run be resumed?) and the bench (may this run be reused?) both ask here.
    """
    from zoo.configs.recipe import parse_recipe

    try:
        previous = parse_recipe(tomllib.loads(previous_toml), "recipe.toml")
    except (tomllib.TOMLDecodeError, ValueError):
        return False

    def essentials(r) -> dict:
        data = r.to_dict()
        data.pop("description", None)
        for key in ignoring:
            data["train"].pop(key, None)
        return data

    return essentials(previous) == essentials(recipe)


def load_finished_model(path: Path, compile: bool = True):
    """The `.keras` model at `path`, loaded with Keras's safe mode; a one-line error naming the file otherwise.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: a file that is not a `.keras` archive (truncated, corrupt, another format), or
            whose model cannot be rebuilt (an unknown class, code refused by safe mode, bad config).
    """
    import zipfile

    import keras

    import zoo.models  # noqa: F401  (registers the classes the file names)
    import zoo.training.optimizers  # noqa: F401

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a .keras model archive (truncated or corrupt: not a zip file); "
                         f"export or train it again")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=compile)
    except Exception as e:  # a corrupt member, an unknown class, a Lambda refused by safe_mode ...
        raise ValueError(f"{path} is not a loadable zoo model: {first_line(e)[:300]}") from None


#: A run's calibrated anomaly threshold (`zoo.anomaly.thresholds`), which exports bake into `detect`.
THRESHOLD_FILE = "threshold.json"


def read_threshold(run_dir):
    """The run's calibrated anomaly threshold (threshold.json) as a dict, or None without one.

    Raises:
        ValueError: a threshold file that cannot be read, in one line.
    """
    path = Path(run_dir) / THRESHOLD_FILE
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
        float(value["threshold"]), str(value["score"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a readable threshold file ({type(e).__name__}: {e}); delete it and run "
                         f"`zoo score` again") from None
    return value
