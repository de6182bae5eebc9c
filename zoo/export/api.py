"""`export(run_or_model, base, format, quantize)`: what a run or a model becomes for serving.

Writes, under `base`:

    <name>/<version>/            SavedModel, the layout TF Serving watches (integer versions)
    <name>/tflite/<name>_<q>.tflite   LiteRT files, q in float32, float16, dynamic_int8, int8
    <name>/tflite/report.json    size, error against the float Keras model and latency per file
    <name>/onnx/<name>[_<signature>].onnx, <name>/onnx/report.json

The signatures are the model's own (`Autoencoder.serving_signatures`, see
`zoo.export.saved_model`); this module resolves what is exported and calls the writers.

Example:
    >>> paths = zoo.export("runs/vae", format="all")
    >>> runner = zoo.export.runners.load_runner(paths[0])
    >>> runner(x=x_test[:8])["reconstruction"].shape
    (8, 28, 28, 1)
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from zoo.export.onnx import export_onnx
from zoo.export.saved_model import write_saved_model
from zoo.export.tflite import export_tflite
from zoo.io import exclusive_lock

FORMATS = ("saved_model", "tflite", "onnx", "all")
QUANTIZATIONS = ("none", "float16", "dynamic_int8", "int8", "all")
CALIBRATION_EXAMPLES = 256
#: Test examples the export reports are computed on (at most; a folder's files are read for them).
TEST_EXAMPLES_READ = 10_000


class Source:
    """What is exported: the model, its name and, for a run, the recipe's data.

    Attributes:
        model: the zoo model (a built `Autoencoder`).
        name: the model name under the base directory (the recipe's name, else the family).
        origin: where the model came from, for reports.
        recipe: the run's recipe, or None.
    """

    def __init__(self, model, name: str, origin: str, recipe=None):
        self.model, self.name, self.origin, self.recipe = model, name, origin, recipe
        self._data = None

    @property
    def input_shape(self) -> tuple:
        return tuple(self.model.input_shape_)

    def data(self):
        """(calibration examples, test examples) from the run's recipe data, or (None, None)."""
        if self.recipe is None:
            return None, None
        if self._data is None:
            import zoo.data.sources as zdata
            from zoo.data.splits import load_splits

            splits = load_splits(self.recipe.data, self.recipe.train.seed, self.input_shape)
            rng = np.random.default_rng(self.recipe.train.seed)
            n_fit = len(splits.x_fit)
            sample, _ = splits.fit_arrays(np.sort(rng.choice(n_fit, size=min(CALIBRATION_EXAMPLES, n_fit), replace=False)))
            x_test, _ = splits.test_arrays(TEST_EXAMPLES_READ)
            if self.recipe.data.binarize == "dynamic":
                # The model was trained on binarized images: calibrate on what it saw.
                sample = zdata.binarize_static(sample, self.recipe.train.seed + 3)
            self._data = (sample, x_test)
        return self._data


def export(run_or_model, base="saved_models", format: str = "saved_model", quantize: str | None = None, *,
           name: str | None = None, representative_data=None, test_data=None, latency_runs: int = 100,
           verbose: bool = False) -> list[Path]:
    """Exports a trained zoo model; see the module docstring for the layout and the signatures.

    Args:
        run_or_model: a run directory of `zoo fit` (model.keras + recipe.toml), a `.keras`
            file of a zoo model, or a zoo `keras.Model`.
        base: the base directory (TF Serving's model base path is `base/<name>`).
        format: "saved_model", "tflite", "onnx" or "all" (SavedModel, every TFLite flavour and,
            when tf2onnx and onnxruntime are installed, ONNX).
        quantize: TFLite flavour: "none" (float32), "float16", "dynamic_int8" (int8 weights),
            "int8" (full integer, calibrated) or "all". Defaults to "all" for format="all" and
            "none" for format="tflite"; only TFLite files are quantized.
        name: the model name; defaults to the run's recipe name or the model family.
        representative_data: examples to calibrate full-integer int8 with (default: a sample of
            the run's training data).
        test_data: examples for the report (default: the run's test set, else the calibration
            data, else uniform noise).
        latency_runs: single-example invocations whose median latency is reported.
        verbose: print progress lines.

    Returns:
        The paths written: the SavedModel version directory, the model files, the reports.

    Raises:
        ValueError: a path that is not a run or a zoo model, an unknown format or quantization,
            a base path that is a file, missing calibration data, a bad name. Nothing is written.
        FileNotFoundError: `run_or_model` does not exist.
    """
    from zoo.checks import check_choice, check_range

    check_choice("format", format, FORMATS)
    if quantize is not None:
        check_choice("quantize", quantize, QUANTIZATIONS)
    if format in ("saved_model", "onnx") and quantize not in (None, "none"):
        raise ValueError(f"quantize applies to TFLite files; use format='tflite' or 'all'. "
                         f"Received: format={format!r}, quantize={quantize!r}")
    check_range("latency_runs", latency_runs, 1)
    flavours = _flavours(format, quantize)
    base = Path(base)
    _check_dir("base", base)
    source = load_source(run_or_model, name=name)
    for sub in ("", "tflite", "onnx"):
        _check_dir("export directory", base / source.name / sub)
    calibration = _examples("representative_data", representative_data, source.input_shape)
    test = _examples("test_data", test_data, source.input_shape)
    if "int8" in flavours and calibration is None and source.recipe is None:
        raise ValueError("quantize='int8' calibrates on training data: export a run directory (its recipe's data "
                         "is used) or pass representative_data (--calibration-data FILE.npy)")
    onnx = format == "onnx" or (format == "all" and _onnx_available())
    if format == "all" and not onnx:
        warnings.warn("ONNX skipped: tf2onnx and onnxruntime are not installed (pip install tf2onnx onnxruntime)",
                      stacklevel=2)
    if format == "onnx" and not _onnx_available():
        raise ValueError("format='onnx' needs tf2onnx and onnxruntime: pip install 'zoo[export]' "
                         "(or pip install tf2onnx onnxruntime)")
    evaluation = None
    if flavours or onnx:
        if calibration is None or test is None:
            run_calibration, run_test = source.data()
            calibration = calibration if calibration is not None else run_calibration
            test_name = "given test data" if test is not None else "test set"
            test = test if test is not None else run_test
        else:
            test_name = "given test data"
        evaluation = evaluation_examples(source, test, test_name, calibration)
    written = []
    say = print if verbose else (lambda *a, **k: None)
    version_dir = None
    with exclusive_lock(base, "export base"):  # one exporter per base: versions are numbered by what is there
        if format in ("saved_model", "all"):
            version_dir = write_saved_model(source, base, examples=test if test is not None else calibration)
            say(f"saved_model  {version_dir}")
            written.append(version_dir)
        if flavours:
            written += export_tflite(source, base / source.name / "tflite", flavours, calibration=calibration,
                                     evaluation=evaluation, latency_runs=latency_runs, say=say,
                                     saved_model_dir=version_dir)
        if onnx:
            written += export_onnx(source, base / source.name / "onnx", evaluation=evaluation,
                                   latency_runs=latency_runs, say=say)
    return written


def evaluation_examples(source, test, test_name: str, calibration) -> tuple[np.ndarray, str]:
    """The examples the reports are computed on, and what they are."""
    if test is not None:
        return test, test_name
    if calibration is not None:
        return calibration, "calibration data"
    return np.random.default_rng(0).random((256, *source.input_shape), dtype="float32"), "uniform noise"


def _flavours(format: str, quantize: str | None) -> list[str]:
    if format not in ("tflite", "all"):
        return []
    quantize = quantize or ("all" if format == "all" else "none")
    return ["none", "float16", "dynamic_int8", "int8"] if quantize == "all" else [quantize]


def _check_dir(what: str, path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ValueError(f"The {what} {path} is a file, not a directory; choose another path")


def _onnx_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("tf2onnx", "onnxruntime"))


def _examples(what: str, x, input_shape) -> np.ndarray | None:
    if x is None:
        return None
    x = np.asarray(x, dtype="float32")
    if x.ndim == len(input_shape):
        x = x[None]
    if tuple(x.shape[1:]) != tuple(input_shape) or len(x) == 0:
        raise ValueError(f"{what} must have shape (N, {', '.join(map(str, input_shape))}) to fit the model. "
                         f"Received: shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contains non-finite values")
    return x


def load_source(run_or_model, name: str | None = None) -> Source:
    """Resolves what `export` was given into a `Source`; one-line errors for anything else."""
    import keras

    from zoo.models.base import Autoencoder

    recipe = threshold = None
    if isinstance(run_or_model, keras.Model):
        model, origin = run_or_model, f"<{type(run_or_model).__name__} in memory>"
    else:
        path = Path(run_or_model)
        if not path.exists():
            raise FileNotFoundError(f"No run directory or .keras file at {path}")
        if path.is_dir():
            model_file, recipe_file = path / "model.keras", path / "recipe.toml"
            if not (model_file.is_file() and recipe_file.is_file()):
                raise ValueError(f"{path} is not a finished zoo run (it needs model.keras and recipe.toml; "
                                 f"train one with `zoo fit`)")
            from zoo.configs.recipe import load_recipe
            from zoo.training.run_dir import read_threshold

            recipe = load_recipe(recipe_file)
            threshold = read_threshold(path)
        elif path.suffix == ".keras":
            model_file = path
        else:
            raise ValueError(f"{path} is neither a zoo run directory nor a .keras file")
        model = _load_keras(model_file)
        origin = str(path)
    if not isinstance(model, Autoencoder):
        raise ValueError(f"{origin} is not a zoo model (got {type(model).__name__}; build one with zoo.build)")
    if not model.built:
        raise ValueError(f"{origin}: the model is not built; call it once on a batch first")
    if threshold is not None and threshold["score"] not in model.SAMPLED_SCORES:
        model.anomaly_threshold = threshold  # a calibrated run also serves `detect`
    name = name or (recipe.name if recipe is not None else model.family)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        raise ValueError(f"name must be letters, digits, '_', '-' or '.' (not leading). Received: name={name!r}")
    return Source(model, name, origin, recipe)


def _load_keras(path: Path):
    from zoo.training.run_dir import load_finished_model

    return load_finished_model(path, compile=False)


# Signatures.
