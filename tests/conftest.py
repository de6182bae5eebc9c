"""Shared fixtures of the test suite.

At import time (before TensorFlow initializes its devices) the one physical CPU is split into
two logical CPU devices, so `tf.distribute.MirroredStrategy` can run two replicas on a machine
without GPUs (tests/training/test_mirrored.py).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


def _split_cpu(n: int = 2) -> None:
    cpus = tf.config.list_physical_devices("CPU")
    if len(cpus) != 1 or tf.config.get_logical_device_configuration(cpus[0]):
        return
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        # Devices were initialized already (e.g. by a plugin importing TensorFlow first);
        # tests/training/test_mirrored.py then skips with a reason.
        pass


_split_cpu()

import keras  # noqa: E402

import zoo  # noqa: E402

TINY_SHAPE = (8, 8, 1)
TINY_CODE = 4


def accepts(family: str, argument: str) -> bool:
    """Whether the constructor of `family` takes `argument`."""
    return argument in zoo.registry.hyperparameters(family)


def tiny_params(family: str, **overrides) -> dict:
    """Small hyperparameters for any registered family: only the arguments its constructor takes."""
    accepted = zoo.registry.hyperparameters(family)
    params = {"input_shape": TINY_SHAPE, "code_size": TINY_CODE}
    if "hidden" in accepted:
        params["hidden"] = [16]
    if "seed" in accepted:
        params["seed"] = 1
    params.update(overrides)
    return params


def build_tiny(family: str, **overrides) -> keras.Model:
    """A tiny model of `family`, built by one call on a zero batch."""
    params = tiny_params(family, **overrides)
    model = zoo.build(family, **params)
    model(fed(model, np.zeros((1, *params["input_shape"]), "float32")))
    return model


def tiny_labels(n: int) -> np.ndarray:
    """Labels 0, 1, 0, 1, ... of n examples: valid for any model that takes labels (K ≥ 2)."""
    return np.arange(n) % 2


def fed(model, x, y=None):
    """What `model` takes for the examples x: `inputs_of(x, y)`, labels `tiny_labels` unless given
    (ignored by a model that takes no labels)."""
    return model.inputs_of(x, tiny_labels(len(x)) if y is None else y)


def fed_codes(model, z, y=None):
    """What `model.decode` takes for the codes z: `codes_of(z, y)`, labels `tiny_labels` unless given."""
    return model.codes_of(z, tiny_labels(len(z)) if y is None else y)


def tiny_images(n: int = 16, shape=TINY_SHAPE, seed: int = 0) -> np.ndarray:
    """n images with values in [0, 1]: smooth blobs plus a little noise, so models can learn them."""
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] / max(h - 1, 1)
    cy, cx = rng.random((2, n, 1, 1))
    blobs = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.08)
    x = np.clip(blobs[..., None] + 0.05 * rng.random((n, h, w, 1)), 0, 1)
    return np.broadcast_to(x, (n, h, w, shape[-1])).astype("float32").copy()


@pytest.fixture
def images():
    return tiny_images()


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global seed (weights, Keras random ops)."""
    keras.utils.set_random_seed(1234)
    yield


# Own data, written by the tests from real datasets that are on this machine.
def write_fashion_folder(root, n_train: int = 300, n_test: int = 100, size: int = 32, rgb: bool = True):
    """Fashion-MNIST's first images as PNG files in root/train/<class>/ and root/test/<class>/,
    resized to size×size (RGB copies of the gray pixels when `rgb`). Returns root."""
    from pathlib import Path

    from PIL import Image

    from zoo.data.sources import load_arrays

    root = Path(root)
    a = load_arrays("fashion_mnist")
    for split, x, y in (("train", a.x_train[:n_train], a.y_train[:n_train]), ("test", a.x_test[:n_test], a.y_test[:n_test])):
        for i, (img, label) in enumerate(zip(x, y)):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            picture = Image.fromarray((img[..., 0] * 255).round().astype("uint8"))
            if size != 28:
                picture = picture.resize((size, size), Image.BILINEAR)
            (picture.convert("RGB") if rgb else picture).save(folder / f"{i}.png")
    return root


def write_breast_cancer(path):
    """scikit-learn's breast-cancer table (569 rows, 30 features, label "target") as CSV or Parquet."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(path, index=False) if str(path).endswith(".csv") else frame.to_parquet(path)
    return path


def write_co2(path):
    """statsmodels' weekly Mauna Loa CO2 (2,284 rows, 59 missing) as a one-column CSV."""
    import statsmodels.datasets as sm

    sm.co2.load_pandas().data.reset_index(drop=True).to_csv(path, index=False)
    return path


# The TF Serving path: a SavedModel loaded by TF1's session loader, as TF Serving's C++ loader does.
def tf1_session(path):
    """A TF1 session with the SavedModel loaded as TF Serving loads it; returns (session, signature defs)."""
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
    return session, meta_graph.signature_def


def run_signature(session, signature_def, **inputs):
    fetch = sorted(signature_def.outputs)
    values = session.run([signature_def.outputs[k].name for k in fetch],
                         {signature_def.inputs[k].name: v for k, v in inputs.items()})
    return dict(zip(fetch, values))


# The readers of own data.
@pytest.fixture
def here(tmp_path, monkeypatch):
    """Works in tmp_path, so files are named by relative paths in messages, as a user gives them."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def data_error(reader, match, *args, **kwargs) -> str:
    """The one-line DataError message of reader(*args, **kwargs), checked against `match`."""
    from zoo.data.examples import DataError

    with pytest.raises(DataError, match=match) as info:
        reader(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message
