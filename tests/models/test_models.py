"""The harness every registered family goes through: registering a family tests it."""

import keras
import numpy as np
import pytest
from conftest import TINY_CODE, accepts, build_tiny, fed, fed_codes, tiny_params

import zoo

FAMILIES = zoo.list_models()


def test_registry_lists_the_built_in_families():
    assert set(FAMILIES) >= {"basic", "cvae", "denoising", "sparse", "stacked", "vae"}
    assert FAMILIES == sorted(FAMILIES)


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown model 'vea'. Known: basic, "):
        zoo.build("vea")


def test_an_argument_the_family_does_not_take_is_refused():
    with pytest.raises(ValueError, match=r"^Unknown argument 'hidden' for model 'basic'\. Allowed: input_shape, code_size"):
        zoo.build("basic", hidden=[16])
    assert zoo.build("basic", code_size=3, name="named").name == "named"  # Keras's own arguments pass


@pytest.mark.parametrize("family", FAMILIES)
def test_config_round_trip(family, images):
    model = build_tiny(family)
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    clone(fed(clone, images[:1]))
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(fed(clone, images))), np.asarray(model(fed(model, images))))


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_shape_and_range(family, images):
    model = build_tiny(family)
    out = np.asarray(model(fed(model, images)))
    assert out.shape == images.shape
    assert out.dtype == np.float32
    assert np.all((out >= 0) & (out <= 1))
    # In training the call returns what the objective needs, so a step runs the network once.
    outputs = model(fed(model, images), training=True)
    assert isinstance(outputs, dict) and "logits" in outputs


@pytest.mark.parametrize("family", FAMILIES)
def test_encode_decode_shapes(family, images):
    model = build_tiny(family)
    z = np.asarray(model.encode(fed(model, images)))
    assert z.shape == (len(images), TINY_CODE)
    x_hat = np.asarray(model.decode(fed_codes(model, z)))
    assert x_hat.shape == images.shape
    assert np.all((x_hat >= 0) & (x_hat <= 1))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_few_fit_steps_lower_the_loss(family, images):
    model = build_tiny(family)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = fed(model, images)
    before = model.evaluate(x, batch_size=len(images), verbose=0, return_dict=True)["loss"]
    history = model.fit(x, batch_size=len(images), epochs=8, verbose=0).history
    after = model.evaluate(x, batch_size=len(images), verbose=0, return_dict=True)["loss"]
    assert np.all(np.isfinite(history["loss"]))
    assert after < before, (family, before, after)


@pytest.mark.parametrize("family", FAMILIES)
def test_keras_file_reloads_safely_with_identical_outputs(family, images, tmp_path):
    model = build_tiny(family)
    model.compile(optimizer="adam")
    x = fed(model, images)
    model.fit(x, batch_size=8, epochs=1, verbose=0)  # weights away from their initial values
    path = tmp_path / f"{family}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    np.testing.assert_array_equal(np.asarray(loaded.encode(x)), np.asarray(model.encode(x)))


@pytest.mark.parametrize("family", [f for f in FAMILIES if accepts(f, "backbone")])
def test_conv_backbone(family, images, tmp_path):
    model = build_tiny(family, backbone="conv", hidden=[4, 8])
    x = fed(model, images)
    out = np.asarray(model(x))
    assert out.shape == images.shape
    assert np.asarray(model.encode(x)).shape == (len(images), TINY_CODE)
    path = tmp_path / "conv.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(x)), out)


@pytest.mark.parametrize("family", FAMILIES)
def test_invalid_code_size_is_a_one_line_error(family):
    with pytest.raises(ValueError, match=r"code_size.*Received: code_size=0") as info:
        zoo.build(family, **tiny_params(family, code_size=0))
    assert "\n" not in str(info.value)


def test_a_conv_backbone_on_table_rows_is_a_clear_error():
    with pytest.raises(ValueError, match=r"backbone='conv' needs images \(H, W, C\) or windows \(T, C\); table rows "
                                         r"\(F,\) take backbone='dense'\. Received: input_shape=\(6,\)") as info:
        zoo.build("stacked", input_shape=(6,), code_size=2, hidden=[4, 8], backbone="conv")
    assert "\n" not in str(info.value)


def test_weight_decay_adds_the_l2_penalty(images):
    """Same weights, λ > 0 versus λ = 0: the losses differ by exactly (λ/2)·Σ‖W‖² over the kernels."""
    lam = 0.01
    plain = build_tiny("stacked")
    decayed = build_tiny("stacked", weight_decay=lam)
    decayed.set_weights(plain.get_weights())
    kernels = [np.asarray(w) for w in plain.weights if w.path.endswith("kernel")]
    expected = lam / 2 * sum(float(np.sum(k.astype("float64") ** 2)) for k in kernels)
    losses = [float(m.compute_loss(x=images, y_pred=m(images, training=True))) for m in (plain, decayed)]
    np.testing.assert_allclose(losses[1] - losses[0], expected, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_mixed_precision_step(family, images):
    """Under mixed_float16 (loss scaling) the objective stays float32 and a step gives a finite loss."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_tiny(family)
        model.compile(optimizer="adam")
        loss = model.fit(fed(model, images), batch_size=8, epochs=1, verbose=0).history["loss"]
        out = model(fed(model, images))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.all(np.isfinite(loss))
    assert out.dtype == "float32" and np.all((np.asarray(out) >= 0) & (np.asarray(out) <= 1))
