"""FusedAdam: the same update as Keras's Adam and as Adam's formula by hand, and it reloads."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.training.optimizers import FusedAdam

STEPS = 4


def _gradients(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=s).astype("float32") * 10.0 ** rng.integers(-3, 2) for s in shapes]
            for _ in range(STEPS)]


def _run(optimizer, initial, gradients):
    variables = [keras.Variable(w) for w in initial]
    optimizer.build(variables)
    apply = tf.function(lambda grads: optimizer.apply(grads, variables))
    for grads in gradients:
        apply([tf.constant(g) for g in grads])
    return [np.asarray(v) for v in variables]


def _adam_by_hand(initial, gradients, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Adam in float64: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − α√(1−β₂ᵗ)/(1−β₁ᵗ)·m/(√v + ε)."""
    theta = [w.astype("float64") for w in initial]
    m = [np.zeros_like(w) for w in theta]
    v = [np.zeros_like(w) for w in theta]
    for t, grads in enumerate(gradients, start=1):
        for i, g in enumerate(grads):
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            v[i] = beta_2 * v[i] + (1 - beta_2) * g.astype("float64") ** 2
            theta[i] = theta[i] - lr(t) * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t) * m[i] / (np.sqrt(v[i]) + epsilon)
    return theta


SHAPES = [(7, 5), (5,), (3, 3, 2)]


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_fused_adam_equals_keras_adam_and_the_formula(schedule):
    rng = np.random.default_rng(1)
    initial = [rng.normal(size=s).astype("float32") for s in SHAPES]
    gradients = _gradients(SHAPES)
    if schedule == "cosine":
        def lr():
            return keras.optimizers.schedules.CosineDecay(0.05, decay_steps=STEPS)

        def by_hand(t):  # the rate Keras uses at step t is the schedule at iterations = t − 1
            return 0.05 * 0.5 * (1 + np.cos(np.pi * (t - 1) / STEPS))
    else:
        def lr():
            return 0.05

        def by_hand(t):
            return 0.05
    fused = _run(FusedAdam(learning_rate=lr()), initial, gradients)
    keras_adam = _run(keras.optimizers.Adam(learning_rate=lr()), initial, gradients)
    expected = _adam_by_hand(initial, gradients, by_hand)
    for f, k, e, w in zip(fused, keras_adam, expected, initial):
        assert np.max(np.abs(f - w)) > 1e-3  # the steps moved the variables
        np.testing.assert_allclose(f, k, rtol=0, atol=2e-6)
        np.testing.assert_allclose(f, e, rtol=0, atol=2e-6)


def test_amsgrad_falls_back_to_keras_update():
    rng = np.random.default_rng(2)
    initial = [rng.normal(size=s).astype("float32") for s in SHAPES]
    gradients = _gradients(SHAPES, seed=3)
    fused = _run(FusedAdam(0.05, amsgrad=True), initial, gradients)
    keras_adam = _run(keras.optimizers.Adam(0.05, amsgrad=True), initial, gradients)
    for f, k in zip(fused, keras_adam):
        np.testing.assert_allclose(f, k, rtol=0, atol=1e-7)


def test_recipe_adam_is_fused_and_a_compiled_model_reloads_with_it(tmp_path):
    from zoo.training.trainer import make_optimizer

    recipe = zoo.load_recipe("vae_reference")
    assert type(make_optimizer(recipe.train, 100)) is FusedAdam
    model = zoo.build("basic", input_shape=(4, 4, 1), code_size=3)
    model(np.zeros((1, 4, 4, 1), "float32"))
    model.compile(optimizer=FusedAdam(3e-3, beta_1=0.8))
    model.fit(np.random.default_rng(0).random((8, 4, 4, 1)).astype("float32"), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.optimizer) is FusedAdam
    assert loaded.optimizer.beta_1 == pytest.approx(0.8)
    assert int(loaded.optimizer.iterations) == 1
