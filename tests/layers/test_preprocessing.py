"""The preprocessing a model carries: raw units in and out, the model's units inside."""

import numpy as np
import pytest

import keras

import zoo
from tests.conftest import fed, tiny_params
from zoo.layers.preprocessing import check_preprocessing, is_bounded, make_preprocessing

FAMILIES = zoo.list_models()
RNG = np.random.default_rng(0)
TABLE = (RNG.normal(size=(64, 5)) * [1.0, 10.0, 100.0, 0.1, 3.0] + [0.0, 50.0, -200.0, 1.0, 7.0]).astype("float32")


def _standardize_spec(x):
    axes = tuple(range(x.ndim - 1))
    return {"kind": "standardize", "mean": x.mean(axis=axes).tolist(), "variance": x.var(axis=axes).tolist()}


def test_standardize_matches_keras_adapt_and_inverts():
    """The statistics the data layer computes give what Keras's own `Normalization.adapt` gives,
    and the inverse layer maps back to the raw units."""
    forward, inverse = make_preprocessing(_standardize_spec(TABLE))
    adapted = keras.layers.Normalization(axis=-1)
    adapted.adapt(TABLE)
    np.testing.assert_allclose(np.asarray(forward(TABLE)), np.asarray(adapted(TABLE)), atol=1e-4)
    z = np.asarray(forward(TABLE))
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(np.asarray(inverse(z)), TABLE, rtol=1e-5, atol=1e-3)


def test_scale_by_hand():
    forward, inverse = make_preprocessing({"kind": "scale", "scale": 1 / 255})
    x = np.array([[0.0, 51.0, 255.0]], "float32")
    np.testing.assert_allclose(np.asarray(forward(x)), [[0.0, 0.2, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(inverse(forward(x))), x, rtol=1e-5)
    assert make_preprocessing(None) == (None, None) and is_bounded({"kind": "scale", "scale": 2.0})


@pytest.mark.parametrize("spec,message", [
    ({"kind": "zscore"}, r"Unknown preprocessing kind 'zscore'\. Allowed: none, scale, standardize"),
    ({"kind": "scale", "scale": 0}, r"scale must be a number > 0\. Received: scale=0"),
    ({"kind": "standardize", "mean": [0, 1], "variance": [1]}, "same length"),
    ({"kind": "standardize", "mean": [0], "variance": [0]}, "variances > 0"),
    ({"kind": "none", "scale": 2}, "takes kind"),
])
def test_bad_specs_are_one_line_errors(spec, message):
    with pytest.raises(ValueError, match=message) as info:
        check_preprocessing(spec)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_standardized_model_takes_and_returns_raw_units(family, tmp_path):
    """Reconstruction is in the input's units; the objective is in standardized units; the
    statistics survive a .keras round trip."""
    spec = _standardize_spec(TABLE)
    params = tiny_params(family, input_shape=(5,))
    if "likelihood" in zoo.registry.hyperparameters(family):
        params["likelihood"] = "gaussian"
    else:
        params["loss"] = "mse"
    model = zoo.build(family, preprocessing=spec, **params)
    table = fed(model, TABLE)  # with labels for a model that takes them
    out = np.asarray(model(table))
    assert out.shape == TABLE.shape
    # Untrained, the reconstruction is near the mean in standardized units, so in raw units it is
    # near each column's mean: far outside [0, 1] for the columns centred at 50 and -200.
    assert abs(out[:, 2].mean() - (-200.0)) < 100 and abs(out[:, 1].mean() - 50.0) < 20
    np.testing.assert_allclose(np.asarray(model.normalize(TABLE)),
                               (TABLE - np.asarray(spec["mean"])) / np.sqrt(spec["variance"]), rtol=1e-4, atol=1e-4)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.preprocessing["kind"] == "standardize"
    np.testing.assert_allclose(np.asarray(loaded(table)), out, rtol=1e-5, atol=1e-4)


def test_the_objective_is_in_the_models_units():
    """With x' = (x − m)/√v the stacked autoencoder's loss is mean_i Σ_d (x'_d − x̂'_d)²,
    computed by hand from the model's own outputs."""
    spec = _standardize_spec(TABLE)
    model = zoo.build("stacked", input_shape=(5,), code_size=2, hidden=[8], preprocessing=spec)
    xn = (TABLE - np.asarray(spec["mean"])) / np.sqrt(spec["variance"])
    recon_n = np.asarray(model.normalize(np.asarray(model(TABLE))))
    expected = np.mean(np.sum((xn - recon_n) ** 2, axis=1))
    loss = float(model.compute_loss(x=TABLE, y_pred=model(TABLE, training=True)))
    np.testing.assert_allclose(loss, expected, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(model.anomaly_score(TABLE)), np.sum((xn - recon_n) ** 2, axis=1),
                               rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("family,params,message", [
    ("stacked", {"loss": "bce"}, r"loss='bce' needs values in \[0, 1\].*use loss='mse'"),
    ("vae", {"likelihood": "bernoulli"}, r"likelihood='bernoulli' needs values in \[0, 1\].*likelihood='gaussian'"),
])
def test_cross_entropy_on_standardized_data_is_refused(family, params, message):
    with pytest.raises(ValueError, match=message):
        zoo.build(family, input_shape=(5,), code_size=2, preprocessing=_standardize_spec(TABLE), **params)


def test_scaled_images_give_the_same_model_as_unit_images():
    """A model with scale 1/255 fed x·255 computes what the same weights compute without
    preprocessing on x, and returns it ×255."""
    x = RNG.random((4, 8, 8, 1), dtype="float32")
    plain = zoo.build("vae", input_shape=(8, 8, 1), code_size=2, hidden=[8], seed=1)
    scaled = zoo.build("vae", input_shape=(8, 8, 1), code_size=2, hidden=[8], seed=1,
                       preprocessing={"kind": "scale", "scale": 1 / 255})
    plain(x), scaled(x)
    scaled.set_weights(plain.get_weights())
    np.testing.assert_allclose(np.asarray(scaled(x * 255)), np.asarray(plain(x)) * 255, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(scaled.anomaly_score(x * 255)), np.asarray(plain.anomaly_score(x)),
                               rtol=1e-4)
