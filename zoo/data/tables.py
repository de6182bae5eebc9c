"""Reading tables and series from CSV or Parquet files into a `Loaded`.

A table's rows are examples of kind "table" (F features each); a series' rows are time steps,
cut into windows of kind "series" (T steps × C columns each). Values are handed on as float32
in their raw units: the model carries the scaling.

Rows are numbered from 1 over the data rows, as a spreadsheet's data rows after its header:
row 1 is the first row under the header (line 2 of a CSV file). Every message naming a row
uses this numbering; a dropped row keeps its number. pandas skips blank lines of a CSV file
with several columns (they are not rows); in a one-column file a blank line is an empty cell,
so a missing value. Messages are one line naming the file.

pandas (and pyarrow, for Parquet) are imported when a file is read. No TensorFlow here.
"""

from __future__ import annotations

import numbers
import os

import numpy as np

from zoo.data.catalog import MISSING, TABLE_SUFFIXES  # noqa: F401  (MISSING: what to do with a missing value)
from zoo.data.examples import DataError, Loaded, check_file
_FILL_HINT = "set data.missing to mean, zero, interpolate or drop"


def read_table(path, *, columns=(), label_column: str = "", missing: str = "refuse",
               test_path: str = "", frame=None) -> Loaded:
    """Reads a table whose rows are examples, with an optional label column.

    Args:
        path: a `.csv`, `.parquet` or `.pq` file with a header of column names.
        columns: the feature columns, each numeric or boolean; by default every numeric or
            boolean column except the label column.
        label_column: the column of class labels, or "" for none. Integer labels are kept;
            strings (or categories) become codes 0..K-1 in sorted order, named in
            `class_names`. It is never a feature.
        missing: one of MISSING: "refuse" (an error naming the first missing cell), "mean"
            (that column's mean over the file), "zero", "interpolate" (linear along the rows,
            the edges filled with the nearest value) or "drop" (the rows with a missing
            feature value).
        test_path: a second file with the same feature (and label) columns, read the same way
            (with "mean", the training file's means fill it).
        frame: a pandas DataFrame to read instead of the file (`path` then only names it), as
            for the datasets bundled with scikit-learn (`zoo.data.bundled`).

    Returns:
        A `Loaded` of kind "table": x float32 (N, F), y int64 (N,) or None, feature_names.

    Raises:
        ValueError: an unknown `missing`.
        DataError: a missing, unreadable or empty file, an unknown suffix, a missing or
            non-numeric column, a missing or infinite value (with "refuse"), a missing or
            non-integral label.
    """
    _check_missing(missing)
    path = os.fspath(path)
    frame = _read_frame(path) if frame is None else frame
    names = _feature_columns(frame, path, columns, label_column)
    y, class_names = (None, ())
    if label_column:
        y, class_names = _labels(frame[label_column], path, label_column)
    x, keep, means = _fill(_features(frame, path, names), path, names, missing)
    if y is not None:
        y = y[keep]
    source = f"{_name(path)} ({len(frame):,} rows, {_columns(names)}"
    if len(x) != len(frame):
        source += f", {len(frame) - len(x):,} rows dropped"
    if label_column:
        source += f", label {label_column!r}"
    x_test = y_test = None
    if test_path:
        test_path = os.fspath(test_path)
        test = _read_frame(test_path)
        _require(test, test_path, names + ([label_column] if label_column else []))
        if label_column:
            y_test, _ = _labels(test[label_column], test_path, label_column,
                                train_names=class_names)
        x_test, keep_test, _ = _fill(_features(test, test_path, names), test_path, names,
                                     missing, means=means)
        if y_test is not None:
            y_test = y_test[keep_test]
        source += f"; test {_name(test_path)}, {len(x_test):,} rows"
    return Loaded(x=x.astype(np.float32), y=y, kind="table", source=source + ")",
                  x_test=None if x_test is None else x_test.astype(np.float32), y_test=y_test,
                  class_names=class_names, feature_names=tuple(names), label_name=label_column)


def column_names(path) -> list[str]:
    """The column names of a CSV or Parquet file (DataError in one line if it cannot be read)."""
    return list(_read_frame(os.fspath(path)).columns)


def read_series(path, *, columns=(), missing: str = "refuse", window: int, stride: int = 1,
                test_fraction: float = 0.2, test_path: str = "", frame=None) -> Loaded:
    """Reads a series whose rows are time steps and cuts it into windows.

    Without `test_path`, the first round(T × (1 - test_fraction)) rows are the training part
    and the rest the test part, in time order (no shuffling); with `test_path`, the whole file
    is the training part and the test file the test part. Windows of `window` rows start every
    `stride` rows within each part, so no window spans both.

    Args:
        path: a `.csv`, `.parquet` or `.pq` file with a header of column names.
        columns: the columns of the series, each numeric or boolean; by default every numeric or
            boolean column.
        missing: one of MISSING except "drop", which would break the time steps. Missing values
            are filled over the whole file before it is split ("mean" takes the file's means).
        window: rows per window, at least 2.
        stride: rows between the starts of consecutive windows, at least 1.
        test_fraction: the fraction of rows held out at the end, in (0, 1).
        test_path: a second file with the same columns, the test part (with "mean", the
            training file's means fill it).
        frame: a pandas DataFrame to read instead of the file (`path` then only names it), as
            for the series bundled with statsmodels (`zoo.data.bundled`).

    Returns:
        A `Loaded` of kind "series": x float32 windows (N, window, C), x_test likewise, y None.

    Raises:
        ValueError: an unknown `missing`, window < 2, stride < 1 or test_fraction outside (0, 1).
        DataError: missing = "drop", a missing, unreadable or empty file, an unknown suffix, a
            missing or non-numeric column, a missing (with "refuse") or infinite value, or a part
            shorter than the window.
    """
    _check_missing(missing)
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 2:
        raise ValueError(f"window must be an integer of at least 2. Received: window={window!r}")
    if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or stride < 1:
        raise ValueError(f"stride must be an integer of at least 1. Received: stride={stride!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1). Received: test_fraction={test_fraction!r}")
    path = os.fspath(path)
    if missing == "drop":
        raise DataError(f"{path}: data.missing = 'drop' would break the time steps of a series; "
                        f"use interpolate")
    frame = _read_frame(path) if frame is None else frame
    names = _feature_columns(frame, path, columns, "")
    values, _, means = _fill(_features(frame, path, names), path, names, missing)
    rows = len(values)
    if test_path:
        test_path = os.fspath(test_path)
        test = _read_frame(test_path)
        _require(test, test_path, names)
        test_values, _, _ = _fill(_features(test, test_path, names), test_path, names, missing,
                                  means=means)
        x = _windows(values, window, stride, f"{path}: window = {window} is longer than the "
                                             f"series ({rows} rows)")
        x_test = _windows(test_values, window, stride, f"{test_path}: window = {window} is "
                                                       f"longer than the test series "
                                                       f"({len(test_values)} rows)")
        held = f"test {_name(test_path)}, {len(test_values):,} rows"
    else:
        n_train = round(rows * (1 - test_fraction))
        x = _windows(values[:n_train], window, stride,
                     f"{path}: window = {window} is longer than the training part ({n_train} of "
                     f"{rows} rows; test_fraction = {test_fraction} holds out the last "
                     f"{rows - n_train})")
        x_test = _windows(values[n_train:], window, stride,
                          f"{path}: window = {window} is longer than the test part "
                          f"({rows - n_train} of {rows} rows, held out by test_fraction = "
                          f"{test_fraction})")
        held = f"the last {rows - n_train:,} held out"
    source = (f"{_name(path)} ({rows:,} rows, {_columns(names)}; {held}; {len(x):,} training "
              f"and {len(x_test):,} test windows of {window} rows, stride {stride})")
    return Loaded(x=x, y=None, kind="series", source=source, x_test=x_test,
                  feature_names=tuple(names))


def _check_missing(missing: str) -> None:
    if missing not in MISSING:
        raise ValueError(f"Unknown missing-value rule {missing!r}. Allowed: {', '.join(MISSING)}")


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__


def _read_frame(path: str):
    """The file as a DataFrame with string column names, checked to have data rows."""
    suffix = check_file(path, TABLE_SUFFIXES, "table")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path} is empty")
    import pandas as pd  # Imported lazily: only table and series sources need it.

    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        if suffix == ".csv" and frame.shape[1] == 1:
            # In a one-column file an empty cell is a blank line, which pandas would skip,
            # shifting the rows (the time steps of a series) after it.
            frame = pd.read_csv(path, skip_blank_lines=False)
    except (OSError, ValueError, EOFError, NotImplementedError) as e:
        # pandas' parser errors and pyarrow's ArrowInvalid are ValueErrors, ArrowIOError an OSError.
        raise DataError(f"{path}: cannot read ({_first_line(e)})") from None
    if frame.shape[1] == 0 or len(frame) == 0:
        raise DataError(f"{path} has no data rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _require(frame, path: str, names) -> None:
    """Raises a DataError for the first of `names` that is not a column of `frame`."""
    for name in names:
        if name not in frame.columns:
            raise DataError(f"{path} has no column {name!r}; its columns: {', '.join(frame.columns)}")


def _is_boolean_objects(series) -> bool:
    """Whether an object column holds only booleans and missing values (a bool CSV column
    with empty cells reads this way)."""
    values = series.dropna()
    return series.dtype == object and len(values) > 0 and all(
        isinstance(v, (bool, np.bool_)) for v in values)


def _is_numeric(series) -> bool:
    from pandas.api import types

    return (types.is_bool_dtype(series) or (types.is_numeric_dtype(series)
                                            and not types.is_complex_dtype(series))
            or _is_boolean_objects(series))


def _feature_columns(frame, path: str, columns, label_column: str) -> list:
    if label_column:
        _require(frame, path, [label_column])
    if isinstance(columns, str):
        columns = (columns,)
    names = [str(c) for c in columns]
    if names:
        _require(frame, path, names)
        if label_column in names:
            raise DataError(f"{path}: column {label_column!r} is the label column; remove it from "
                            f"data.columns")
        twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if twice is not None:
            raise DataError(f"{path}: column {twice!r} is listed twice in data.columns")
        return names
    names = [c for c in frame.columns if c != label_column and _is_numeric(frame[c])]
    for c in frame.columns:  # a numeric column with a few bad cells must not vanish from the features
        import pandas as pd

        if c == label_column or c in names or not (pd.api.types.is_object_dtype(frame[c])
                                                   or pd.api.types.is_string_dtype(frame[c])):
            continue

        parsed = pd.to_numeric(frame[c], errors="coerce")
        given = frame[c].notna()
        if parsed[given].notna().mean() >= 0.5:
            row = int(np.flatnonzero((given & parsed.isna()).to_numpy())[0]) + 1
            raise DataError(f"{path}: column {c!r} is numeric but row {row} holds {frame[c].iloc[row - 1]!r}: "
                            f"fix the cell, or set data.columns to the feature columns")
    if not names:
        besides = f" besides the label {label_column!r}" if label_column else ""
        raise DataError(f"{path} has no numeric column{besides}; its columns: "
                        f"{', '.join(frame.columns)}")
    return names


def _column_values(series, path: str, name: str) -> np.ndarray:
    """A column as float64 with NaN where missing; a DataError names its first non-number."""
    import pandas as pd
    from pandas.api import types

    if _is_numeric(series):
        return pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan)
    if types.is_datetime64_any_dtype(series) or types.is_timedelta64_dtype(series) \
            or types.is_complex_dtype(series):
        numeric = pd.Series(np.nan, index=series.index)
    else:
        numeric = pd.to_numeric(series, errors="coerce")
    bad = (series.notna() & numeric.isna()).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        value = str(series.iloc[row])
        value = value if len(value) <= 40 else value[:37] + "..."
        raise DataError(f"{path}: column {name!r} is not numeric (row {row + 1}: {value!r})")
    return numeric.to_numpy(dtype=np.float64, na_value=np.nan)


def _features(frame, path: str, names) -> np.ndarray:
    """The feature columns as float64 (rows, columns), NaN where missing, checked for inf."""
    values = np.stack([_column_values(frame[n], path, n) for n in names], axis=1)
    infinite = np.argwhere(np.isinf(values))
    if len(infinite):
        row, col = infinite[0]
        raise DataError(f"{path}: infinite value at row {row + 1}, column {names[col]!r}")
    return values


def _fill(values: np.ndarray, path: str, names, missing: str, means=None):
    """(filled values, rows kept, column means for "mean") under the missing-value rule."""
    nan = np.isnan(values)
    keep = np.ones(len(values), dtype=bool)
    if missing == "mean" and means is None:
        empty = np.flatnonzero(nan.all(axis=0))
        if len(empty):
            raise DataError(f"{path}: column {names[empty[0]]!r} holds no value to take the mean of")
        means = np.nanmean(values, axis=0)
    if not nan.any():
        return values, keep, means
    if missing == "refuse":
        row, col = np.argwhere(nan)[0]
        raise DataError(f"{path}: missing value at row {row + 1}, column {names[col]!r}: {_FILL_HINT}")
    values = values.copy()
    if missing == "mean":
        values[nan] = np.broadcast_to(means, values.shape)[nan]
    elif missing == "zero":
        values[nan] = 0.0
    elif missing == "interpolate":
        empty = np.flatnonzero(nan.all(axis=0))
        if len(empty):
            raise DataError(f"{path}: column {names[empty[0]]!r} holds no value to interpolate from")
        import pandas as pd

        values = (pd.DataFrame(values).interpolate(method="linear", limit_direction="both")
                  .to_numpy(dtype=np.float64))
    else:  # drop
        keep = ~nan.any(axis=1)
        if not keep.any():
            raise DataError(f"{path}: data.missing = 'drop' leaves no rows (every row has a missing "
                            f"value)")
        values = values[keep]
    return values, keep, means


def _labels(series, path: str, name: str, *, train_names=None):
    """(int64 labels, class names) of the label column.

    `train_names` is given for a test file: the training file's class names (codes follow
    them), or () when its labels were integers (these must be integers too).
    """
    from pandas.api import types

    missing = series.isna().to_numpy()
    if missing.any():
        raise DataError(f"{path}: missing label at row {int(np.argmax(missing)) + 1}, column {name!r}")
    numeric = types.is_bool_dtype(series) or (types.is_numeric_dtype(series)
                                              and not types.is_complex_dtype(series))
    if train_names or (train_names is None and not numeric):
        text = [str(v) for v in series.tolist()]
        names = train_names or tuple(sorted(set(text)))
        index = {n: i for i, n in enumerate(names)}
        unknown = next((i for i, v in enumerate(text) if v not in index), None)
        if unknown is not None:
            raise DataError(f"{path}: label {text[unknown]!r} at row {unknown + 1}, column {name!r} "
                            f"is not among the training labels {', '.join(names)}")
        return np.array([index[v] for v in text], dtype=np.int64), names
    if not numeric:  # A test file whose training labels were integers.
        import pandas as pd

        bad = pd.to_numeric(series, errors="coerce").isna().to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"{path}: label {str(series.iloc[row])!r} at row {row + 1}, column "
                            f"{name!r} is not an integer, as the training labels are")
        series = pd.to_numeric(series)
    if types.is_bool_dtype(series) or types.is_integer_dtype(series):
        return series.to_numpy(dtype=np.int64), ()
    values = series.to_numpy(dtype=np.float64)
    integral = np.isfinite(values) & (values == np.round(values))
    if not integral.all():
        row = int(np.argmin(integral))
        raise DataError(f"{path}: label at row {row + 1}, column {name!r} is {values[row]:g}, not "
                        f"an integer class")
    return values.astype(np.int64), ()


def _windows(values: np.ndarray, window: int, stride: int, too_short: str) -> np.ndarray:
    """float32 windows (N, window, C) starting every `stride` rows; `too_short` is the error."""
    if len(values) < window:
        raise DataError(too_short)
    views = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)  # (N, C, window)
    return np.ascontiguousarray(views[::stride].transpose(0, 2, 1), dtype=np.float32)


def _columns(names) -> str:
    return f"{len(names)} column{'' if len(names) == 1 else 's'}"


def _name(path: str) -> str:
    """The file with its format, e.g. "csv:data/table.csv" or "parquet:data/table.pq"."""
    suffix = os.path.splitext(path)[1].lower()
    return f"{'csv' if suffix == '.csv' else 'parquet'}:{path}"
