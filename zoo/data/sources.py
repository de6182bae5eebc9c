"""Loading the catalog's datasets into arrays (numpy only; TensorFlow Datasets imported lazily).

Local IDX files (Debian's ``dataset-fashion-mnist`` or a given directory) are
preferred so the zoo works offline; tensorflow-datasets is the fallback.
"""

import dataclasses
import functools
import gzip
import os
import zlib
import subprocess

import numpy as np

from zoo.data.catalog import DATASETS, SOURCES

# IDX type byte -> big-endian numpy dtype (the format stores data big-endian).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# Where Debian installs IDX datasets; MNIST has no package yet, but a local
# copy in the same layout is honoured.
_DEBIAN = {
    "fashion_mnist": ("dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist"),
    "mnist": ("dataset-mnist", "/usr/share/datasets/mnist"),
}
from zoo.data.catalog import PRETTY as _PRETTY  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Arrays:
    """A dataset as in-memory arrays.

    Attributes:
        x_train: float32 images in [0, 1], shape (N, H, W, C).
        y_train: int64 labels, shape (N,).
        x_test: float32 images in [0, 1], shape (M, H, W, C).
        y_test: int64 labels, shape (M,).
        source: Origin, e.g. "idx:/usr/share/datasets/fashion-mnist" or "tfds:fashion_mnist".
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def input_shape(self) -> tuple:
        """The (H, W, C) shape of one image."""
        return tuple(self.x_train.shape[1:])


def check_finite(x, what: str) -> None:
    """Raises ValueError naming `what` (e.g. "x_train") if x holds NaN or inf."""
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.inexact) and not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{what} contains non-finite values ({bad} NaN/inf elements)")


def read_idx(path) -> np.ndarray:
    """Reads one IDX file (gzipped or plain) into a native-byte-order numpy array.

    Raises:
        ValueError: If the gzip stream is corrupt or truncated, or the magic number or the data size is invalid.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # Detect gzip by content, not by file name.
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:  # truncated, corrupt (BadGzipFile is an OSError)
            raise ValueError(f"{path}: a corrupt or truncated gzip file ({type(e).__name__}: "
                             f"{str(e) or 'unexpected end of data'}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX data has {len(raw) - header} bytes, "
                         f"dims {dims} need {expected}")
    data = np.frombuffer(raw, dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _find_idx_file(data_dir: str, split: str, kind: str) -> str:
    stem = f"{'t10k' if split == 'test' else split}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    dotted = stem.replace("-idx", ".idx")  # Some mirrors spell it with a dot.
    for name in (stem + ".gz", stem, dotted + ".gz", dotted):
        if os.path.isfile(os.path.join(data_dir, name)):
            return os.path.join(data_dir, name)
    raise FileNotFoundError(f"IDX data dir {data_dir!r} is missing {stem}[.gz]")


def _images(x: np.ndarray) -> np.ndarray:
    # Grayscale IDX images have no channel axis; models expect (H, W, C).
    if x.ndim == 3:
        x = x[..., None]
    scale = x.dtype == np.uint8
    x = x.astype(np.float32)
    if scale:
        x /= 255.0  # In place: avoids a second 188 MB temporary for 60k images.
    return x


def _load_idx(data_dir: str) -> tuple:
    parts = []
    for split in ("train", "test"):
        x = read_idx(_find_idx_file(data_dir, split, "images"))
        y = read_idx(_find_idx_file(data_dir, split, "labels"))
        if len(x) != len(y):
            raise ValueError(f"{data_dir}: {split} has {len(x)} images but {len(y)} labels")
        parts += [_images(x), y.astype(np.int64)]
    return tuple(parts)


def _debian_dir(name: str):
    """Returns the IDX dir installed by the dataset's Debian package, or None."""
    if name not in _DEBIAN:
        return None
    package, fallback = _DEBIAN[name]
    candidates = [fallback]
    try:  # Ask dpkg in case the package ever moves its files.
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True,
                                 timeout=10).stdout.split()
        candidates = [os.path.dirname(p) for p in listing if "-ubyte" in p] + candidates
    except (OSError, subprocess.SubprocessError):
        pass
    return next((c for c in candidates if os.path.isdir(c) and any(
        f.startswith(("train-images", "train-labels")) for f in os.listdir(c))), None)


def _load_tfds(name: str, data_dir) -> tuple:
    import tensorflow_datasets as tfds  # Imported lazily: it is slow and often unneeded.

    parts = []
    for split in ("train", "test"):
        # Finite batches rather than batch_size=-1, which crashes under
        # tfds.testing.mock_data (it batches by an unknown example count).
        ds = tfds.load(name, split=split, as_supervised=True, batch_size=10_000, data_dir=data_dir)
        xs, ys = zip(*tfds.as_numpy(ds))
        shapes = sorted({tuple(x.shape[1:]) for x in xs})
        if len(shapes) > 1:
            raise ValueError(f"tfds:{name}: images of several shapes ({shapes[0]}, {shapes[1]}): export them to a folder "
                             f"and read it with data.path and data.image_size")
        parts += [_images(np.concatenate(xs)), np.concatenate(ys).astype(np.int64)]
    return tuple(parts)


def _how_to_get(name: str) -> str:
    hint = f"{_PRETTY.get(name, name)} not found: "
    if name == "fashion_mnist":
        hint += "install Debian's package (apt-get install dataset-fashion-mnist), "
    if name in _DEBIAN:  # Only the MNIST family ships as IDX files.
        hint += "pass data.data_dir=<dir with the IDX files>, or "
    return hint + f"let tensorflow-datasets download '{name}' (needs internet)"


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, data_dir, source: str) -> Arrays:
    idx_dir = data_dir if source in ("auto", "idx") and data_dir else None
    if idx_dir is None and source in ("auto", "idx"):
        idx_dir = _debian_dir(name)
    if idx_dir is not None:
        parts, origin = _load_idx(idx_dir), f"idx:{idx_dir}"
    elif source == "idx":
        raise FileNotFoundError(_how_to_get(name))
    else:
        try:
            parts, origin = _load_tfds(name, data_dir), f"tfds:{name}"
        except Exception as err:  # Any download/build failure means "not available here".
            detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            raise FileNotFoundError(f"{_how_to_get(name)} [tensorflow-datasets: "
                                    f"{type(err).__name__}: {detail}]") from None
    for what, arr in zip(("x_train", "y_train", "x_test", "y_test"), parts):
        check_finite(arr, what)
        # The cache hands the same arrays to every caller; read-only stops one
        # caller's in-place edit from corrupting everybody else's data.
        arr.flags.writeable = False
    return Arrays(*parts, source=origin)


def load_arrays(name: str = "fashion_mnist", data_dir=None, source: str = "auto") -> Arrays:
    """Loads a dataset as float32 images in [0, 1] and int64 labels.

    Args:
        name: One of DATASETS, or with source "tfds" any TensorFlow Datasets image dataset
            (its examples must share one shape).
        data_dir: Directory with the IDX files (source "auto"/"idx"), or the
            tensorflow-datasets data dir (source "tfds").
        source: "auto" (data_dir, then Debian's package, then TFDS), "idx" or "tfds".

    Returns:
        The dataset's Arrays; cached in-process, and read-only because shared.

    Raises:
        ValueError: On an unknown name/source, bad IDX files or non-finite data.
        FileNotFoundError: If data_dir lacks a file or the data can't be found.
    """
    if name not in DATASETS and source != "tfds":
        raise ValueError(f"Unknown dataset {name!r}. Known: {', '.join(sorted(DATASETS))}")
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}. Allowed: {', '.join(SOURCES)}")
    return _load_cached(name, os.fspath(data_dir) if data_dir is not None else None, source)


def binarize_static(x: np.ndarray, seed: int) -> np.ndarray:
    """Samples float32 0/1 pixels once with P(1) = intensity x, seeded by `seed`."""
    rng = np.random.default_rng(seed)
    return (rng.random(np.shape(x)) < x).astype(np.float32)


