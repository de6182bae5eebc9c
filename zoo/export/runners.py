"""Run exported models with their real runtimes: a SavedModel the way TF Serving loads it, a
.tflite file with the LiteRT interpreter, an .onnx file with onnxruntime.

Every runner is called the same way and checks its inputs first, so a wrong shape is a one-line
`ValueError` naming the expected and the received shapes rather than a runtime's stack trace:

    >>> runner = load_runner("saved_models/vae/1")
    >>> runner.signatures["encode"]
    {'inputs': {'x': ((None, 28, 28, 1), 'float32')}, 'outputs': ['mean', 'stddev']}
    >>> runner(x=x_test[:4])["reconstruction"].shape                  # serving_default
    (4, 28, 28, 1)
    >>> runner("sample", num_samples=3, seed=0)["samples"].shape
    (3, 28, 28, 1)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _shape_text(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class Runner:
    """Base class: `signatures` maps each name to its inputs ({name: (shape, dtype)}) and outputs."""

    signatures: dict

    def __call__(self, signature: str = "serving_default", **inputs) -> dict:
        """Runs one signature on numpy inputs; returns {output name: numpy array}."""
        return self._run(signature, self.check(signature, inputs))

    def check(self, signature: str, inputs: dict) -> dict:
        """The inputs as arrays of the declared dtypes, or a one-line ValueError."""
        if signature not in self.signatures:
            raise ValueError(f"Unknown signature {signature!r}. Known: {', '.join(sorted(self.signatures))}")
        expected = self.signatures[signature]["inputs"]
        if set(inputs) != set(expected):
            raise ValueError(f"Signature {signature!r} takes inputs {sorted(expected)}. Received: {sorted(inputs)}")
        out = {}
        for key, (shape, dtype) in expected.items():
            try:
                value = np.asarray(inputs[key], dtype=dtype)
            except (TypeError, ValueError):
                raise ValueError(f"Input {key!r} of signature {signature!r} must be convertible to {dtype}") from None
            ok = value.ndim == len(shape) and all(e is None or e == r for e, r in zip(shape, value.shape))
            if not ok:
                raise ValueError(f"Input {key!r} of signature {signature!r} expects shape {_shape_text(shape)}. "
                                 f"Received: shape {_shape_text(value.shape)}")
            out[key] = value
        return out

    def _run(self, signature: str, inputs: dict) -> dict:
        raise NotImplementedError


class SavedModelRunner(Runner):
    """A SavedModel loaded as TF Serving's C++ loader does: a TF1 session on a fresh graph, tag "serve",
    feeding and fetching the tensor names recorded in each SignatureDef."""

    def __init__(self, path):
        import tensorflow as tf

        self.path = Path(path)
        if not (self.path / "saved_model.pb").is_file():
            raise ValueError(f"{self.path} is not a SavedModel directory (no saved_model.pb)")
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], str(self.path))
        self.signature_defs = {k: v for k, v in meta_graph.signature_def.items() if not k.startswith("__")}
        self.signatures = {}
        for key, sig in self.signature_defs.items():
            inputs = {}
            for name, info in sig.inputs.items():
                dims = tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim)
                inputs[name] = (dims, tf.dtypes.as_dtype(info.dtype).as_numpy_dtype)
            self.signatures[key] = {"inputs": inputs, "outputs": sorted(sig.outputs)}

    def _run(self, signature, inputs):
        sig = self.signature_defs[signature]
        names = sorted(sig.outputs)
        values = self.session.run([sig.outputs[n].name for n in names],
                                  {sig.inputs[k].name: v for k, v in inputs.items()})
        return dict(zip(names, values))

    def close(self) -> None:
        self.session.close()


class TFLiteRunner(Runner):
    """A .tflite file on the LiteRT interpreter (`ai_edge_litert`); one thread unless told otherwise."""

    def __init__(self, path, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{self.path} is not a loadable .tflite file: {str(e).splitlines()[0]}") from None
        self.runners = {}
        self.signatures = {}
        for key, sig in self.interpreter.get_signature_list().items():
            runner = self.interpreter.get_signature_runner(key)
            details = runner.get_input_details()
            inputs = {}
            for name in sig["inputs"]:
                d = details[name]
                shape = tuple(None if s < 0 else int(s) for s in d["shape_signature"])
                inputs[name] = (shape, np.dtype(d["dtype"]))
            self.runners[key] = runner
            self.signatures[key] = {"inputs": inputs, "outputs": sorted(sig["outputs"])}

    def _run(self, signature, inputs):
        out = self.runners[signature](**inputs)
        return {k: np.array(v) for k, v in out.items()}


class OnnxRunner(Runner):
    """An .onnx file on onnxruntime's CPU provider; its one graph is the signature "serving_default"."""

    def __init__(self, path, num_threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ValueError("Running .onnx files needs onnxruntime: pip install onnxruntime") from None
        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ValueError(f"{self.path} is not a loadable .onnx file: {str(e).splitlines()[0]}") from None
        types = {"tensor(float)": np.float32, "tensor(int32)": np.int32, "tensor(int64)": np.int64}
        inputs = {i.name: (tuple(d if isinstance(d, int) else None for d in i.shape), np.dtype(types[i.type]))
                  for i in self.session.get_inputs()}
        self.signatures = {"serving_default": {"inputs": inputs,
                                               "outputs": sorted(o.name for o in self.session.get_outputs())}}

    def _run(self, signature, inputs):
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, inputs)))


def load_runner(path, **kwargs) -> Runner:
    """The runner for an exported model: a SavedModel directory, a .tflite or an .onnx file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No exported model at {path}")
    if path.is_dir():
        return SavedModelRunner(path)
    if path.suffix == ".tflite":
        return TFLiteRunner(path, **kwargs)
    if path.suffix == ".onnx":
        return OnnxRunner(path, **kwargs)
    raise ValueError(f"{path} is not an exported model (a SavedModel directory, .tflite or .onnx file)")
