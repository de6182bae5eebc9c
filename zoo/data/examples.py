"""What every data source hands on: the examples in their raw units, labels, and what they are.

A source reader (`zoo.data.folders`, `zoo.data.arrays`, `zoo.data.tables`) returns a `Loaded`;
`zoo.data.splits` cuts it into fit, validation and test splits and derives the preprocessing the
model carries (`zoo.layers.preprocessing`). No TensorFlow here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: What the examples are: images (H, W, C), table rows (F,) or windows of a series (T, C).
KINDS = ("images", "table", "series")


class DataError(ValueError):
    """Data that cannot be used; the message is one line naming the file (and row, column)."""


@dataclasses.dataclass(frozen=True)
class Loaded:
    """The examples of one source, before the split.

    Attributes:
        x: the examples in their raw units: an array (N, *shape), or a streamed
            `zoo.data.folders.ImageFiles` (which has len, slicing and `.load()`).
        y: int64 labels (N,), or None.
        x_test, y_test: the source's own test split (a test/ folder, `data.test_path`, the end of a
            series), or None: the split module then holds out a seeded fraction.
        kind: one of KINDS.
        source: where they came from, for reports, e.g. "folder:photos (1,200 files, 3 classes)".
        class_names: label index -> name, when labels have names (class folders, a string column).
        feature_names: column names of a table or series.
        label_name: a table's label column ("" = none).
        scaled: True when the values are already in [0, 1] (no scaling in the model needed).
        value_range: the largest value an image's pixel can take in raw units (255 for 8-bit
            files; 16 for scikit-learn's digits): images that are not `scaled` are scaled by
            1/value_range inside the model.
    """

    x: object
    y: np.ndarray | None
    kind: str
    source: str
    x_test: object = None
    y_test: np.ndarray | None = None
    class_names: tuple = ()
    feature_names: tuple = ()
    label_name: str = ""
    scaled: bool = False
    value_range: float = 255.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Unknown kind {self.kind!r}. Allowed: {', '.join(KINDS)}")

    @property
    def input_shape(self) -> tuple:
        """The shape of one example."""
        return tuple(int(d) for d in self.x.shape[1:])


def check_file(path: str, suffixes, what: str) -> str:
    """The file's lower-case suffix, after checking it is one of `suffixes` and an existing file.

    Raises:
        DataError: "<path>: unknown <what> file suffix ...", "no such file" or "not a file".
    """
    import os

    suffix = os.path.splitext(path)[1].lower()
    if suffix not in suffixes:
        raise DataError(f"{path}: unknown {what} file suffix {suffix or '(none)'!r}; allowed: {', '.join(suffixes)}")
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise DataError(f"{path}: not a file")
    return suffix


def take(x, index):
    """Rows `index` (an integer array or a slice) of an array or an `ImageFiles`."""
    return x[index]


def materialize(x) -> np.ndarray:
    """The examples as one float32 array (an `ImageFiles` is read from its files)."""
    return np.asarray(x.load() if hasattr(x, "load") else x, dtype=np.float32)
