"""Export a trained model for TF Serving (SavedModel), for devices (TFLite / LiteRT) and for ONNX.

`export(run_or_model, base, format, quantize)` writes, under `base`:

    <name>/<version>/            SavedModel, the layout TF Serving watches (integer versions)
    <name>/tflite/<name>_<q>.tflite   LiteRT files, q in float32, float16, dynamic_int8, int8
    <name>/tflite/report.json    size, error against the float Keras model and latency per file
    <name>/onnx/<name>[_encode|_decode].onnx, <name>/onnx/report.json

A SavedModel version is written into a hidden temporary directory beside its final place and
renamed into place, so a server polling `base/<name>` never sees a half-written version; an
existing version is never overwritten. Every SavedModel holds these signatures (inputs and
outputs are named, the batch dimension is free):

    serving_default  x [B, *input_shape] -> reconstruction [B, *input_shape]
    encode           x -> code [B, d]            (VAE: mean, stddev of q(z|x), each [B, d])
    decode           code [B, d] -> reconstruction
    sample           num_samples, seed (int32 scalars) -> samples           (VAE only)
    log_likelihood   x, num_samples, seed -> log_likelihood [B] in nats     (VAE only)

The first three are deterministic (the VAE encodes with the posterior mean) and hold no random
op, so they convert to TFLite with built-in ops only; `sample` and `log_likelihood` use
stateless random ops seeded by their `seed` input, so one request always gives one answer.

Example:
    >>> paths = zoo.export("runs/vae", format="all")
    >>> runner = zoo.export_runners.load_runner(paths[0])
    >>> runner(x=x_test[:8])["reconstruction"].shape
    (8, 28, 28, 1)
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import tempfile
import types
import uuid
import warnings
from pathlib import Path

import numpy as np

from zoo.io import remove_dead_temporaries

FORMATS = ("saved_model", "tflite", "onnx", "all")
QUANTIZATIONS = ("none", "float16", "dynamic_int8", "int8", "all")
INFERENCE_SIGNATURES = ("serving_default", "encode", "decode")
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
CALIBRATION_EXAMPLES = 256


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
            from zoo import data as zdata
            from zoo.trainer import load_data

            x_fit, _, x_test, _ = load_data(self.recipe)
            rng = np.random.default_rng(self.recipe.train.seed)
            sample = x_fit[rng.choice(len(x_fit), size=min(CALIBRATION_EXAMPLES, len(x_fit)), replace=False)]
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
    if format in ("saved_model", "all"):
        version_dir = write_saved_model(source, base, examples=test if test is not None else calibration)
        say(f"saved_model  {version_dir}")
        written.append(version_dir)
    if flavours:
        from zoo.export_tflite import export_tflite

        written += export_tflite(source, base / source.name / "tflite", flavours, calibration=calibration,
                                 evaluation=evaluation, latency_runs=latency_runs, say=say,
                                 saved_model_dir=version_dir)
    if onnx:
        from zoo.export_onnx import export_onnx

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

    recipe = None
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
            from zoo.config import load_recipe

            recipe = load_recipe(recipe_file)
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
    name = name or (recipe.name if recipe is not None else model.family)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        raise ValueError(f"name must be letters, digits, '_', '-' or '.' (not leading). Received: name={name!r}")
    return Source(model, name, origin, recipe)


def _load_keras(path: Path):
    import keras

    import zoo.models  # noqa: F401  (registers the classes the file refers to)

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # a corrupt zip, an unknown class, a Lambda refused by safe_mode ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"{path} is not a loadable zoo model: {first}") from None


# Signatures.
def is_vae(model) -> bool:
    from zoo.models.vae import VariationalAutoencoder

    return isinstance(model, VariationalAutoencoder)


def serving_functions(model, names=None) -> dict:
    """The signature functions of `model`: name -> `tf.function` with named input specs.

    `names` restricts them (e.g. `INFERENCE_SIGNATURES` for TFLite and ONNX).
    """
    import tensorflow as tf

    shape, d = tuple(model.input_shape_), model.code_size
    x_spec = tf.TensorSpec([None, *shape], tf.float32, name="x")
    code_spec = tf.TensorSpec([None, d], tf.float32, name="code")
    n_spec = tf.TensorSpec([], tf.int32, name="num_samples")
    seed_spec = tf.TensorSpec([], tf.int32, name="seed")
    f32 = lambda t: tf.cast(t, tf.float32)  # noqa: E731  (mixed-precision models compute in float16)
    vae = is_vae(model)

    def posterior(x):
        # μ and σ of q(z|x) as tensors (the model's own split of the encoder outputs): a
        # distribution object would bring ops that TFLite's built-in set does not have.
        mean, stddev = model._posterior_params(x)
        return f32(mean), f32(stddev)

    def encode(x):
        if vae:
            mean, stddev = posterior(x)
            return {"mean": mean, "stddev": stddev}
        return {"code": f32(model.encode(x))}

    def reconstruct(x):
        code = posterior(x)[0] if vae else model.encode(x)
        return {"reconstruction": f32(model.decode(code))}

    def decode(code):
        return {"reconstruction": f32(model.decode(code))}

    fns = {
        "serving_default": tf.function(reconstruct, input_signature=[x_spec], autograph=False),
        "encode": tf.function(encode, input_signature=[x_spec], autograph=False),
        "decode": tf.function(decode, input_signature=[code_spec], autograph=False),
    }
    if vae:
        def sample(num_samples, seed):
            tf.debugging.assert_positive(num_samples, message="num_samples must be positive")
            z = model.prior().sample(num_samples, seed=tf.stack([seed, 0]))
            return {"samples": f32(model.decode(z))}

        def log_likelihood(x, num_samples, seed):
            # log p(x) ≈ logsumexp_i [log p(x|z_i) + log p(z_i) − log q(z_i|x)] − log k,
            # z_i = μ + σ ⊙ ε_i, ε ~ stateless N(0, I) of shape (k, B, d) seeded by [seed, 0].
            tf.debugging.assert_positive(num_samples, message="num_samples must be positive")
            mean, stddev = posterior(x)
            eps = tf.random.stateless_normal(tf.stack([num_samples, tf.shape(x)[0], d]), seed=tf.stack([seed, 0]))
            logits = model.decoder(tf.reshape(mean + stddev * eps, (-1, d)), training=False)
            log_px_z, log_pz, log_qz = model._log_weights(x, mean, stddev, eps, logits)
            k = tf.cast(num_samples, tf.float32)
            return {"log_likelihood": tf.reduce_logsumexp(log_px_z + log_pz - log_qz, axis=0) - tf.math.log(k)}

        fns["sample"] = tf.function(sample, input_signature=[n_spec, seed_spec], autograph=False)
        fns["log_likelihood"] = tf.function(log_likelihood, input_signature=[x_spec, n_spec, seed_spec],
                                            autograph=False)
    return {k: v for k, v in fns.items() if names is None or k in names}


def write_signatures(model, path, names=None) -> None:
    """Writes a SavedModel of `model`'s signatures to `path` (which must not exist)."""
    import keras

    archive = keras.export.ExportArchive()
    # ExportArchive tracks the variables the functions capture, which is what makes the
    # graph loadable by TF1's loader (TF Serving) as well as by tf.saved_model.load.
    archive.track(model)
    for key, fn in serving_functions(model, names).items():
        archive.add_endpoint(key, fn)
    archive.write_out(str(path), verbose=False)


def warmup_requests(source: Source, examples=None) -> list:
    """`PredictionLog` records, one per signature, for TF Serving's warm-up at load time."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    model = source.model
    if examples is None:
        examples = np.full((2, *source.input_shape), 0.5, "float32")
    x = np.asarray(examples[:2], "float32")
    code = np.zeros((len(x), model.code_size), "float32")
    inputs = {"serving_default": {"x": x}, "encode": {"x": x}, "decode": {"code": code}}
    if is_vae(model):
        n, seed = np.int32(2), np.int32(0)
        inputs["sample"] = {"num_samples": n, "seed": seed}
        inputs["log_likelihood"] = {"x": x, "num_samples": n, "seed": seed}
    logs = []
    for signature, values in inputs.items():
        request = predict_pb2.PredictRequest()
        request.model_spec.name = source.name
        request.model_spec.signature_name = signature
        for key, value in values.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def next_version(model_dir: Path) -> int:
    """1 + the largest integer version under `model_dir` (1 if there is none)."""
    if not model_dir.is_dir():
        return 1
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


TEMP_PREFIX = ".tmp-export-"


def write_saved_model(source: Source, base: Path, examples=None) -> Path:
    """Writes the next SavedModel version of `source` under `base/<name>/`; returns its directory.

    The version is built in `base/<name>/.tmp-export-<pid>-…` (TF Serving only looks at integer
    names) and renamed into place; on any failure the temporary directory is removed and no
    version is left. Temporary directories of exporters that were killed are removed first.
    """
    import tensorflow as tf

    model_dir = base / source.name
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(model_dir, TEMP_PREFIX)  # what an exporter killed mid-write left behind
    tmp = model_dir / f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        write_signatures(source.model, tmp)
        warmup = tmp / WARMUP_FILE
        warmup.parent.mkdir(parents=True, exist_ok=True)
        with tf.io.TFRecordWriter(str(warmup)) as writer:
            for log in warmup_requests(source, examples):
                writer.write(log.SerializeToString())
        _fsync_tree(tmp)
        for _ in range(100):
            version_dir = model_dir / str(next_version(model_dir))
            try:
                # os.rename of a directory fails if the target exists and is not empty; an
                # exporter racing us for the same number makes us take the next one.
                if version_dir.exists():
                    continue
                os.rename(tmp, version_dir)
                return version_dir
            except OSError:
                if not version_dir.exists():
                    raise
        raise RuntimeError(f"Could not claim a version directory under {model_dir}")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def describe(paths) -> str:
    """What `export` wrote, for people: the SavedModel and its signatures, a table of the model
    files (size, reconstruction MSE against the clean input, its ratio to the float Keras model's,
    max |Δ| against the Keras outputs, median single-example latency), then every path."""
    import json

    paths = [Path(p) for p in paths]
    lines, rows = [], []
    for path in paths:
        if path.is_dir():
            lines.append(f"saved_model  {path}  signatures: {', '.join(signature_names(path))}")
        elif path.name == "report.json":
            names = {p.name for p in paths if p.parent == path.parent}
            rows += [r for r in json.loads(path.read_text())["files"] if r["file"] in names]
    if rows:
        lines.append(format_table(rows))
        lines.append(f"(MSE against the input over {rows[0]['eval_examples']} examples, {rows[0]['eval_data']}; "
                     f"float Keras model: {rows[0]['keras_mse']:.5f})")
    lines += [str(p) for p in paths if not p.is_dir()]
    return "\n".join(lines)


def signature_names(saved_model_dir) -> list[str]:
    """The signature keys of a SavedModel directory, read from its saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    order = (*INFERENCE_SIGNATURES, "sample", "log_likelihood")
    keys = [k for k in proto.meta_graphs[0].signature_def if not k.startswith("__")]
    return sorted(keys, key=lambda k: (order.index(k) if k in order else len(order), k))


def format_table(rows: list[dict]) -> str:
    """The report rows of `export` as an aligned text table."""
    header = ("file", "quantization", "size", "MSE", "MSE/float", "max |Δ|", "latency")
    lines = [header]
    for r in rows:
        lines.append((
            Path(r["file"]).name, r["quantization"], _size(r["size_bytes"]), f"{r['mse']:.5f}",
            f"{r['mse_ratio']:.4f}" if r.get("mse_ratio") is not None else "-",
            f"{r['max_abs_diff']:.2e}", f"{r['latency_ms_median']:.3f} ms",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
                     for line in lines)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    exp = min(int(math.log(n, 1024)), 3)
    return f"{n / 1024 ** exp:.1f} {'BKMG'[exp]}{'iB' if exp else ''}"


def tempdir(parent=None) -> tempfile.TemporaryDirectory:
    """A temporary directory (for a SavedModel that is only converted, not kept)."""
    return tempfile.TemporaryDirectory(prefix="zoo-export-", dir=parent)


class _CallableModule(types.ModuleType):
    """Lets `zoo.export(...)` keep working once `import zoo.export` has put this module there."""

    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
