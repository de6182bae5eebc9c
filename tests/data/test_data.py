"""Tests for zoo.data.catalog: IDX parsing, dataset loading and tf.data pipelines."""

import gzip
import struct

import numpy as np
import pytest
import tensorflow_datasets as tfds

import zoo.data.pipeline as pipeline
import zoo.data.sources as data

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def write_idx(path, arr, type_code=0x08, compress=False):
    """Writes arr as an IDX file: 2 zero bytes, type, ndim, big-endian dims, data."""
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    raw = bytes([0, 0, type_code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw += np.asarray(arr, dtype).tobytes()
    (gzip.open if compress else open)(path, "wb").write(raw)
    return path


def write_idx_dir(root, n_train=6, n_test=4, images=None, type_code=0x08):
    """Creates a tiny IDX dataset dir with 5x5 images; returns the arrays written."""
    rng = np.random.default_rng(0)
    arrays = {
        STEMS[0]: rng.integers(0, 256, (n_train, 5, 5)) if images is None else images[0],
        STEMS[1]: rng.integers(0, 10, n_train),
        STEMS[2]: rng.integers(0, 256, (n_test, 5, 5)) if images is None else images[1],
        STEMS[3]: rng.integers(0, 10, n_test),
    }
    for i, (stem, arr) in enumerate(arrays.items()):
        # Mix gzipped and plain files: the loader must accept both.
        code = type_code if "images" in stem else 0x08
        write_idx(root / (stem + (".gz" if i % 2 else "")), arr, code, compress=bool(i % 2))
    return arrays


@pytest.fixture
def clean_cache():
    """Keeps mocked or temporary loads out of the in-process cache of other tests."""
    data._load_cached.cache_clear()
    yield
    data._load_cached.cache_clear()


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("type_code,arr", [
    (0x08, np.arange(24, dtype=np.uint8).reshape(2, 3, 4)),
    (0x0C, np.array([-5, 0, 70000], dtype=np.int32)),
    (0x0D, np.array([[0.5, -1.25]], dtype=np.float32)),
])
def test_read_idx_round_trip(tmp_path, compress, type_code, arr):
    out = data.read_idx(write_idx(tmp_path / "f.idx", arr, type_code, compress))
    assert out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    assert out.dtype.isnative


def test_read_idx_rejects_bad_magic_and_size(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x07")
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(tmp_path / "bad")
    good = write_idx(tmp_path / "short", np.zeros((2, 2), np.uint8))
    good.write_bytes(good.read_bytes()[:-1])
    with pytest.raises(ValueError, match="bytes"):
        data.read_idx(good)


def test_load_from_data_dir(tmp_path, clean_cache):
    written = write_idx_dir(tmp_path)
    arrays = data.load_arrays("mnist", data_dir=tmp_path)
    assert arrays.source == f"idx:{tmp_path}"
    assert arrays.x_train.shape == (6, 5, 5, 1) and arrays.x_test.shape == (4, 5, 5, 1)
    assert arrays.input_shape == (5, 5, 1)
    assert arrays.x_train.dtype == np.float32 and arrays.y_train.dtype == np.int64
    np.testing.assert_allclose(arrays.x_train[..., 0], written[STEMS[0]] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(arrays.y_test, written[STEMS[3]])
    with pytest.raises(ValueError):  # Cached arrays are shared, so read-only.
        arrays.x_train[0, 0, 0, 0] = 1.0


def test_data_dir_missing_file(tmp_path, clean_cache):
    write_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte") as info:
        data.load_arrays("fashion_mnist", data_dir=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_non_finite_split_is_named(tmp_path, clean_cache):
    test_images = np.full((4, 5, 5), 0.5, np.float32)
    test_images[1, 2, 3] = np.nan
    write_idx_dir(tmp_path, images=(np.zeros((6, 5, 5)), test_images), type_code=0x0D)
    with pytest.raises(ValueError, match="x_test contains non-finite"):
        data.load_arrays("mnist", data_dir=tmp_path)


def test_real_fashion_mnist():
    arrays = data.load_arrays("fashion_mnist")
    assert arrays.source.startswith("idx:")
    assert arrays.x_train.shape == (60000, 28, 28, 1) and arrays.x_test.shape == (10000, 28, 28, 1)
    assert arrays.y_train.shape == (60000,) and arrays.y_test.shape == (10000,)
    assert arrays.x_train.min() >= 0.0 and arrays.x_train.max() <= 1.0
    assert set(np.unique(arrays.y_train)) == set(range(10))
    assert data.load_arrays("fashion_mnist") is arrays  # Cached in-process.


@pytest.mark.parametrize("name,shape", [("fashion_mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_tfds_source_with_mock(name, shape, clean_cache):
    with tfds.testing.mock_data(num_examples=5):
        arrays = data.load_arrays(name, source="tfds")
    assert arrays.source == f"tfds:{name}"
    assert arrays.input_shape == shape
    assert arrays.x_train.shape == (5, *shape) and arrays.y_test.shape == (5,)
    assert arrays.x_train.dtype == np.float32 and arrays.y_train.dtype == np.int64
    assert 0.0 <= arrays.x_test.min() and arrays.x_test.max() <= 1.0


def test_tfds_failure_says_how_to_get_data(monkeypatch, clean_cache):
    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve host\nlong traceback text")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(FileNotFoundError) as info:
        data.load_arrays("fashion_mnist", source="tfds")
    msg = str(info.value)
    assert msg.startswith("Fashion-MNIST not found") and "\n" not in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "needs internet" in msg
    assert "ConnectionError" in msg and info.value.__cause__ is None
    # "auto" falls back to TFDS when no local copy exists.
    monkeypatch.setattr(data, "_debian_dir", lambda name: None)
    with pytest.raises(FileNotFoundError, match="^MNIST not found.*download 'mnist'"):
        data.load_arrays("mnist")
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found"):
        data.load_arrays("cifar10", source="idx")


def test_unknown_arguments():
    known = r"^Unknown dataset 'foo'\. Known: cifar10, fashion_mnist, mnist$"
    with pytest.raises(ValueError, match=known):
        data.load_arrays("foo")
    with pytest.raises(ValueError, match="Unknown source 'web'.*auto, idx, tfds"):
        data.load_arrays("mnist", source="web")
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="Unknown binarize 'soft'.*none, static, dynamic"):
        pipeline.make_dataset(x, batch_size=2, binarize="soft")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            pipeline.make_dataset(x, batch_size=bad)


def epochs(ds, n=2):
    return [np.concatenate([b.numpy() for b in ds]) for _ in range(n)]


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(1).random((600, 8, 8, 1), dtype=np.float32)


def test_no_shuffle_keeps_order(x):
    ds = pipeline.make_dataset(x, batch_size=64, shuffle=False)
    batches = [b.numpy() for b in ds]
    assert [len(b) for b in batches] == [64] * 9 + [24]
    np.testing.assert_array_equal(np.concatenate(batches), x)
    assert len(list(pipeline.make_dataset(x, batch_size=64, drop_remainder=True))) == 9


def test_shuffle_is_deterministic_and_reshuffles(x):
    a1, a2 = epochs(pipeline.make_dataset(x, batch_size=64, seed=7))
    b1, b2 = epochs(pipeline.make_dataset(x, batch_size=64, seed=7))
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)
    np.testing.assert_array_equal(np.sort(a1, axis=0), np.sort(x, axis=0))  # A permutation.
    c1, _ = epochs(pipeline.make_dataset(x, batch_size=64, seed=8))
    assert not np.array_equal(a1, c1)


def test_repeated_shuffle_makes_each_pass_a_new_permutation(x):
    batches = [b.numpy() for b in pipeline.make_dataset(x, batch_size=100, seed=7, repeat=True).take(12)]
    assert [len(b) for b in batches] == [100] * 12
    passes = [np.concatenate(batches[:6]), np.concatenate(batches[6:])]
    for one_pass in passes:  # every example exactly once per pass
        np.testing.assert_array_equal(np.sort(one_pass.reshape(600, -1), axis=0), np.sort(x.reshape(600, -1), axis=0))
    assert not np.array_equal(passes[0], passes[1])
    dropped = [b.numpy() for b in pipeline.make_dataset(x, batch_size=64, seed=7, drop_remainder=True)]
    assert [len(b) for b in dropped] == [64] * 9
    assert len(np.unique(np.concatenate(dropped).reshape(576, -1), axis=0)) == 576  # no example twice


@pytest.mark.parametrize("binarize", ["none", "dynamic"])
def test_pipeline_runs_without_autotuning(x, binarize):
    # tf.data's autotuning stalled epoch starts by seconds on the project machine (docs/performance.md).
    for shuffle in (True, False):
        ds = pipeline.make_dataset(x, batch_size=64, shuffle=shuffle, binarize=binarize)
        assert ds.options().autotune.enabled is False
        assert sum(len(b) for b in ds) == len(x)


def test_dynamic_binarization(x):
    a1, a2 = epochs(pipeline.make_dataset(x, batch_size=64, shuffle=False, binarize="dynamic", seed=3))
    b1, b2 = epochs(pipeline.make_dataset(x, batch_size=64, shuffle=False, binarize="dynamic", seed=3))
    assert set(np.unique(a1)) == {0.0, 1.0} and a1.dtype == np.float32
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # Resampled every epoch...
    assert not np.array_equal(a1[:64], a1[64:128])  # ...and every batch.
    assert abs(a1.mean() - x.mean()) < 0.01 and abs(a2.mean() - x.mean()) < 0.01
    # With repeat the stream keeps resampling across epochs.
    rep = [b.numpy() for b in pipeline.make_dataset(x, batch_size=600, shuffle=False,
                                                binarize="dynamic", seed=3, repeat=True).take(2)]
    assert not np.array_equal(rep[0], rep[1])


def test_static_binarization(x):
    s = data.binarize_static(x, seed=5)
    assert s.dtype == np.float32 and set(np.unique(s)) == {0.0, 1.0}
    np.testing.assert_array_equal(s, data.binarize_static(x, seed=5))
    assert abs(s.mean() - x.mean()) < 0.01
    e1, e2 = epochs(pipeline.make_dataset(x, batch_size=64, shuffle=False, binarize="static", seed=5))
    np.testing.assert_array_equal(e1, s)
    np.testing.assert_array_equal(e2, s)


def test_check_finite():
    data.check_finite(np.zeros(3, np.float32), "x")
    data.check_finite(np.arange(3), "labels")  # Integers are always finite.
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="^x_val contains non-finite"):
            data.check_finite(np.array([0.0, bad]), "x_val")
