"""Splits of any source, the preprocessing they give the model, the [data] keys, TFDS by name."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from zoo.configs.recipe import DataConfig, RecipeError, data_config, load_recipe
from zoo.data import sources
from zoo.data.examples import DataError
from zoo.data.splits import from_model_units, load_splits, preprocessing_for, to_model_units, validation_count


def npz(tmp_path, n=50, shape=(6,), labels=True, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, *shape)) * 3 + 10).astype("float32")
    arrays = {"x": x, **({"y": np.arange(n) % 5} if labels else {})}
    np.savez(tmp_path / "d.npz", **arrays)
    return str(tmp_path / "d.npz"), x


def test_a_seeded_fraction_is_held_out_and_the_rest_split_again(tmp_path):
    path, x = npz(tmp_path)
    s = load_splits(DataConfig(path=path, test_fraction=0.2, validation_size=0.1), seed=3)
    # 50 examples: 10 for testing, then 4 of the other 40 for validation (round(4.0)).
    assert (len(s.x_fit), len(s.x_val), len(s.x_test)) == (36, 4, 10)
    # A partition: every row exactly once, labels carried along.
    rows = np.concatenate([s.x_fit, s.x_val, s.x_test])
    assert sorted(map(tuple, rows.round(5))) == sorted(map(tuple, x.round(5)))
    for xs, ys in ((s.x_fit, s.y_fit), (s.x_val, s.y_val), (s.x_test, s.y_test)):
        idx = [int(np.flatnonzero((x == r).all(axis=1))[0]) for r in xs]
        np.testing.assert_array_equal(ys, np.arange(50)[idx] % 5)
    again = load_splits(DataConfig(path=path, test_fraction=0.2, validation_size=0.1), seed=3)
    other = load_splits(DataConfig(path=path, test_fraction=0.2, validation_size=0.1), seed=4)
    np.testing.assert_array_equal(again.x_test, s.x_test)
    assert not np.array_equal(other.x_test, s.x_test)


def test_standardization_uses_the_fit_split_only(tmp_path):
    path, _ = npz(tmp_path)
    s = load_splits(DataConfig(path=path), seed=0)
    assert s.kind == "table" and not s.bounded
    fit = np.asarray(s.x_fit, np.float64)
    np.testing.assert_allclose(s.preprocessing["mean"], fit.mean(axis=0))
    np.testing.assert_allclose(s.preprocessing["variance"], fit.var(axis=0))
    z = to_model_units(s.x_fit, s.preprocessing)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(from_model_units(z, s.preprocessing), s.x_fit, rtol=1e-5)


def test_preprocessing_by_kind_by_hand():
    windows = np.array([[[1.0, 10.0], [3.0, 10.0]], [[5.0, 10.0], [7.0, 10.0]]], "float32")  # (2, 2, 2)
    spec = preprocessing_for("series", windows, False, 255.0)
    # Per channel over examples and time: channel 0 holds 1, 3, 5, 7; channel 1 is constant.
    np.testing.assert_allclose(spec["mean"], [4.0, 10.0])
    np.testing.assert_allclose(spec["variance"], [5.0, 1.0])  # a constant channel gets variance 1
    assert preprocessing_for("images", None, False, 16.0) == {"kind": "scale", "scale": 1 / 16}
    assert preprocessing_for("images", None, True, 255.0) == {"kind": "none"}


@pytest.mark.parametrize("size,n,catalog,expected", [
    ("auto", 60_000, True, 5000), ("auto", 455, False, 46), (0.25, 40, False, 10), (7, 40, False, 7), (0, 9, True, 0)])
def test_validation_count(size, n, catalog, expected):
    assert validation_count(size, n, catalog) == expected


def test_the_catalogs_splits_are_as_before():
    """Fashion-MNIST: the last 5000 training images validate, the test set is its own."""
    s = load_splits(DataConfig(), seed=0)
    a = sources.load_arrays("fashion_mnist")
    np.testing.assert_array_equal(s.x_val, a.x_train[-5000:])
    np.testing.assert_array_equal(s.x_fit, a.x_train[:-5000])
    assert s.x_test is a.x_test and s.preprocessing == {"kind": "none"} and s.labelled


def test_a_series_is_split_in_time_order(tmp_path):
    (tmp_path / "s.csv").write_text("v\n" + "\n".join(str(i) for i in range(100)) + "\n")
    s = load_splits(DataConfig(path=str(tmp_path / "s.csv"), window=5, validation_size=0.1), seed=0)
    # Rows 0..79 train (windows starting at 0..75), rows 80..99 test (starting at 80..95).
    assert s.x_test[:, 0, 0].tolist() == list(range(80, 96))
    starts = np.concatenate([s.x_fit[:, 0, 0], s.x_val[:, 0, 0]])
    assert starts.tolist() == list(range(76))  # the last windows validate, in order
    assert s.x_val[:, 0, 0].tolist() == list(range(68, 76))


def test_too_few_examples_for_the_splits(tmp_path):
    path, _ = npz(tmp_path, n=3)
    with pytest.raises(DataError, match=r"d\.npz: 3 examples cannot be split by test_fraction = 0\.1"):
        load_splits(DataConfig(path=path, test_fraction=0.1), seed=0)
    with pytest.raises(DataError, match="holds out 2 of the 2 training examples"):
        load_splits(DataConfig(path=path, validation_size=2), seed=0)


@pytest.mark.parametrize("values,message", [
    ({"dataset": "imagenet"}, "dataset must be one of fashion_mnist, mnist, cifar10, digits"),
    ({"validation_size": "most"}, "validation_size must be a count >= 0, a fraction in (0, 1)"),
    ({"validation_size": -1}, "validation_size must be in [0, inf)"),
    ({"image_size": [32]}, "image_size must be [H, W]"),
    ({"test_path": "t.csv"}, "test_path needs path"),
    ({"path": "a.csv", "window": 1}, "window must be >= 2 for a series"),
    ({"path": "photos", "window": 8}, "window applies to series"),
    ({"path": "rows.npy", "window": 5}, "window applies to series"),
    ({"path": "a.npz", "binarize": "dynamic"}, "binarize applies to the catalog's image datasets"),
    ({"path": "a.xlsx"}, "is neither a folder of images nor a file of .npy, .npz, .csv, .parquet, .pq"),
    ({"missing": "guess"}, "missing must be one of refuse, mean, zero, interpolate, drop"),
    ({"color_mode": "cmyk"}, "color_mode must be one of auto, grayscale, rgb"),
])
def test_bad_data_keys_are_one_line_errors(values, message):
    with pytest.raises(ValueError) as info:
        DataConfig(**values)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_folder_with_size_and_colour_has_a_known_shape():
    assert DataConfig(path="photos", image_size=[48, 64], color_mode="rgb").input_shape == (48, 64, 3)
    assert DataConfig(path="photos", image_size=[48, 64]).input_shape is None  # channels known once read
    assert DataConfig(dataset="co2").input_shape == (52, 1) and DataConfig(dataset="sunspots", window=5).input_shape == (5, 1)


def test_data_sources_by_name_or_path(tmp_path):
    (tmp_path / "t.csv").write_text("a\n1\n")
    assert data_config(str(tmp_path / "t.csv")).path == str(tmp_path / "t.csv")
    assert data_config("digits").dataset == "digits"
    assert (data_config("tfds:svhn_cropped").dataset, data_config("tfds:svhn_cropped").source) == ("svhn_cropped", "tfds")
    assert data_config("co2", ["window=26", "missing='zero'"]).window == 26
    with pytest.raises(RecipeError, match="no file or folder 'nope', and not a dataset name"):
        data_config("nope")
    recipe = load_recipe("timeseries_ae", data=str(tmp_path / "t.csv"))
    # The recipe's own source keys go, its window and missing-value rule stay.
    assert (recipe.data.path, recipe.data.dataset, recipe.data.window, recipe.data.missing) == (
        str(tmp_path / "t.csv"), "fashion_mnist", 52, "interpolate")


def test_any_tfds_image_dataset_by_name(monkeypatch):
    """TFDS by name (here SVHN, mocked: TFDS cannot download on this machine): its own shape,
    scaled to [0, 1] when loaded like the catalog's datasets."""
    sources._load_cached.cache_clear()
    with tfds.testing.mock_data(num_examples=12):
        s = load_splits(DataConfig(dataset="svhn_cropped", source="tfds", validation_size=2), seed=0)
    assert s.input_shape == (32, 32, 3) and s.source == "tfds:svhn_cropped"
    assert (len(s.x_fit), len(s.x_val), len(s.x_test)) == (10, 2, 12)
    assert 0.0 <= float(np.min(s.x_fit)) and float(np.max(s.x_fit)) <= 1.0
    sources._load_cached.cache_clear()
