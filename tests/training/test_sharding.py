"""Batch shards: one step on a batch cut into shards equals Keras's own step on the whole batch.

The reference is Keras's `train_step` (batch_shards = 1). A shard weighted by anything but its
share |B_s|/|B| of the batch, or a regularizer counted once per shard, moves SGD's step away
from it; uneven shards (10 examples in 3 shards: 4, 3, 3) and empty ones (2 examples in 3
shards) are covered.
"""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import accepts, fed, tiny_images, tiny_params
from keras import ops

import zoo
from zoo.training import sharding
from zoo.configs.recipe import RecipeError

DETERMINISTIC = {"denoising": {"noise": {"kind": "gaussian", "stddev": 0.0}}}
SHARDABLE = [f for f in zoo.list_models() if zoo.registry.get(f).per_example_objective]
CASES = [(family, {}) for family in SHARDABLE] + [
    ("vae", {"prior": "mixture"}),
    ("vae", {"likelihood": "gaussian", "learn_sigma": True}),
    ("vae", {"likelihood": "continuous_bernoulli", "iw_samples": 3, "kl_warmup_steps": 4}),
    ("cvae", {"prior": "conditional", "iw_samples": 3}),
]


def _params(family, extra):
    params = tiny_params(family, **DETERMINISTIC.get(family, {}), **extra)
    if accepts(family, "weight_decay"):
        params["weight_decay"] = 0.01  # a term of the parameters: it must count once, not once per shard
    return params


def _step(family, params, weights, x, shards):
    model = zoo.build(family, **params)
    model(fed(model, x[:1]))
    model.set_weights(weights)
    if hasattr(model, "_epsilon"):
        model._epsilon = lambda shape: ops.zeros(shape)  # z = μ whatever the shard: the same draws on both sides
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    model.batch_shards = shards
    logs = model.train_on_batch(fed(model, x), return_dict=True)
    return [np.asarray(w) for w in model.get_weights()], logs


@pytest.mark.parametrize("family,extra", CASES,
                         ids=lambda v: "-".join(f"{k}={w}" for k, w in v.items()) or "default" if isinstance(v, dict) else v)
@pytest.mark.parametrize("n,shards", [(10, 3), (10, 2), (2, 3)])
def test_sharded_step_equals_the_whole_batch_step(family, extra, n, shards):
    params = _params(family, extra)
    x = tiny_images(n, seed=5)
    x[n // 2:] *= 0.3  # shards differ from each other
    reference = zoo.build(family, **params)
    reference(fed(reference, x[:1]))
    initial = [np.asarray(w) for w in reference.get_weights()]
    whole, whole_logs = _step(family, params, initial, x, 1)
    sharded, sharded_logs = _step(family, params, initial, x, shards)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(whole, initial)) > 1e-3  # the step moved
    for a, b, var in zip(whole, sharded, reference.weights):
        np.testing.assert_allclose(b, a, atol=2e-5, rtol=1e-6, err_msg=f"{family}: {var.path}")
    assert set(sharded_logs) == set(whole_logs)
    for key, value in whole_logs.items():  # loss and the family's own metrics, over the whole batch
        np.testing.assert_allclose(sharded_logs[key], value, rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.skipif(len(tf.config.list_logical_devices("CPU")) < 2, reason="needs two logical CPUs (conftest)")
@pytest.mark.parametrize("family", ["stacked", "vae", "cvae"])
def test_shards_on_two_replicas_step_like_one_device(family):
    # Each replica cuts its half of the global batch into shards: still the global batch's gradient.
    from zoo.training import trainer

    params = _params(family, {})
    x = tiny_images(8, seed=6)
    x[4:] *= 0.3
    reference = zoo.build(family, **params)
    reference(fed(reference, x[:1]))
    initial = [np.asarray(w) for w in reference.get_weights()]
    whole, _ = _step(family, params, initial, x, 1)
    with trainer.make_strategy("mirrored").scope():
        model = zoo.build(family, **params)
        model(fed(model, x[:1]))
        model.set_weights(initial)
        if hasattr(model, "_epsilon"):
            model._epsilon = lambda shape: ops.zeros(shape)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    model.batch_shards = 2
    model.fit(tf.data.Dataset.from_tensor_slices(fed(model, x)).batch(8), epochs=1, shuffle=False, verbose=0)
    for a, b, var in zip(whole, model.get_weights(), reference.weights):
        np.testing.assert_allclose(b, a, atol=2e-5, rtol=1e-6, err_msg=f"{family}: {var.path}")


def test_shard_sizes_are_as_equal_as_possible():
    for n, shards, expected in [(10, 3, [4, 3, 3]), (128, 2, [64, 64]), (97, 2, [49, 48]), (2, 3, [1, 1, 0])]:
        assert [int(s) for s in sharding.shard_sizes(tf.constant(n), shards)] == expected


def test_sparse_refuses_shards():
    # ρ̂_j is a mean over the whole batch: the KL penalty of shards' ρ̂ is not the batch's.
    assert zoo.registry.get("sparse").per_example_objective is False
    with pytest.raises(RecipeError, match=r"train\.batch_shards must be 1 for model 'sparse', whose objective uses "
                                          r"statistics of the whole batch\. Received: train\.batch_shards=2$"):
        zoo.load_recipe("sparse", overrides=["train.batch_shards=2"])
    with pytest.raises(RecipeError, match=r"train\.batch_shards must be in \[1, inf\)"):
        zoo.load_recipe("vae", overrides=["train.batch_shards=0"])
    assert zoo.load_recipe("vae", overrides=["train.batch_shards=2"]).train.batch_shards == 2


def test_threads_are_set_before_tensorflow_starts_or_a_warning_says_why_not():
    # `zoo fit` configures the runtime first (trainer.early_strategy), in a fresh process.
    code = ("from zoo.training import trainer; import tensorflow as tf; "
            "trainer.early_strategy('vae', ['train.batch_shards=2']); "
            "print(tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "2"]
    # Here TensorFlow is already running: the threads cannot change, and the user is told.
    with pytest.warns(UserWarning, match="batch_shards = 3: TensorFlow was already running"):
        sharding.configure_threads(3)
