"""One step on a two-replica MirroredStrategy equals one step on one device, for every family.

Keras 3 does not divide a loss written in `compute_loss` by the replica count; a family that
forgets `replica_mean`, or adds a penalty or regularizer without dividing it, steps twice as
far on two replicas. The sparse family also needs ρ̂_j over the *global* batch: a per-replica
ρ̂_j gives a different penalty. The batch below is chosen so the two halves differ.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import accepts, fed, tiny_images, tiny_params
from keras import ops

import zoo
from zoo.training import trainer
from zoo.training.optimizers import FusedAdam

GLOBAL_BATCH = 8

# Randomness made identical on both sides: no noise, ε fixed (below), no binarization.
DETERMINISTIC = {
    "denoising": {"noise": {"kind": "gaussian", "stddev": 0.0}},
    "sparse": {"rho": 0.1, "beta": 3.0},
}


def _params(family, extra):
    params = tiny_params(family, **DETERMINISTIC.get(family, {}), **extra)
    if accepts(family, "weight_decay"):
        params["weight_decay"] = 0.01  # the regularizer losses must be divided by the replica count too
    return params


def _cpus():
    return tf.config.list_logical_devices("CPU")


pytestmark = pytest.mark.skipif(len(_cpus()) < 2, reason="needs two logical CPU devices (set up in conftest)")


@pytest.fixture(scope="module")
def mirrored():
    # The trainer's strategy, which is one per process: TensorFlow's collective ops number their
    # instances per process, and a second MirroredStrategy over the same CPUs collides with the first.
    strategy = trainer.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    return strategy


def _zero_epsilon(shape):
    return ops.zeros(shape)


def _one_step(strategy, family, params, weights, x, optimizer):
    with strategy.scope():
        model = zoo.build(family, **params)
        model(fed(model, x[:1]))
        model.set_weights(weights)
        if hasattr(model, "_epsilon"):
            model._epsilon = _zero_epsilon  # z = μ: the same sample on every replica
        model.compile(optimizer=optimizer())
    ds = tf.data.Dataset.from_tensor_slices(fed(model, x)).batch(GLOBAL_BATCH)
    model.fit(ds, epochs=1, shuffle=False, verbose=0)
    return [np.asarray(w) for w in model.get_weights()]


OPTIMIZERS = {"sgd": lambda: keras.optimizers.SGD(learning_rate=0.5), "adam": lambda: keras.optimizers.Adam(0.01),
              "fused_adam": lambda: FusedAdam(0.01)}


CASES = [(family, {}) for family in zoo.list_models()] + [
    ("vae", {"prior": "mixture"}),  # Monte Carlo KL
    ("vae", {"likelihood": "gaussian", "learn_sigma": True}),
    ("vae", {"likelihood": "continuous_bernoulli", "iw_samples": 3}),
    ("cvae", {"prior": "conditional", "iw_samples": 3}),  # learned per-class prior, importance-weighted bound
]


def _check_same_step(family, extra, optimizer, mirrored):
    params = _params(family, extra)
    x = tiny_images(GLOBAL_BATCH, seed=3)
    x[GLOBAL_BATCH // 2:] *= 0.3  # the replicas' halves differ, so per-replica statistics would show
    reference = zoo.build(family, **params)
    reference(fed(reference, x[:1]))
    initial = [np.asarray(w) for w in reference.get_weights()]
    single = _one_step(tf.distribute.OneDeviceStrategy(_cpus()[0].name), family, params, initial, x,
                       OPTIMIZERS[optimizer])
    double = _one_step(mirrored, family, params, initial, x, OPTIMIZERS[optimizer])

    # The step moved the weights, so equality below is not equality of untouched weights.
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(single, initial)) > 1e-3
    for w_single, w_double, var in zip(single, double, reference.weights):
        np.testing.assert_allclose(w_double, w_single, atol=1e-5, rtol=0, err_msg=f"{family}: {var.path}")


def _case_id(value):
    if isinstance(value, dict):
        return "-".join(f"{k}={v}" for k, v in value.items()) or "default"
    return value


@pytest.mark.parametrize("family,extra", CASES, ids=_case_id)
def test_two_replicas_sgd_step_like_one_device(family, extra, mirrored):
    # SGD moves by the gradient itself, so a loss off by the replica count shows as a step off by 2×.
    _check_same_step(family, extra, "sgd", mirrored)


@pytest.mark.parametrize("optimizer", ["adam", "fused_adam"])
def test_two_replicas_adam_step_like_one_device(optimizer, mirrored):
    # Adam's first step is nearly scale-free (SGD above is the sharper check); this covers its state,
    # and that the fused kernel updates each replica's copy of the variables.
    _check_same_step("sparse", {}, optimizer, mirrored)


def test_fused_adam_keeps_every_replica_copy_in_step(mirrored):
    """Several FusedAdam steps on two replicas: each replica's copy of every weight and slot is
    updated once per step by its own kernel, so the copies agree and equal a one-device run."""
    x = tiny_images(4 * GLOBAL_BATCH, seed=4)
    params = _params("stacked", {})

    def train(strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = zoo.build("stacked", **params)
            model(x[:1])
            model.compile(optimizer=FusedAdam(0.01))
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(GLOBAL_BATCH), epochs=1, shuffle=False, verbose=0)
        return model

    single = train(tf.distribute.OneDeviceStrategy(_cpus()[0].name))
    double = train(mirrored)
    assert int(np.asarray(double.optimizer.iterations.value.read_value())) == 4
    for var in double.weights + double.optimizer.variables:
        copies = [np.asarray(c) for c in mirrored.experimental_local_results(var.value)]
        assert len(copies) == 2
        np.testing.assert_array_equal(copies[0], copies[1], err_msg=var.path)
    for a, b, var in zip(single.get_weights(), double.get_weights(), double.weights):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0, err_msg=var.path)


def test_sparse_penalty_uses_the_global_batch(mirrored):
    """Under two replicas each replica's ρ̂_j equals the mean over the whole global batch."""
    from zoo.layers.sparsity import global_batch_mean

    strategy = mirrored
    h = np.arange(12, dtype="float32").reshape(4, 3) / 12.0
    ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(h).batch(4))
    per_replica = strategy.run(tf.function(global_batch_mean), args=(next(iter(ds)),))
    for value in strategy.experimental_local_results(per_replica):
        np.testing.assert_allclose(np.asarray(value), h.mean(axis=0), rtol=1e-6)
