"""SavedModels for TF Serving: the model's signatures, warm-up requests, atomic versions.

Every SavedModel holds the signatures the family offers (`Autoencoder.serving_signatures`),
inputs and outputs named, the batch dimension free; at least

    serving_default  x [B, *input_shape] -> reconstruction [B, *input_shape]
    encode           x -> code [B, d]
    decode           code [B, d] -> reconstruction

(the VAE's encode gives mean and stddev of q(z|x), and it adds `sample` and `log_likelihood`).
A version is written into a hidden temporary directory beside its final place and renamed
into place, so a server polling `base/<name>` never sees a half-written version; an existing
version is never overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from zoo.io import remove_dead_temporaries

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
def serving_functions(model, names=None) -> dict:
    """The model's serving signatures (`Autoencoder.serving_signatures`), restricted to `names`."""
    return {k: v for k, v in model.serving_signatures().items() if names is None or k in names}


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


def warmup_requests(source, examples=None) -> list:
    """`PredictionLog` records, one per signature, for TF Serving's warm-up at load time."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    if examples is None:
        examples = np.full((2, *source.input_shape), 0.5, "float32")
    inputs = source.model.signature_inputs(np.asarray(examples[:2], "float32"))
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


def write_saved_model(source, base: Path, examples=None) -> Path:
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


def signature_names(saved_model_dir) -> list[str]:
    """The signature keys of a SavedModel directory, read from its saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    keys = [k for k in proto.meta_graphs[0].signature_def if not k.startswith("__")]
    order = ("serving_default", "encode", "decode")
    return sorted(keys, key=lambda k: (order.index(k) if k in order else len(order), k))


def tempdir(parent=None) -> tempfile.TemporaryDirectory:
    """A temporary directory (for a SavedModel that is only converted, not kept)."""
    return tempfile.TemporaryDirectory(prefix="zoo-export-", dir=parent)
