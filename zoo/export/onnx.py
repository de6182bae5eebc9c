"""ONNX export through tf2onnx, checked on onnxruntime (optional: `pip install 'zoo[export]'`).

An ONNX file holds one graph, so each inference signature is its own file:
`<name>.onnx` (x -> reconstruction), `<name>_encode.onnx` (x -> code, or mean and stddev for
the VAE) and `<name>_decode.onnx` (code -> reconstruction), with the same input and output names
as the SavedModel signatures and a free batch dimension.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from zoo.export.report import keras_reconstruction, measure, serving_feeds, write_report
from zoo.export.runners import OnnxRunner
from zoo.export.saved_model import serving_functions
from zoo.io import atomic_path

OPSET = 17


def onnx_path(directory: Path, name: str, signature: str) -> Path:
    return Path(directory) / f"{name}{'' if signature == 'serving_default' else '_' + signature}.onnx"


def convert(fn, opset: int = OPSET) -> bytes:
    """Converts one signature function (a `tf.function` with an input signature) to ONNX bytes."""
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=opset)
    return proto.SerializeToString()


def export_onnx(source, directory: Path, *, evaluation, latency_runs=100, say=print) -> list[Path]:
    """Writes the ONNX files of `source` into `directory` with a report.json; returns the paths."""
    import logging


    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    x_eval, eval_name = evaluation
    feeds = serving_feeds(source.model, x_eval)
    reference = keras_reconstruction(source.model, feeds)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written, rows = [], []
    for signature, fn in serving_functions(source.model, source.model.device_signatures).items():
        data = convert(fn)
        path = onnx_path(directory, source.name, signature)
        with atomic_path(path) as part:
            Path(part).write_bytes(data)
        written.append(path)
        say(f"onnx         {path}")
        if signature == "serving_default":
            rows.append({"file": path.name, "format": "onnx", "quantization": "float32", "size_bytes": len(data),
                         "opset": OPSET, "source": source.origin, "eval_data": eval_name,
                         "eval_examples": int(len(x_eval)),
                         "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                         **measure(OnnxRunner(path), x_eval, reference, latency_runs, feeds)})
    written.append(write_report(directory, rows))
    return written
