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
    model(np.zeros((1, *params["input_shape"]), "float32"))
    return model


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
