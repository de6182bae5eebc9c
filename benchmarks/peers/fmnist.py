"""Fashion-MNIST for the peers, read straight from its IDX files, with numpy only.

The files are the four `*-idx?-ubyte.gz` of Debian's `dataset-fashion-mnist` package
(`apt-get install dataset-fashion-mnist`; `dpkg -L dataset-fashion-mnist` lists them), or of any
directory named by the environment variable FMNIST_DIR (gzipped or not).

    import fmnist
    x_train, y_train, x_test, y_test = fmnist.load()   # x: float32 (N, 28, 28) in [0, 1]
    x_bin = fmnist.binarize_once(x_test, seed=0)       # the peers' fixed test binarization
"""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

import numpy as np

PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
# IDX type codes (the third byte of the magic number) this reader understands.
_IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def data_dir() -> Path:
    """The directory holding the IDX files: FMNIST_DIR, else where dpkg put the Debian package."""
    if os.environ.get("FMNIST_DIR"):
        return Path(os.environ["FMNIST_DIR"])
    try:
        listed = subprocess.run(["dpkg", "-L", PACKAGE], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:  # not a Debian system
        listed = ""
    for line in listed.splitlines():
        if line.strip().endswith("train-images-idx3-ubyte.gz"):
            return Path(line.strip()).parent
    if (DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file():
        return DEBIAN_DIR
    raise FileNotFoundError(f"Fashion-MNIST IDX files not found: apt-get install {PACKAGE}, "
                            "or point FMNIST_DIR at a directory holding them")


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped if its name ends in .gz) as an array of its own shape and type."""
    raw = (gzip.open if str(path).endswith(".gz") else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (magic bytes {raw[:4]!r})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(shape))
    if len(raw) != header + count * dtype.itemsize:
        raise ValueError(f"{path}: {len(raw) - header} data bytes for shape {shape} of {dtype}")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"no {stem}[.gz] in {root}")


def load(root: Path | str | None = None):
    """(x_train, y_train, x_test, y_test): x float32 (N, 28, 28) intensities in [0, 1], y int64."""
    root = Path(root) if root else data_dir()
    out = []
    for split, n in (("train", 60000), ("t10k", 10000)):
        images = read_idx(_find(root, f"{split}-images-idx3-ubyte"))
        labels = read_idx(_find(root, f"{split}-labels-idx1-ubyte"))
        if images.shape != (n, 28, 28) or labels.shape != (n,):
            raise ValueError(f"{split}: images {images.shape}, labels {labels.shape}; expected ({n}, 28, 28), ({n},)")
        x = images.astype(np.float32)
        x /= 255.0
        out += [x, labels.astype(np.int64)]
    return tuple(out)


def binarize_once(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Fixed 0/1 images, pixel on with probability = intensity; numpy `default_rng(seed)`.

    Draws one uniform per pixel in C order, so any reshaping of the same images (N, 784) or
    (N, 28, 28, 1) gives the same pixels (and the same ones as `benchmarks/nll.py
    --test-binarization-seed`).
    """
    return (np.random.default_rng(seed).random(np.shape(x)) < x).astype(np.float32)
