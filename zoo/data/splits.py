"""A recipe's splits: fit, validation and test examples, and the preprocessing the model carries.

`load_splits(data, seed)` reads the `[data]` table's source (`read_source`), then:

- test: the source's own test split (the catalog's, a test/ folder, `data.test_path`, the last
  rows of a series), else a seeded fraction `data.test_fraction` of the examples;
- validation: `data.validation_size` examples of the training split (a count, a fraction, or
  "auto": 5000 for the catalog's image datasets, 10% otherwise). The catalog's datasets hold out
  their last examples, as before; own data holds out a seeded random subset (folders list their
  files class by class, so the last ones would be one class), a series its last windows;
- preprocessing (`zoo.layers.preprocessing`): none for data already in [0, 1]; scale = 1/255
  (1/value_range) for raw images; standardize for tables and series, with the mean and variance
  of each feature/channel over the fit split (the statistics Keras's `Normalization.adapt` would
  compute; a constant feature gets variance 1 so that it maps to 0 without dividing by 0);
- binarization (the catalog's image datasets) as before: with "static" the training set is
  sampled once with `seed` and the test set with seed + 1; with "dynamic" only the test set
  (seed + 1) and the validation set (seed + 2) are sampled once, while the pipeline resamples
  training batches.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from zoo.data import catalog
from zoo.data.examples import DataError, Loaded, materialize
from zoo.data.sources import binarize_static, check_finite, load_arrays

#: The smallest variance a standardized feature is divided by (constant features get 1).
MIN_VARIANCE = 1e-12


@dataclasses.dataclass
class Splits:
    """The examples of a recipe, in raw units, and what the model needs to know about them.

    Attributes:
        x_fit, x_val, x_test: arrays (N, *input_shape), or streamed `zoo.data.folders.ImageFiles`;
            x_val is None without validation.
        y_fit, y_val, y_test: int64 labels, or None without labels.
        kind: images, table or series.
        input_shape: the shape of one example.
        preprocessing: the spec of `zoo.layers.preprocessing` the model is built with.
        source: where the examples came from.
        class_names, feature_names, label_name: as the source named them.
    """

    x_fit: object
    x_val: object
    x_test: object
    y_fit: np.ndarray | None
    y_val: np.ndarray | None
    y_test: np.ndarray | None
    kind: str
    input_shape: tuple
    preprocessing: dict
    source: str
    class_names: tuple = ()
    feature_names: tuple = ()
    label_name: str = ""

    @property
    def bounded(self) -> bool:
        """Whether the model's units are [0, 1] (everything but standardized tables and series)."""
        return self.preprocessing["kind"] != "standardize"

    @property
    def labelled(self) -> bool:
        return self.y_fit is not None and self.y_test is not None

    def test_arrays(self, limit: int = 0):
        """(x, y) of the first `limit` test examples (0 = all) as arrays (files are read)."""
        n = len(self.x_test) if not limit else min(limit, len(self.x_test))
        return materialize(self.x_test[:n]), None if self.y_test is None else self.y_test[:n]

    def fit_arrays(self, index):
        """(x, y) of the fit examples at `index` as arrays (files are read)."""
        index = np.asarray(index)
        return materialize(self.x_fit[index]), None if self.y_fit is None else self.y_fit[index]


def read_source(data) -> Loaded:
    """The examples of a `DataConfig`'s source, before splitting.

    Raises:
        DataError: own data that cannot be read (one line naming the file, row, column).
        FileNotFoundError: a built-in dataset that is not on this machine.
    """
    if data.path:
        fmt = catalog.resolve_format(data.path, data.format, data.window)
        if fmt == "images":
            from zoo.data.folders import read_folder

            return read_folder(data.path, image_size=tuple(data.image_size), color_mode=data.color_mode,
                               test_path=data.test_path)
        if fmt == "arrays":
            from zoo.data.arrays import read_arrays

            return read_arrays(data.path, x_key=data.x_key, labels=data.labels, test_path=data.test_path)
        from zoo.data import tables

        if fmt == "series":
            return tables.read_series(data.path, columns=tuple(data.columns), missing=data.missing,
                                      window=data.window, stride=data.stride, test_fraction=data.test_fraction,
                                      test_path=data.test_path)
        return tables.read_table(data.path, columns=tuple(data.columns), label_column=data.label_column,
                                 missing=data.missing, test_path=data.test_path)
    if data.dataset in catalog.BUNDLED:
        from zoo.data.bundled import load_bundled

        return load_bundled(data.dataset, data)
    arrays = load_arrays(data.dataset, data_dir=data.data_dir or None, source=data.source)
    return Loaded(x=arrays.x_train, y=arrays.y_train, x_test=arrays.x_test, y_test=arrays.y_test, kind="images",
                  source=arrays.source, scaled=True)


def label_codes(labels, class_names, y, where: str) -> list[int]:
    """Integer codes of labels given as ints or class names, each present in `y`.

    Raises:
        DataError: a name that is no class, or a label the data does not hold.
    """
    names = {str(n): i for i, n in enumerate(class_names)}
    present = set(np.unique(y).tolist())
    codes = []
    for label in labels:
        if isinstance(label, str) and label in names:
            code = names[label]
        elif isinstance(label, int) or str(label).lstrip("-").isdigit():
            code = int(label)
        else:
            raise DataError(f"{where}: normal label {label!r} is not a class of the data "
                            f"({', '.join(names) or 'integer labels'})")
        if code not in present:
            raise DataError(f"{where}: normal label {label!r} does not occur in the training split "
                            f"(its labels: {', '.join(map(str, sorted(present)))})")
        codes.append(code)
    return codes


def _keep_labels(data, where, class_names, x_fit, y_fit, x_val, y_val):
    """The fit and validation splits restricted to `data.normal_labels` (one-class training)."""
    if y_fit is None:
        raise DataError(f"{where}: normal_labels needs labelled data (class folders, a label column or array)")
    codes = label_codes(data.normal_labels, class_names, y_fit, where)
    keep = np.flatnonzero(np.isin(y_fit, codes))
    x_fit, y_fit = x_fit[keep], y_fit[keep]
    if x_val is not None:
        keep = np.flatnonzero(np.isin(y_val, codes))
        x_val, y_val = (x_val[keep], y_val[keep]) if len(keep) else (None, None)
    return x_fit, y_fit, x_val, y_val


def validation_count(validation_size, n_train: int, catalog_dataset: bool) -> int:
    """Examples held out for validation from `n_train`: a count as given, a fraction rounded,
    "auto" = 5000 (the catalog's image datasets) or 10%."""
    if validation_size == "auto":
        return catalog.CATALOG_VALIDATION if catalog_dataset else int(round(n_train * catalog.AUTO_VALIDATION_FRACTION))
    if isinstance(validation_size, float):
        return int(round(n_train * validation_size))
    return int(validation_size)


def preprocessing_for(loaded_kind: str, x_fit, scaled: bool, value_range: float) -> dict:
    """The preprocessing spec of the fit split (see the module docstring)."""
    if loaded_kind == "images":
        return {"kind": "none"} if scaled else {"kind": "scale", "scale": 1.0 / float(value_range)}
    x = np.asarray(x_fit, dtype=np.float64)
    axes = tuple(range(x.ndim - 1))
    mean, variance = x.mean(axis=axes), x.var(axis=axes)
    variance = np.where(variance < MIN_VARIANCE, 1.0, variance)
    return {"kind": "standardize", "mean": mean.tolist(), "variance": variance.tolist()}


def to_model_units(x, spec) -> np.ndarray:
    """x' of raw examples x under a preprocessing spec, in numpy (what the model's layer computes)."""
    x = np.asarray(x, np.float32)
    if spec["kind"] == "scale":
        return x * np.float32(spec["scale"])
    if spec["kind"] == "standardize":
        return ((x - np.asarray(spec["mean"], np.float32)) / np.sqrt(np.asarray(spec["variance"], np.float32)))
    return x


def from_model_units(x, spec) -> np.ndarray:
    """Raw examples of model-unit values x' (the inverse of `to_model_units`)."""
    x = np.asarray(x, np.float32)
    if spec["kind"] == "scale":
        return x / np.float32(spec["scale"])
    if spec["kind"] == "standardize":
        return x * np.sqrt(np.asarray(spec["variance"], np.float32)) + np.asarray(spec["mean"], np.float32)
    return x


def _where(data) -> str:
    return data.path or data.dataset


def load_splits(data, seed: int, input_shape=None) -> Splits:
    """The `Splits` of a `DataConfig`; `input_shape`, when given, must be the data's.

    Raises:
        DataError: unreadable own data, too few examples for the splits, or (input_shape given)
            data of another shape.
        FileNotFoundError: a built-in dataset that is not on this machine.
    """
    loaded = read_source(data)
    own = bool(data.path) or data.dataset in catalog.BUNDLED or data.source == "tfds" and data.dataset not in catalog.DATASETS
    where = _where(data)
    shape = loaded.input_shape
    if input_shape is not None and tuple(shape) != tuple(input_shape):
        raise DataError(f"{where}: examples of shape {shape} do not match the model's input {tuple(input_shape)}")
    x_train, y_train, x_test, y_test = loaded.x, loaded.y, loaded.x_test, loaded.y_test
    if x_test is None:  # a seeded fraction of the examples
        n = len(x_train)
        n_test = int(round(n * data.test_fraction))
        if n_test < 1 or n - n_test < 1:
            raise DataError(f"{where}: {n} examples cannot be split by test_fraction = {data.test_fraction:g} "
                            f"(it leaves {n_test} for testing and {n - n_test} for training)")
        order = np.random.default_rng(seed).permutation(n)
        test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
        x_test, y_test = x_train[test_idx], None if y_train is None else y_train[test_idx]
        x_train, y_train = x_train[train_idx], None if y_train is None else y_train[train_idx]
    if (y_train is None) != (y_test is None):
        y_train = y_test = None  # labels only help when both splits have them
    if data.binarize == "static":  # the whole training split sampled once, as ever
        x_train = binarize_static(x_train, seed)
    n_train = len(x_train)
    n_val = validation_count(data.validation_size, n_train, not own)
    if n_val >= n_train:
        raise DataError(f"{where}: validation_size = {data.validation_size} holds out {n_val} of the {n_train} "
                        f"training examples and leaves none to train on; use a smaller count or a fraction")
    if own and loaded.kind != "series" and n_val:
        # Own data is often ordered (a folder lists its files class by class): hold out a seeded subset.
        order = np.random.default_rng(seed + 7).permutation(n_train)
        val_idx, fit_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    else:  # the catalog's last examples (as ever), or a series' last windows
        fit_idx, val_idx = np.arange(n_train - n_val), np.arange(n_train - n_val, n_train)
    x_fit, y_fit = x_train[fit_idx] if n_val else x_train, None if y_train is None else y_train[fit_idx]
    x_val = x_train[val_idx] if n_val else None
    y_val = None if y_train is None or not n_val else y_train[val_idx]
    if data.normal_labels:
        x_fit, y_fit, x_val, y_val = _keep_labels(data, where, loaded.class_names, x_fit, y_fit, x_val, y_val)
    if not hasattr(x_fit, "load"):
        for what, x in (("training", x_fit), ("test", x_test)):
            check_finite(x, f"{where}: {what} examples")
    if data.binarize == "static":
        x_test = binarize_static(x_test, seed + 1)
    elif data.binarize == "dynamic":
        x_test = binarize_static(x_test, seed + 1)
        if x_val is not None:
            x_val = binarize_static(x_val, seed + 2)
    preprocessing = preprocessing_for(loaded.kind, x_fit, loaded.scaled, loaded.value_range)
    return Splits(x_fit=x_fit, x_val=x_val, x_test=x_test, y_fit=y_fit, y_val=y_val, y_test=y_test, kind=loaded.kind,
                  input_shape=tuple(shape), preprocessing=preprocessing, source=loaded.source,
                  class_names=tuple(loaded.class_names), feature_names=tuple(loaded.feature_names),
                  label_name=loaded.label_name)
