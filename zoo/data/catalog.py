"""The dataset catalog: the built-in datasets, the kinds of own data, their shapes (no TensorFlow).

Checking a recipe needs only these facts; loading the examples is `zoo.data.sources` (the
image datasets), `zoo.data.bundled` (small real datasets inside scikit-learn and statsmodels)
and the readers of own data (`zoo.data.folders`, `zoo.data.arrays`, `zoo.data.tables`).
"""

from __future__ import annotations

import os

#: The image datasets of the catalog, served in [0, 1] (pixels scaled when loaded).
DATASETS = ("fashion_mnist", "mnist", "cifar10")
BINARIZATIONS = ("none", "static", "dynamic")
SOURCES = ("auto", "idx", "tfds")
PRETTY = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10", "digits": "digits (8×8)",
          "breast_cancer": "breast cancer (Wisconsin)", "sunspots": "sunspots (yearly)", "co2": "CO2 (Mauna Loa, weekly)"}
SHAPES = {"fashion_mnist": (28, 28, 1), "mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
TRAIN_SIZES = {"fashion_mnist": 60_000, "mnist": 60_000, "cifar10": 50_000}
TEST_SIZES = {"fashion_mnist": 10_000, "mnist": 10_000, "cifar10": 10_000}
#: Validation examples held out of the catalog's image datasets when validation_size = "auto".
CATALOG_VALIDATION = 5000
#: The fraction held out of every other source when validation_size = "auto".
AUTO_VALIDATION_FRACTION = 0.1

#: Small real datasets shipped inside installed packages: name -> kind (`zoo.data.bundled`).
BUNDLED = {"digits": "images", "breast_cancer": "table", "sunspots": "series", "co2": "series"}
#: Their per-example shapes; a series' first axis is the recipe's window.
BUNDLED_SHAPES = {"digits": (8, 8, 1), "breast_cancer": (30,), "sunspots": (None, 1), "co2": (None, 1)}

#: The window of a bundled series when the recipe sets none (`data.window = 0`).
DEFAULT_WINDOWS = {"sunspots": 11, "co2": 52}

#: Formats of own data (`data.path`); "auto" decides by the path.
FORMATS = ("auto", "images", "arrays", "table", "series")
COLOR_MODES = ("auto", "grayscale", "rgb")
MISSING = ("refuse", "mean", "zero", "interpolate", "drop")
ARRAY_SUFFIXES = (".npy", ".npz")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def resolve_format(path: str, fmt: str = "auto", window: int = 0) -> str:
    """The format of own data at `path`: a folder is "images", .npy/.npz "arrays", .csv/.parquet
    "series" when a window is set and "table" otherwise; an explicit `fmt` is kept.

    Raises:
        ValueError: `fmt` unknown, or "auto" and a path of none of these kinds.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}. Received: format={fmt!r}")
    if fmt != "auto":
        return fmt
    suffix = os.path.splitext(path)[1].lower()
    if os.path.isdir(path) or not suffix:
        return "images"
    if suffix in ARRAY_SUFFIXES:
        return "arrays"
    if suffix in TABLE_SUFFIXES:
        return "series" if window else "table"
    raise ValueError(f"path {path!r} is neither a folder of images nor a file of "
                     f"{', '.join(ARRAY_SUFFIXES + TABLE_SUFFIXES)}: give the file one of these suffixes")


def kind_of(dataset: str, path: str = "", fmt: str = "auto", window: int = 0) -> str:
    """What a data table's examples are: "images", "table", "series", or "arrays" (an .npy/.npz,
    whose kind its shape decides when read)."""
    if path:
        return resolve_format(path, fmt, window)
    return BUNDLED.get(dataset, "images")


def known_shape(dataset: str, path: str = "", window: int = 0, image_size=(), color_mode: str = "auto"):
    """The per-example shape when the recipe alone determines it, else None (own data is read first):
    a folder of images with both `image_size` and a `color_mode` set has it."""
    if path:
        if image_size and color_mode in ("grayscale", "rgb") and resolve_format(path, "auto", window) == "images":
            return (*image_size, 1 if color_mode == "grayscale" else 3)
        return None
    if dataset in SHAPES:
        return SHAPES[dataset]
    if dataset in BUNDLED_SHAPES:
        shape = BUNDLED_SHAPES[dataset]
        return (window or DEFAULT_WINDOWS[dataset], *shape[1:]) if shape[0] is None else shape
    return None
