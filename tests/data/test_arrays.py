"""Tests for zoo.data.arrays: .npy / .npz examples, labels, kinds and the errors that name the file."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import data_error

from zoo.data.arrays import read_arrays
from zoo.data.examples import DataError


def fails(match, *args, **kwargs):
    """The one-line DataError message of read_arrays(*args, **kwargs), checked against `match`."""
    return data_error(read_arrays, match, *args, **kwargs)


def test_npy_rows_are_a_table_in_float32_raw_units(here):
    x = np.array([[1, 2, 3], [40, 50, 60]], dtype=np.int16)
    np.save("x.npy", x)
    loaded = read_arrays("x.npy")
    assert loaded.kind == "table"
    assert loaded.x.dtype == np.float32
    np.testing.assert_array_equal(loaded.x, [[1, 2, 3], [40, 50, 60]])
    assert loaded.y is None and loaded.x_test is None
    assert loaded.scaled is False
    assert loaded.source == "npy:x.npy (2 examples of 3 features)"


def test_uint8_matrices_are_images_with_a_channel_axis_and_raw_units(here):
    x = np.array([[[0, 255], [7, 128]]] * 3, dtype=np.uint8)  # (3, 2, 2)
    np.savez("d.npz", x=x, y=np.array([0, 1, 1]))
    loaded = read_arrays("d.npz")
    assert loaded.kind == "images"
    assert loaded.x.shape == (3, 2, 2, 1)
    assert loaded.x[0, 0, 1, 0] == 255.0  # Not divided: the model scales.
    assert loaded.scaled is False
    assert loaded.y.dtype == np.int64
    np.testing.assert_array_equal(loaded.y, [0, 1, 1])
    assert loaded.source == "npz:d.npz (3 examples of 2×2×1, 2 classes)"


def test_float_matrices_are_series_windows(here):
    x = np.arange(24, dtype=np.float64).reshape(2, 4, 3)  # 2 windows of 4 steps × 3 channels
    np.save("w.npy", x)
    loaded = read_arrays("w.npy")
    assert loaded.kind == "series"
    assert loaded.x.shape == (2, 4, 3)
    np.testing.assert_array_equal(loaded.x[1, :, 0], [12, 15, 18, 21])
    assert loaded.source == "npy:w.npy (2 windows of 4×3)"


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_float_images_in_unit_range_are_scaled(here, channels):
    x = np.linspace(0, 1, 2 * 5 * 5 * channels).reshape(2, 5, 5, channels)
    np.save("im.npy", x)
    loaded = read_arrays("im.npy")
    assert loaded.kind == "images" and loaded.input_shape == (5, 5, channels)
    assert loaded.scaled is True


def test_uint8_images_are_never_scaled_even_if_all_zero_or_one(here):
    np.save("mask.npy", np.eye(4, dtype=np.uint8)[None].repeat(3, axis=0))
    loaded = read_arrays("mask.npy")
    assert loaded.kind == "images" and loaded.x.max() == 1.0
    assert loaded.scaled is False


def test_float_images_beyond_one_are_not_scaled(here):
    x = np.zeros((2, 4, 4, 3))
    x[1, 2, 2, 0] = 1.5
    np.save("im.npy", x)
    assert read_arrays("im.npy").scaled is False
    np.save("im.npy", x - 2.0)  # Negative values are not in [0, 1] either.
    assert read_arrays("im.npy").scaled is False


def test_images_with_other_channel_counts_are_refused(here):
    np.save("im.npy", np.zeros((2, 4, 4, 5), np.float32))
    message = fails(r"im\.npy", "im.npy")
    assert "5 channels" in message and "1, 3 or 4" in message


@pytest.mark.parametrize("shape", [(4,), (2, 3, 3, 3, 1)])
def test_shapes_of_rank_0_or_above_3_are_refused(here, shape):
    np.save("x.npy", np.zeros(shape, np.float32))
    message = fails(r"^x\.npy: examples have shape", "x.npy")
    assert "allowed" in message and "(H, W, C)" in message


def test_a_scalar_is_refused(here):
    np.save("x.npy", np.float32(3.0))
    fails(r"^x\.npy holds a single value", "x.npy")


def test_zero_examples_are_refused(here):
    np.save("x.npy", np.zeros((0, 3), np.float32))
    assert fails("0 examples", "x.npy") == "x.npy holds 0 examples"


def test_string_examples_are_refused(here):
    np.save("x.npy", np.array([["a", "b"]]))
    fails(r"^x\.npy: examples must be numbers", "x.npy")


def test_pickled_arrays_are_refused(here):
    np.save("o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    fails(r"^o\.npy holds a pickled \(object\) array", "o.npy")
    np.savez("o.npz", x=np.array([[1, 2]], dtype=object))
    fails(r"^o\.npz holds a pickled \(object\) array", "o.npz")


def test_unknown_suffix_lists_the_allowed_ones(here):
    (here / "x.txt").write_text("1 2 3")
    assert fails("allowed", "x.txt") == "x.txt: unknown array file suffix '.txt'; allowed: .npy, .npz"


def test_a_missing_file_is_a_data_error_naming_it(here):
    with pytest.raises(DataError) as info:
        read_arrays("nowhere/x.npz")
    assert not isinstance(info.value, FileNotFoundError)
    assert str(info.value) == "nowhere/x.npz: no such file"


@pytest.mark.parametrize("name", ["bad.npy", "bad.npz"])
def test_corrupt_files_are_data_errors_naming_them(here, name):
    (here / name).write_bytes(b"\x93NUMPY garbage" if name.endswith("npy") else b"PK\x03\x04 garbage")
    fails(rf"^{name.replace('.', '[.]')}: cannot read \(", name)


def test_a_truncated_npy_is_a_data_error(here):
    np.save("x.npy", np.arange(100, dtype=np.float64).reshape(10, 10))
    raw = (here / "x.npy").read_bytes()
    (here / "x.npy").write_bytes(raw[: len(raw) // 2])
    fails(r"^x\.npy: cannot read", "x.npy")


def test_npz_with_several_arrays_needs_x_key(here):
    np.savez("data.npz", a=np.zeros((2, 3)), b=np.ones((2, 3)), c=np.ones((2, 3)))
    assert fails("x_key", "data.npz") == "data.npz holds arrays a, b, c: set data.x_key to one of them"
    loaded = read_arrays("data.npz", x_key="b")
    np.testing.assert_array_equal(loaded.x, np.ones((2, 3)))
    assert fails("no array", "data.npz", x_key="z") == "data.npz has no array 'z'; its arrays: a, b, c"


def test_npz_examples_default_to_x_then_the_only_array_besides_labels(here):
    np.savez("a.npz", x=np.full((2, 3), 7.0), other=np.zeros((2, 3)))
    assert read_arrays("a.npz").x[0, 0] == 7.0
    np.savez("b.npz", features=np.full((2, 3), 5.0))
    assert read_arrays("b.npz").x[1, 2] == 5.0
    np.savez("c.npz", features=np.full((2, 3), 4.0), labels=np.array([3, 1]))
    loaded = read_arrays("c.npz")
    assert loaded.x[0, 0] == 4.0
    np.testing.assert_array_equal(loaded.y, [3, 1])


def test_empty_npz_is_refused(here):
    np.savez("e.npz")
    assert fails("no arrays", "e.npz") == "e.npz holds no arrays"


def test_labels_may_name_an_npz_array(here):
    np.savez("d.npz", x=np.zeros((3, 2)), y=np.array([9, 9, 9]), target=np.array([2, 0, 1]))
    np.testing.assert_array_equal(read_arrays("d.npz").y, [9, 9, 9])  # "y" by default
    np.testing.assert_array_equal(read_arrays("d.npz", labels="target").y, [2, 0, 1])


def test_labels_may_be_a_npy_file_at_a_relative_path(here):
    (here / "lab").mkdir()
    np.save("x.npy", np.zeros((3, 2)))
    np.save("lab/y.npy", np.array([1, 0, 1], dtype=np.uint8))
    loaded = read_arrays("x.npy", labels="lab/y.npy")
    assert loaded.y.dtype == np.int64
    np.testing.assert_array_equal(loaded.y, [1, 0, 1])
    assert "2 classes" in loaded.source


def test_missing_labels_file_or_key_is_named(here):
    np.save("x.npy", np.zeros((3, 2)))
    assert fails("no such file", "x.npy", labels="y.npy") == "y.npy: no such file (data.labels)"
    fails(r"^x\.npy: data\.labels = 'target' must name a \.npy file", "x.npy", labels="target")
    np.savez("d.npz", x=np.zeros((3, 2)))
    assert fails("no array", "d.npz", labels="target") == (
        "d.npz has no array 'target' (data.labels); its arrays: x; or name a .npy file")


def test_string_labels_become_sorted_codes_with_class_names(here):
    np.savez("d.npz", x=np.zeros((4, 2)), y=np.array(["cat", "ant", "cat", "bee"]))
    loaded = read_arrays("d.npz")
    assert loaded.class_names == ("ant", "bee", "cat")
    np.testing.assert_array_equal(loaded.y, [2, 0, 2, 1])
    assert loaded.y.dtype == np.int64


def test_integral_float_labels_are_kept_as_int64(here):
    np.savez("d.npz", x=np.zeros((3, 2)), y=np.array([2.0, 0.0, 5.0]))
    loaded = read_arrays("d.npz")
    assert loaded.y.dtype == np.int64
    np.testing.assert_array_equal(loaded.y, [2, 0, 5])


@pytest.mark.parametrize("bad", [0.5, np.nan])
def test_non_integral_float_labels_are_refused(here, bad):
    np.savez("d.npz", x=np.zeros((3, 2)), y=np.array([2.0, bad, 5.0]))
    message = fails("not an integer class", "d.npz")
    assert message.startswith("d.npz: array 'y': label of example 1 is ")


def test_labels_must_be_one_dimensional(here):
    np.savez("d.npz", x=np.zeros((3, 2)), y=np.zeros((3, 2), np.int64))
    fails(r"^d\.npz: array 'y': labels must be 1-D .*\(3, 2\)", "d.npz")


def test_label_count_must_match_examples(here):
    np.save("x.npy", np.zeros((100, 4)))
    np.save("labels.npy", np.zeros(99, np.int64))
    assert fails("99 labels", "x.npy", labels="labels.npy") == (
        "labels.npy has 99 labels but x.npy has 100 examples")


def test_non_finite_values_name_the_first_bad_example(here):
    x = np.zeros((30, 4))
    x[17, 2] = np.nan
    x[20, 0] = np.inf
    np.save("x.npy", x)
    assert fails("NaN", "x.npy") == "x.npy: example 17 holds NaN or inf"


def test_values_overflowing_float32_are_refused(here):
    x = np.zeros((3, 4))
    x[2, 1] = 1e300  # Finite as float64, inf as float32.
    np.save("x.npy", x)
    assert fails("NaN", "x.npy") == "x.npy: example 2 holds NaN or inf"


def test_test_path_is_read_the_same_way(here):
    np.savez("train.npz", x=np.zeros((4, 3, 3), np.uint8), y=np.array(["b", "a", "b", "c"]))
    np.savez("test.npz", x=np.full((2, 3, 3), 9, np.uint8), y=np.array(["c", "a"]))
    loaded = read_arrays("train.npz", test_path="test.npz")
    assert loaded.x_test.shape == (2, 3, 3, 1) and loaded.x_test.dtype == np.float32
    assert loaded.x_test.max() == 9.0
    np.testing.assert_array_equal(loaded.y_test, [2, 0])  # Coded by the training names a, b, c.
    assert loaded.source == "npz:train.npz (4 examples of 3×3×1, 3 classes; test npz:test.npz, 2)"


def test_test_path_without_labels_gives_no_test_labels(here):
    np.savez("train.npz", x=np.zeros((4, 3)), y=np.array([0, 1, 0, 1]))
    np.save("test.npy", np.ones((2, 3)))
    loaded = read_arrays("train.npz", test_path="test.npy")
    assert loaded.y_test is None
    np.testing.assert_array_equal(loaded.x_test, np.ones((2, 3)))


def test_test_shape_must_match(here):
    np.save("train.npy", np.zeros((4, 8, 8), np.uint8))
    np.save("test.npy", np.zeros((2, 8, 9), np.uint8))
    assert fails("shape", "train.npy", test_path="test.npy") == (
        "test.npy: examples have shape (8, 9) but train.npy has (8, 8)")


def test_test_labels_must_be_known_training_labels(here):
    np.savez("train.npz", x=np.zeros((2, 3)), y=np.array(["a", "b"]))
    np.savez("test.npz", x=np.zeros((2, 3)), y=np.array(["a", "z"]))
    fails(r"^test\.npz: array 'y': label 'z' of example 1 is not among the training labels a, b",
          "train.npz", test_path="test.npz")


def test_test_values_are_checked(here):
    np.save("train.npy", np.zeros((4, 3)))
    bad = np.zeros((2, 3))
    bad[1, 1] = np.nan
    np.save("test.npy", bad)
    assert fails("NaN", "train.npy", test_path="test.npy") == "test.npy: example 1 holds NaN or inf"
    fails(r"^gone\.npy: no such file", "train.npy", test_path="gone.npy")


def test_scaled_needs_the_test_images_in_unit_range_too(here):
    np.save("train.npy", np.full((2, 4, 4, 1), 0.5))
    np.save("test.npy", np.full((2, 4, 4, 1), 2.0))
    assert read_arrays("train.npy").scaled is True
    assert read_arrays("train.npy", test_path="test.npy").scaled is False


def test_digits_as_uint8_images(here):
    """scikit-learn's bundled 8×8 digits (values 0..16), saved as an npz of uint8 images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez("digits.npz", x=digits.images.astype(np.uint8), y=digits.target)
    loaded = read_arrays("digits.npz")
    assert loaded.kind == "images"
    assert loaded.input_shape == (8, 8, 1)
    assert len(loaded.x) == 1797
    assert len(np.unique(loaded.y)) == 10 and loaded.y.dtype == np.int64
    assert loaded.x.max() == 16.0 and loaded.scaled is False  # raw units kept
    np.testing.assert_array_equal(loaded.x[5, :, :, 0], digits.images[5])
    assert loaded.source == "npz:digits.npz (1,797 examples of 8×8×1, 10 classes)"


def test_the_readers_import_neither_tensorflow_nor_keras_nor_pandas():
    code = ("import sys, zoo.data.arrays, zoo.data.tables; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
