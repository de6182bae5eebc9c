"""TFLite / LiteRT conversion of a zoo model, and the report that compares each file with Keras.

Each file holds the three inference signatures (serving_default, encode, decode) with float32
inputs and outputs, converted with TensorFlow Lite built-in ops only (no Select TF ops):

    float32       <name>_float32.tflite       no quantization
    float16       <name>_float16.tflite       float16 weights, float32 compute
    dynamic_int8  <name>_dynamic_int8.tflite  int8 weights, activations quantized on the fly
    int8          <name>_int8.tflite          full integer: int8 weights and activations, with
                                              ranges calibrated on training examples; QUANTIZE /
                                              DEQUANTIZE at the float32 inputs and outputs
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from zoo.export.report import keras_reconstruction, measure, serving_feeds, write_report
from zoo.export.runners import TFLiteRunner
from zoo.export.saved_model import tempdir, write_signatures
from zoo.io import atomic_path

FILE_SUFFIX = {"none": "float32", "float16": "float16", "dynamic_int8": "dynamic_int8", "int8": "int8"}
def tflite_path(directory: Path, name: str, flavour: str) -> Path:
    return Path(directory) / f"{name}_{FILE_SUFFIX[flavour]}.tflite"


def convert(saved_model_dir, flavour: str, signatures, calibration: dict | None = None) -> tuple[bytes, list]:
    """Converts the `signatures` of a SavedModel to a TFLite flatbuffer.

    Args:
        saved_model_dir: a SavedModel written by `zoo.export.saved_model.write_signatures`.
        flavour: "none", "float16", "dynamic_int8" or "int8".
        signatures: the signature keys to convert.
        calibration: for "int8": signature key -> list of input dicts (one per example batch).

    Returns:
        The flatbuffer bytes and the op sets it was converted with.
    """
    import tensorflow as tf

    def converter(op_sets):
        c = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=list(signatures))
        c.target_spec.supported_ops = op_sets
        if flavour != "none":
            c.optimizations = [tf.lite.Optimize.DEFAULT]
        if flavour == "float16":
            c.target_spec.supported_types = [tf.float16]
        if flavour == "int8":
            c.representative_dataset = lambda: ((key, inputs) for key, batches in calibration.items()
                                                for inputs in batches)
        return c

    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with _quiet():
        if flavour != "int8":
            return converter(builtins).convert(), ["TFLITE_BUILTINS"]
        try:
            return converter([tf.lite.OpsSet.TFLITE_BUILTINS_INT8]).convert(), ["TFLITE_BUILTINS_INT8"]
        except Exception:  # an op without an int8 kernel: let it run in float, still built-in ops only
            ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            return converter(ops).convert(), ["TFLITE_BUILTINS_INT8", "TFLITE_BUILTINS"]


@contextlib.contextmanager
def _quiet():
    """Silences the converter's own prints (C++ logging to fds 1 and 2, deprecation warnings);
    its errors still arrive as Python exceptions."""
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1), os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def op_names(flatbuffer: bytes) -> list[str]:
    """The distinct operator names in a TFLite flatbuffer (custom ops, e.g. Flex ops, by their custom name)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    out = set()
    for code in model.operatorCodes:
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.customCode
            out.add(custom.decode() if isinstance(custom, bytes) else str(custom))
        else:
            out.add(names.get(builtin, str(builtin)))
    return sorted(out)


def calibration_inputs(model, x: np.ndarray, signatures, batch: int = 1) -> dict:
    """Representative inputs per signature, batch by batch: the model's own `signature_inputs` of
    all of x, each per-example input sliced (so labels a conditional model makes up for the
    examples vary over the batches as over x); scalar inputs are kept whole."""
    whole = model.signature_inputs(x)

    def part(value, start):
        value = np.asarray(value)
        return value[start: start + batch] if value.ndim and len(value) == len(x) else value

    return {key: [{name: part(value, start) for name, value in whole[key].items()} for start in range(0, len(x), batch)]
            for key in signatures}


def export_tflite(source, directory: Path, flavours, *, calibration, evaluation, latency_runs=100, say=print,
                  saved_model_dir=None) -> list[Path]:
    """Writes one .tflite file per flavour into `directory` and their report; returns the paths.

    Converts from `saved_model_dir` (the version just exported) when given, else from a
    temporary SavedModel of the inference signatures.
    """

    model = source.model
    x_eval, eval_name = evaluation
    feeds = serving_feeds(model, x_eval)
    reference = keras_reconstruction(model, feeds)
    calib = None
    if "int8" in flavours:
        calib = calibration_inputs(model, calibration, model.device_signatures)
    directory = Path(directory)
    written, rows = [], []
    with tempdir() as tmp:
        saved = saved_model_dir
        if saved is None:
            saved = Path(tmp) / "saved_model"
            write_signatures(model, saved, model.device_signatures)
        for flavour in flavours:
            flatbuffer, op_sets = convert(saved, flavour, model.device_signatures, calib)
            ops = op_names(flatbuffer)
            flex = [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
            if flex:
                raise ValueError(f"{flavour}: the converted graph needs Select TF ops {flex}")
            path = tflite_path(directory, source.name, flavour)
            directory.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as part:
                Path(part).write_bytes(flatbuffer)
            row = {"file": path.name, "format": "tflite", "quantization": FILE_SUFFIX[flavour],
                   "size_bytes": len(flatbuffer), "op_sets": op_sets, "ops": ops,
                   "signatures": list(model.device_signatures), "source": source.origin,
                   "eval_data": eval_name, "eval_examples": int(len(x_eval)),
                   "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   **measure(TFLiteRunner(path), x_eval, reference, latency_runs, feeds)}
            rows.append(row)
            written.append(path)
            say(f"tflite       {path}")
    written.append(write_report(directory, rows))
    return written
