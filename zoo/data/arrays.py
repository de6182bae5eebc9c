"""Reading examples saved with numpy (`.npy`, `.npz`) into a `Loaded`.

The kind of the examples follows from the shape of one example:

- (F,): table rows;
- (H, W, C) with C = 1, 3 or 4: images;
- (H, W) of dtype uint8: grayscale images, given a channel axis (H, W, 1);
- (T, C) of any other dtype: windows of a series.

Values are handed on as float32 in their raw units (uint8 images stay in 0..255: the model
scales them). Examples are numbered from 0, as numpy indexes them. Labels are int64; string
labels become codes 0..K-1 in sorted order, with the names in `class_names`. Only numeric and
string arrays are read: pickled (object) arrays are refused, since loading them runs code.
No TensorFlow here.
"""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from zoo.data.catalog import ARRAY_SUFFIXES
from zoo.data.examples import DataError, Loaded, check_file

#: Names an npz's labels array may have, tried in order when `labels` is not given.
LABEL_KEYS = ("y", "labels")
_CHANNELS = (1, 3, 4)
_ALLOWED_SHAPES = ("(F,) table rows, (T, C) series windows or uint8 (H, W) images, "
                   "(H, W, C) images with C = 1, 3 or 4")


def read_arrays(path, *, x_key: str = "", labels: str = "", test_path: str = "") -> Loaded:
    """Reads the examples (and labels) of a `.npy` or `.npz` file.

    Args:
        path: a `.npy` file holding the examples, or a `.npz` file holding them and maybe labels.
        x_key: the npz array holding the examples; by default "x" if present, else the only
            array that is not a labels array. Ignored for a `.npy` file.
        labels: an npz array name or the path of a `.npy` file (relative to the working
            directory) with one label per example; by default the npz's "y" or "labels" array,
            if any.
        test_path: a second `.npy`/`.npz` file read by the same rules (its labels come from its
            own array named `labels`, "y" or "labels", if any); its examples must have the
            training file's shape.

    Returns:
        A `Loaded` of kind "images", "table" or "series" with float32 examples in raw units;
        `scaled` is True for floating-point images whose values all lie in [0, 1].

    Raises:
        DataError: a missing, unreadable or pickled file, an unknown suffix, an ambiguous npz,
            no examples, a shape that is not allowed, NaN or inf values, or labels that are not
            1-D, not one per example, or not integral.
    """
    path = os.fspath(path)
    x, y, y_what = _read(path, x_key, labels, test=False)
    raw_shape = x.shape[1:]
    kind, x = _shape_kind(x, path)
    class_names: tuple = ()
    if y is not None:
        y, class_names = _labels(y, y_what, path, len(x))
    scaled = kind == "images" and _unit_floats(x)  # Before the cast: uint8 images are never scaled.
    # Unscaled images are scaled by 1/value_range in the model: the dtype's largest value for
    # unsigned integers (255 for uint8, 65535 for uint16), else 255 (floats in 0..255).
    value_range = float(np.iinfo(x.dtype).max) if np.issubdtype(x.dtype, np.unsignedinteger) else 255.0
    x = _values(x, path)
    x_test = y_test = None
    if test_path:
        test_path = os.fspath(test_path)
        x_test, y_test_raw, y_test_what = _read(test_path, x_key, labels, test=True)
        if x_test.shape[1:] != raw_shape:
            raise DataError(f"{test_path}: examples have shape {tuple(x_test.shape[1:])} but "
                            f"{path} has {tuple(raw_shape)}")
        if len(x_test) == 0:
            raise DataError(f"{test_path} holds 0 examples")
        _check_numeric(x_test, test_path)
        if kind == "images" and x_test.ndim == 3:
            x_test = x_test[..., None]
        if y_test_raw is not None:
            y_test, test_names = _labels(y_test_raw, y_test_what, test_path, len(x_test),
                                         train_names=class_names, train_labelled=y is not None)
            class_names = class_names or test_names
        scaled = scaled and _unit_floats(x_test)
        x_test = _values(x_test, test_path)
    return Loaded(x=x, y=y, kind=kind, source=_describe(path, x, kind, y, class_names, test_path, x_test),
                  x_test=x_test, y_test=y_test, class_names=class_names, scaled=bool(scaled),
                  value_range=value_range)


def _load(path: str, loader):
    """`loader()`, with numpy's read errors turned into one-line DataErrors naming `path`."""
    try:
        return loader()
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DataError(f"{path} holds a pickled (object) array, which is refused: save a "
                            f"numeric or string array") from None
        raise DataError(f"{path}: cannot read ({_first_line(e)})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({_first_line(e)})") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[0][:160] if text else type(error).__name__)


def _read(path: str, x_key: str, labels: str, *, test: bool):
    """(examples, raw labels or None, what the labels are called in messages) of one file."""
    suffix = check_file(path, ARRAY_SUFFIXES, "array")
    if suffix == ".npy":
        x = _load(path, lambda: np.load(path, allow_pickle=False))
        if not isinstance(x, np.ndarray):
            raise DataError(f"{path}: cannot read (not a .npy array)")
        if labels and not test:
            return x, _read_label_file(labels, path), labels
        return x, None, ""
    with _load(path, lambda: np.load(path, allow_pickle=False)) as npz:
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: cannot read (not an .npz archive)")
        names = list(npz.files)
        x_name = _pick_x(path, names, x_key, labels)
        y_name = _pick_labels(path, names, x_name, labels, test=test)
        x = _load(path, lambda: npz[x_name])
        if y_name is not None:
            return x, _load(path, lambda: npz[y_name]), f"{path}: array '{y_name}'"
    if labels and not test:
        if os.path.splitext(labels)[1].lower() != ".npy":
            raise DataError(f"{path} has no array {labels!r} (data.labels); its arrays: "
                            f"{', '.join(names)}; or name a .npy file")
        return x, _read_label_file(labels, path), labels
    return x, None, ""


def _pick_x(path: str, names: list, x_key: str, labels: str) -> str:
    if not names:
        raise DataError(f"{path} holds no arrays")
    if x_key:
        if x_key not in names:
            raise DataError(f"{path} has no array {x_key!r}; its arrays: {', '.join(names)}")
        return x_key
    if "x" in names:
        return "x"
    candidates = [n for n in names if n not in LABEL_KEYS and n != labels]
    if len(candidates) == 1:
        return candidates[0]
    raise DataError(f"{path} holds arrays {', '.join(names)}: set data.x_key to one of them")


def _pick_labels(path: str, names: list, x_name: str, labels: str, *, test: bool):
    """The npz array holding the labels, or None (no labels, or a separate .npy file)."""
    if labels and labels in names and labels != x_name:
        return labels
    if labels and not test:
        return None  # A path to a .npy file, read by the caller.
    return next((k for k in LABEL_KEYS if k in names and k != x_name), None)


def _read_label_file(labels: str, data_path: str) -> np.ndarray:
    if os.path.splitext(labels)[1].lower() != ".npy":
        raise DataError(f"{data_path}: data.labels = {labels!r} must name a .npy file of labels")
    if not os.path.exists(labels):
        raise DataError(f"{labels}: no such file (data.labels)")
    y = _load(labels, lambda: np.load(labels, allow_pickle=False))
    if not isinstance(y, np.ndarray):
        raise DataError(f"{labels}: cannot read (not a .npy array)")
    return y


def _shape_kind(x: np.ndarray, path: str):
    """(kind, examples with a channel axis added where needed) from one example's shape."""
    if x.ndim < 1:
        raise DataError(f"{path} holds a single value, not examples; allowed example shapes: "
                        f"{_ALLOWED_SHAPES}")
    if len(x) == 0:
        raise DataError(f"{path} holds 0 examples")
    _check_numeric(x, path)
    rank = x.ndim - 1
    if rank == 1:
        return "table", x
    if rank == 2:
        return ("images", x[..., None]) if x.dtype == np.uint8 else ("series", x)
    if rank == 3:
        if x.shape[-1] not in _CHANNELS:
            raise DataError(f"{path}: images of shape {tuple(x.shape[1:])} have {x.shape[-1]} "
                            f"channels (last axis); allowed: 1, 3 or 4")
        return "images", x
    raise DataError(f"{path}: examples have shape {tuple(x.shape[1:])}; allowed: {_ALLOWED_SHAPES}")


def _check_numeric(x: np.ndarray, path: str) -> None:
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
            or x.dtype == np.bool_):
        raise DataError(f"{path}: examples must be numbers, not dtype {x.dtype}")


def _values(x: np.ndarray, path: str) -> np.ndarray:
    """float32 examples in raw units, checked finite (after the cast, which may overflow)."""
    with np.errstate(over="ignore"):  # An overflow becomes inf, refused just below.
        x = np.asarray(x, dtype=np.float32)
    finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
    if not finite.all():
        raise DataError(f"{path}: example {int(np.argmin(finite))} holds NaN or inf")
    return x


def _unit_floats(x: np.ndarray) -> bool:
    """Whether x is floating-point with every value in [0, 1]."""
    return bool(np.issubdtype(x.dtype, np.floating) and x.size
                and np.all((x >= 0) & (x <= 1)))


def _labels(y: np.ndarray, what: str, path: str, n: int, *, train_names: tuple = (),
            train_labelled: bool = False):
    """(int64 labels, class names) after checking there is one 1-D label per example."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{what}: labels must be 1-D (one per example), not shape {tuple(y.shape)}")
    if len(y) != n:
        raise DataError(f"{what} has {len(y)} labels but {path} has {n} examples")
    if y.dtype.kind in "US":
        values = y.astype(str).tolist()
        if train_labelled and not train_names:
            raise DataError(f"{what}: string labels, but the training labels are integers")
        names = train_names or tuple(sorted(set(values)))
        index = {name: i for i, name in enumerate(names)}
        unknown = [i for i, v in enumerate(values) if v not in index]
        if unknown:
            raise DataError(f"{what}: label {values[unknown[0]]!r} of example {unknown[0]} is not "
                            f"among the training labels {', '.join(names)}")
        return np.array([index[v] for v in values], dtype=np.int64), names
    if train_names:
        raise DataError(f"{what}: integer labels, but the training labels are strings")
    if y.dtype == np.bool_ or np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64), ()
    if np.issubdtype(y.dtype, np.floating):
        integral = np.isfinite(y) & (y == np.round(y))
        if not integral.all():
            i = int(np.argmin(integral))
            raise DataError(f"{what}: label of example {i} is {y[i]}, not an integer class")
        return y.astype(np.int64), ()
    raise DataError(f"{what}: labels must be integers or strings, not dtype {y.dtype}")


def _describe(path, x, kind, y, class_names, test_path, x_test) -> str:
    shape = "×".join(str(d) for d in x.shape[1:])
    what = {"images": f"examples of {shape}", "table": f"examples of {shape} features",
            "series": f"windows of {shape}"}[kind]
    text = f"{os.path.splitext(path)[1][1:].lower()}:{path} ({len(x):,} {what}"
    if y is not None:
        text += f", {len(class_names) or len(np.unique(y))} classes"
    if x_test is not None:
        text += f"; test {os.path.splitext(test_path)[1][1:].lower()}:{test_path}, {len(x_test):,}"
    return text + ")"
