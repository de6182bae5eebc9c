"""The corruption layers of the denoising family: their statistics, and their absence at inference."""

import numpy as np
import pytest
from conftest import build_tiny, tiny_images

from zoo.layers import NOISES, AdditiveGaussianNoise, MaskingNoise, SaltAndPepperNoise, make_noise

N = 200_000  # standard error of a fraction ≤ sqrt(0.25 / N) ≈ 0.0011


def corrupt(layer, x):
    return np.asarray(layer(x, training=True))


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_masking_zeroes_a_fraction_p(rate):
    x = np.random.default_rng(0).uniform(0.1, 1.0, N).astype("float32")  # no zeros of its own
    y = corrupt(MaskingNoise(rate, seed=1), x)
    zeroed = y == 0
    assert abs(zeroed.mean() - rate) < 0.01
    np.testing.assert_array_equal(y[~zeroed], x[~zeroed])  # survivors are not rescaled


@pytest.mark.parametrize("rate", [0.2, 0.6])
def test_salt_and_pepper_changes_a_fraction_p_half_each_way(rate):
    x = np.full(N, 0.5, "float32")
    y = corrupt(SaltAndPepperNoise(rate, v_min=-1.0, v_max=2.0, seed=1), x)
    assert set(np.unique(y)) <= {-1.0, 0.5, 2.0}
    changed = y != 0.5
    assert abs(changed.mean() - rate) < 0.01
    assert abs((y == -1.0).mean() - rate / 2) < 0.01
    assert abs((y == 2.0).mean() - rate / 2) < 0.01
    assert abs((y[changed] == 2.0).mean() - 0.5) < 0.02


@pytest.mark.parametrize("stddev", [0.1, 0.5])
def test_gaussian_noise_has_mean_zero_and_std_sigma(stddev):
    x = np.random.default_rng(0).random(N).astype("float32")
    eps = corrupt(AdditiveGaussianNoise(stddev, seed=1), x) - x
    assert abs(eps.mean()) < 0.01 * stddev * 5
    assert abs(eps.std() - stddev) < 0.01 * stddev
    # Normal tails: about 4.55% of ε beyond 2σ.
    assert abs((np.abs(eps) > 2 * stddev).mean() - 0.0455) < 0.003


def test_gaussian_clip_keeps_the_data_range():
    x = np.random.default_rng(0).random(N).astype("float32")
    y = corrupt(AdditiveGaussianNoise(0.5, clip=True, seed=1), x)
    assert y.min() == 0.0 and y.max() == 1.0
    unclipped = corrupt(AdditiveGaussianNoise(0.5, clip=False, seed=1), x)
    assert unclipped.min() < 0.0 and unclipped.max() > 1.0


def test_zero_level_is_the_identity():
    x = np.random.default_rng(0).random(1000).astype("float32")
    for layer in (AdditiveGaussianNoise(0.0), MaskingNoise(0.0), SaltAndPepperNoise(0.0)):
        np.testing.assert_array_equal(corrupt(layer, x), x)


@pytest.mark.parametrize("kind", sorted(NOISES))
def test_noise_is_the_identity_at_inference(kind):
    layer = make_noise({"kind": kind, "seed": 1})
    x = np.random.default_rng(0).random((64, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    assert not np.array_equal(corrupt(layer, x), x)


@pytest.mark.parametrize("kind", sorted(NOISES))
def test_noise_is_seeded(kind):
    x = np.random.default_rng(0).random(1000).astype("float32")
    a = corrupt(make_noise({"kind": kind, "seed": 7}), x)
    b = corrupt(make_noise({"kind": kind, "seed": 7}), x)
    np.testing.assert_array_equal(a, b)
    layer = make_noise({"kind": kind, "seed": 7})
    assert not np.array_equal(corrupt(layer, x), corrupt(layer, x))  # fresh noise every call


@pytest.mark.parametrize("kind", sorted(NOISES))
def test_denoising_model_is_deterministic_at_inference(kind):
    x = tiny_images(16)
    model = build_tiny("denoising", noise={"kind": kind})
    first = np.asarray(model(x))
    np.testing.assert_array_equal(np.asarray(model(x)), first)
    np.testing.assert_array_equal(np.asarray(model.predict(x, verbose=0)), first)
    # Inference encodes the clean input: exactly decode(encode(x)).
    np.testing.assert_allclose(np.asarray(model.decode(model.encode(x))), first, rtol=0, atol=1e-7)
    # Training corrupts: the reconstruction of a training call differs.
    assert not np.allclose(np.asarray(model(x, training=True)["reconstruction"]), first)


def test_denoising_target_is_the_clean_input():
    """With masking at p, the loss of a training step compares x̂ with the clean x, not x̃."""
    x = tiny_images(16)
    model = build_tiny("denoising", noise={"kind": "masking", "rate": 0.5})
    outputs = model(x, training=True)
    loss = float(model.compute_loss(x=x, y_pred=outputs))
    x_hat = np.asarray(outputs["reconstruction"], "float64")
    expected = np.mean(np.sum((x.reshape(16, -1) - x_hat.reshape(16, -1)) ** 2, axis=1))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


@pytest.mark.parametrize("spec,key", [
    ({"kind": "masking", "rate": 1.0}, "rate"),
    ({"kind": "masking", "rate": -0.1}, "rate"),
    ({"kind": "salt_pepper", "rate": 1.0}, "rate"),
    ({"kind": "gaussian", "stddev": -1.0}, "stddev"),
    ({"kind": "gaussian", "stddev": float("nan")}, "stddev"),
])
def test_invalid_parameters_raise_and_echo_what_was_received(spec, key):
    with pytest.raises(ValueError, match=f"Received: {key}=") as info:
        make_noise(spec)
    assert "\n" not in str(info.value)


def test_salt_and_pepper_needs_v_min_below_v_max():
    with pytest.raises(ValueError, match="Received: v_min=1.0, v_max=0.0"):
        SaltAndPepperNoise(0.1, v_min=1.0, v_max=0.0)


def test_unknown_noise_kind_lists_the_known_ones():
    with pytest.raises(ValueError, match="kind must be one of gaussian, masking, salt_pepper. Received: kind='blur'"):
        make_noise({"kind": "blur"})


def test_noise_spec_must_be_a_table():
    with pytest.raises(ValueError, match="noise must be a table .* Received: noise='masking'"):
        make_noise("masking")


@pytest.mark.parametrize("kind", sorted(NOISES))
def test_spec_round_trip_keeps_parameters_and_seed(kind):
    layer = make_noise({"kind": kind, "seed": 5})
    again = make_noise(layer.spec())
    assert again.get_config() == {**layer.get_config(), "name": again.name}
    x = np.random.default_rng(0).random(1000).astype("float32")
    np.testing.assert_array_equal(corrupt(again, x), corrupt(layer, x))


def test_denoising_config_keeps_the_noise_seed():
    model = build_tiny("denoising", noise={"kind": "masking", "rate": 0.4, "seed": 5})
    assert model.get_config()["noise"] == {"kind": "masking", "rate": 0.4, "seed": 5}
