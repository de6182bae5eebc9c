"""Tests for zoo.data.tables: CSV / Parquet tables and series, missing values, labels, windows.

Rows in messages are numbered from 1 over the data rows (row 1 is the line under the header).
"""

import numpy as np
import pandas as pd
import pytest
from conftest import data_error

from zoo.data.examples import DataError
from zoo.data.tables import MISSING, TABLE_SUFFIXES, read_series, read_table


fails = data_error  # fails(reader, match, *args, **kwargs): the one-line DataError message


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def test_constants():
    assert TABLE_SUFFIXES == (".csv", ".parquet", ".pq")
    assert MISSING == ("refuse", "mean", "zero", "interpolate", "drop")


def test_numeric_columns_are_the_features_by_default(here):
    write("t.csv", "a,b,city,flag\n1,2.5,Paris,True\n2,3.5,Rome,False\n3,4.5,Oslo,True\n")
    loaded = read_table("t.csv")
    assert loaded.kind == "table"
    assert loaded.feature_names == ("a", "b", "flag")  # the string column is left out
    assert loaded.x.dtype == np.float32
    np.testing.assert_array_equal(loaded.x, [[1, 2.5, 1], [2, 3.5, 0], [3, 4.5, 1]])
    assert loaded.y is None and loaded.x_test is None and loaded.scaled is False
    assert loaded.source == "csv:t.csv (3 rows, 3 columns)"


def test_columns_select_and_order_the_features(here):
    write("t.csv", "a,b,c\n1,2,3\n4,5,6\n")
    loaded = read_table("t.csv", columns=["c", "a"])
    assert loaded.feature_names == ("c", "a")
    np.testing.assert_array_equal(loaded.x, [[3, 1], [6, 4]])


def test_an_unknown_column_lists_the_columns(here):
    write("table.csv", "a,b,c\n1,2,3\n")
    assert fails(read_table, "no column", "table.csv", columns=["a", "foo"]) == (
        "table.csv has no column 'foo'; its columns: a, b, c")


def test_a_non_numeric_column_names_its_first_bad_row(here):
    write("table.csv", "age,city\n1,7\n2,\n3,Paris\n4,Rome\n")
    assert fails(read_table, "not numeric", "table.csv", columns=["age", "city"]) == (
        "table.csv: column 'city' is not numeric (row 3: 'Paris')")


def test_a_date_column_is_not_numeric(here):
    pd.DataFrame({"when": pd.to_datetime(["2020-01-01", "2020-01-02"]), "v": [1.0, 2.0]}).to_parquet("d.pq")
    assert read_table("d.pq").feature_names == ("v",)
    fails(read_table, r"^d\.pq: column 'when' is not numeric \(row 1: '2020-01-01", "d.pq", columns=["when"])


def test_a_table_without_numeric_columns_is_refused(here):
    write("t.csv", "name,label\nx,a\ny,b\n")
    assert fails(read_table, "numeric", "t.csv", label_column="label") == (
        "t.csv has no numeric column besides the label 'label'; its columns: name, label")


def test_string_labels_become_sorted_codes(here):
    write("t.csv", "x,kind\n1,pear\n2,apple\n3,pear\n4,fig\n")
    loaded = read_table("t.csv", label_column="kind")
    assert loaded.class_names == ("apple", "fig", "pear")
    np.testing.assert_array_equal(loaded.y, [2, 0, 2, 1])
    assert loaded.y.dtype == np.int64
    assert loaded.feature_names == ("x",)
    assert loaded.source == "csv:t.csv (4 rows, 1 column, label 'kind')"


def test_integer_labels_are_kept_and_never_features(here):
    write("t.csv", "x,target\n1.5,3\n2.5,0\n3.5,7\n")
    loaded = read_table("t.csv", label_column="target")
    assert loaded.feature_names == ("x",)
    np.testing.assert_array_equal(loaded.y, [3, 0, 7])
    assert loaded.y.dtype == np.int64 and loaded.class_names == ()
    assert fails(read_table, "label column", "t.csv", columns=["x", "target"], label_column="target") == (
        "t.csv: column 'target' is the label column; remove it from data.columns")


def test_category_labels_become_codes(here):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": pd.Categorical(["b", "a", "b"])})
    frame.to_parquet("t.parquet")
    loaded = read_table("t.parquet", label_column="y")
    assert loaded.class_names == ("a", "b")
    np.testing.assert_array_equal(loaded.y, [1, 0, 1])


def test_label_errors_name_the_row(here):
    write("t.csv", "x,target\n1,0\n2,\n3,1\n")
    assert fails(read_table, "missing label", "t.csv", label_column="target") == (
        "t.csv: missing label at row 2, column 'target'")
    write("f.csv", "x,target\n1,0\n2,1\n3,0.5\n")
    assert fails(read_table, "not an integer", "f.csv", label_column="target") == (
        "f.csv: label at row 3, column 'target' is 0.5, not an integer class")
    assert fails(read_table, "no column", "f.csv", label_column="kind") == (
        "f.csv has no column 'kind'; its columns: x, target")


def test_float_labels_that_are_integral_are_kept(here):
    write("t.csv", "x,target\n1,0.0\n2,2.0\n")
    np.testing.assert_array_equal(read_table("t.csv", label_column="target").y, [0, 2])


def missing_table():
    """20 rows; 'age' is missing at row 17 (and 'pay' later, at row 19)."""
    rows = ["id,age,pay"] + [f"{i},{30 + i},{100 * i}" for i in range(1, 21)]
    rows[17] = "17,,1700"
    rows[19] = "19,49,"
    return "\n".join(rows) + "\n"


def test_refuse_names_the_first_missing_cell(here):
    write("table.csv", missing_table())
    assert fails(read_table, "missing value", "table.csv") == (
        "table.csv: missing value at row 17, column 'age': set data.missing to mean, zero, "
        "interpolate or drop")


def test_missing_values_filled_by_mean_zero_and_interpolation(here):
    write("t.csv", "a,b\n1,\n,2\n5,\n,8\n7,\n")
    # a = [1, -, 5, -, 7]: mean 13 / 3; b = [-, 2, -, 8, -]: mean 5.
    mean = read_table("t.csv", missing="mean").x
    np.testing.assert_allclose(mean[:, 0], [1, 13 / 3, 5, 13 / 3, 7], rtol=1e-6)
    np.testing.assert_allclose(mean[:, 1], [5, 2, 5, 8, 5])
    zero = read_table("t.csv", missing="zero").x
    np.testing.assert_array_equal(zero, [[1, 0], [0, 2], [5, 0], [0, 8], [7, 0]])
    # Linear along the rows; the edges take the nearest value.
    line = read_table("t.csv", missing="interpolate").x
    np.testing.assert_array_equal(line, [[1, 2], [3, 2], [5, 5], [6, 8], [7, 8]])


def test_drop_removes_rows_with_a_missing_feature_and_their_labels(here):
    write("t.csv", "a,b,y\n1,10,p\n,20,q\n3,30,r\n4,,s\n5,50,q\n")
    loaded = read_table("t.csv", missing="drop", label_column="y")
    np.testing.assert_array_equal(loaded.x, [[1, 10], [3, 30], [5, 50]])
    assert loaded.class_names == ("p", "q", "r", "s")  # named from every row
    np.testing.assert_array_equal(loaded.y, [0, 2, 1])
    assert loaded.source == "csv:t.csv (5 rows, 2 columns, 2 rows dropped, label 'y')"


def test_fills_that_have_nothing_to_work_from_are_refused(here):
    write("t.csv", "a,b\n1,\n2,\n")
    fails(read_table, r"^t\.csv: column 'b' holds no value to take the mean of", "t.csv", missing="mean")
    fails(read_table, r"^t\.csv: column 'b' holds no value to interpolate from", "t.csv",
          missing="interpolate")
    fails(read_table, r"^t\.csv: data\.missing = 'drop' leaves no rows", "t.csv", missing="drop")


def test_a_boolean_column_with_empty_cells_is_a_feature(here):
    write("t.csv", "v,ok\n1,True\n2,\n3,False\n4,True\n")
    loaded = read_table("t.csv", missing="mean")
    assert loaded.feature_names == ("v", "ok")
    np.testing.assert_allclose(loaded.x[:, 1], [1, 2 / 3, 0, 1], rtol=1e-6)


@pytest.mark.parametrize("value", ["inf", "-inf"])
def test_infinite_values_name_row_and_column(here, value):
    write("t.csv", f"a,b\n1,2\n3,{value}\n")
    for missing in ("refuse", "mean", "interpolate"):
        assert fails(read_table, "infinite", "t.csv", missing=missing) == (
            "t.csv: infinite value at row 2, column 'b'")


def test_an_unknown_missing_rule_is_a_value_error_listing_the_rules(here):
    write("t.csv", "a\n1\n")
    for reader, extra in ((read_table, {}), (read_series, {"window": 2})):
        with pytest.raises(ValueError) as info:
            reader("t.csv", missing="median", **extra)
        assert type(info.value) is ValueError
        assert str(info.value) == ("Unknown missing-value rule 'median'. Allowed: refuse, mean, zero, "
                                   "interpolate, drop")


def test_file_errors_name_the_file(here):
    assert fails(read_table, "suffix", "t.xlsx") == (
        "t.xlsx: unknown table file suffix '.xlsx'; allowed: .csv, .parquet, .pq")
    assert fails(read_table, "no such file", "gone/t.csv") == "gone/t.csv: no such file"
    write("empty.csv", "")
    assert fails(read_table, "empty", "empty.csv") == "empty.csv is empty"
    write("header.csv", "a,b\n")
    assert fails(read_table, "no data rows", "header.csv") == "header.csv has no data rows"
    write("ragged.csv", "a,b\n1,2\n1,2,3\n")
    assert fails(read_table, "cannot read", "ragged.csv").startswith("ragged.csv: cannot read (Error tokenizing")
    (here / "bad.parquet").write_bytes(b"not parquet at all")
    fails(read_table, r"^bad\.parquet: cannot read \(", "bad.parquet")
    (here / "latin.csv").write_bytes(b"a,b\n1,\xff\xfe\n")
    fails(read_table, r"^latin\.csv: cannot read \(", "latin.csv")
    (here / "dir.csv").mkdir()
    assert fails(read_table, "not a file", "dir.csv") == "dir.csv: not a file"


def test_parquet_reads_like_csv(here):
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": pd.array([1, 2, None], dtype="Int64"),
                          "y": [2, 0, 2]})
    frame.to_parquet("t.pq")
    loaded = read_table("t.pq", label_column="y", missing="zero")
    np.testing.assert_array_equal(loaded.x, [[1, 1], [0, 2], [3, 0]])
    np.testing.assert_array_equal(loaded.y, [2, 0, 2])
    assert loaded.source == "parquet:t.pq (3 rows, 2 columns, label 'y')"


def test_test_file_uses_the_training_means_and_names(here):
    write("train.csv", "a,b,y\n1,10,cat\n,20,dog\n5,30,cat\n")  # mean of a: 3
    write("test.csv", "b,a,y\n40,,dog\n50,9,cat\n")  # columns in another order
    loaded = read_table("train.csv", label_column="y", missing="mean", test_path="test.csv")
    np.testing.assert_array_equal(loaded.x_test, [[3, 40], [9, 50]])
    assert loaded.x_test.dtype == np.float32
    np.testing.assert_array_equal(loaded.y_test, [1, 0])
    assert loaded.source == "csv:train.csv (3 rows, 2 columns, label 'y'; test csv:test.csv, 2 rows)"


def test_test_file_errors_name_the_test_file(here):
    write("train.csv", "a,b,y\n1,10,cat\n2,20,dog\n")
    write("nob.csv", "a,y\n1,cat\n")
    assert fails(read_table, "no column", "train.csv", label_column="y", test_path="nob.csv") == (
        "nob.csv has no column 'b'; its columns: a, y")
    write("owl.csv", "a,b,y\n1,2,cat\n3,4,owl\n")
    assert fails(read_table, "training labels", "train.csv", label_column="y", test_path="owl.csv") == (
        "owl.csv: label 'owl' at row 2, column 'y' is not among the training labels cat, dog")
    write("gap.csv", "a,b,y\n1,2,cat\n,4,dog\n")
    assert fails(read_table, "missing value", "train.csv", label_column="y", test_path="gap.csv") == (
        "gap.csv: missing value at row 2, column 'a': set data.missing to mean, zero, interpolate or drop")
    write("ints.csv", "a,b\n1,10\n2,20\n")
    write("strs.csv", "a,b\n1,cat\n")
    fails(read_table, r"^strs\.csv: column 'b' is not numeric \(row 1: 'cat'\)", "ints.csv",
          test_path="strs.csv")


def test_test_labels_must_be_integers_when_the_training_labels_are(here):
    write("train.csv", "a,y\n1,0\n2,1\n")
    write("test.csv", "a,y\n1,1\n2,0\n3,cat\n")
    assert fails(read_table, "not an integer", "train.csv", label_column="y", test_path="test.csv") == (
        "test.csv: label 'cat' at row 3, column 'y' is not an integer, as the training labels are")


def test_columns_listed_twice_are_refused(here):
    write("t.csv", "a,b\n1,2\n")
    assert fails(read_table, "twice", "t.csv", columns=["a", "b", "a"]) == (
        "t.csv: column 'a' is listed twice in data.columns")
    assert read_table("t.csv", columns="b").feature_names == ("b",)  # one name as a string


def test_blank_lines_are_skipped_with_several_columns_and_missing_with_one(here):
    write("two.csv", "a,b\n1,2\n\n3,4\n")
    np.testing.assert_array_equal(read_table("two.csv").x, [[1, 2], [3, 4]])
    write("one.csv", "a\n1\n\n3\n")
    assert fails(read_table, "missing", "one.csv").startswith("one.csv: missing value at row 2, column 'a'")


def test_test_file_drop_drops_its_labels_too(here):
    write("train.csv", "a,y\n1,0\n2,1\n")
    write("test.csv", "a,y\n,1\n4,0\n")
    loaded = read_table("train.csv", label_column="y", missing="drop", test_path="test.csv")
    np.testing.assert_array_equal(loaded.x_test, [[4]])
    np.testing.assert_array_equal(loaded.y_test, [0])


def series_csv(rows=10):
    """Columns a = row index i (from 0) and b = 10 i, with a date column left out by default."""
    lines = ["date,a,b"] + [f"2020-01-{i + 1:02d},{i},{10 * i}" for i in range(rows)]
    return "\n".join(lines) + "\n"


def test_series_windows_split_in_time_order(here):
    write("s.csv", series_csv(10))
    loaded = read_series("s.csv", window=3, stride=2, test_fraction=0.3)
    assert loaded.kind == "series" and loaded.y is None and loaded.y_test is None
    assert loaded.feature_names == ("a", "b")
    # Training rows 0..6 (round(10 × 0.7) = 7): windows start at 0, 2, 4; test rows 7..9: one window.
    assert loaded.x.shape == (3, 3, 2) and loaded.x.dtype == np.float32
    np.testing.assert_array_equal(loaded.x[:, :, 0], [[0, 1, 2], [2, 3, 4], [4, 5, 6]])
    np.testing.assert_array_equal(loaded.x[1, :, 1], [20, 30, 40])
    np.testing.assert_array_equal(loaded.x_test, [[[7, 70], [8, 80], [9, 90]]])
    assert loaded.source == ("csv:s.csv (10 rows, 2 columns; the last 3 held out; 3 training and 1 "
                             "test windows of 3 rows, stride 2)")


def test_series_interpolates_and_fills_the_edges(here):
    write("s.csv", "v\n\n2\n\n6\n9\n\n")  # v = [-, 2, -, 6, 9, -]
    loaded = read_series("s.csv", missing="interpolate", window=2, test_fraction=0.5)
    # Filled: [2, 2, 4, 6, 9, 9]; training rows 0..2, test rows 3..5.
    np.testing.assert_array_equal(loaded.x[:, :, 0], [[2, 2], [2, 4]])
    np.testing.assert_array_equal(loaded.x_test[:, :, 0], [[6, 9], [9, 9]])


def test_series_with_a_test_file(here):
    write("train.csv", "v,w\n1,10\n,20\n5,30\n")  # mean of v: 3
    write("test.csv", "v,w\n,1\n7,2\n")
    loaded = read_series("train.csv", missing="mean", window=2, test_path="test.csv")
    np.testing.assert_array_equal(loaded.x[:, :, 0], [[1, 3], [3, 5]])
    np.testing.assert_array_equal(loaded.x_test, [[[3, 1], [7, 2]]])
    assert loaded.source == ("csv:train.csv (3 rows, 2 columns; test csv:test.csv, 2 rows; 2 training "
                             "and 1 test windows of 2 rows, stride 1)")


def test_series_refuses_drop(here):
    write("series.csv", series_csv(10))
    assert fails(read_series, "drop", "series.csv", missing="drop", window=2) == (
        "series.csv: data.missing = 'drop' would break the time steps of a series; use interpolate")


@pytest.mark.parametrize("kwargs,message", [
    ({"window": 1}, "window must be an integer of at least 2. Received: window=1"),
    ({"window": 2.5}, "window must be an integer of at least 2. Received: window=2.5"),
    ({"window": 2, "stride": 0}, "stride must be an integer of at least 1. Received: stride=0"),
    ({"window": 2, "test_fraction": 1.0}, "test_fraction must be in (0, 1). Received: test_fraction=1.0"),
    ({"window": 2, "test_fraction": 0}, "test_fraction must be in (0, 1). Received: test_fraction=0"),
])
def test_series_arguments_are_checked(here, kwargs, message):
    write("s.csv", series_csv(10))
    with pytest.raises(ValueError) as info:
        read_series("s.csv", **kwargs)
    assert type(info.value) is ValueError and str(info.value) == message


def test_a_window_longer_than_a_part_is_refused(here):
    write("series.csv", series_csv(500).replace("2020-01-", "d"))
    assert fails(read_series, "training part", "series.csv", window=500) == (
        "series.csv: window = 500 is longer than the training part (400 of 500 rows; test_fraction = 0.2 "
        "holds out the last 100)")
    assert fails(read_series, "test part", "series.csv", window=150) == (
        "series.csv: window = 150 is longer than the test part (100 of 500 rows, held out by "
        "test_fraction = 0.2)")
    write("short.csv", "a,b\n1,2\n3,4\n")
    assert fails(read_series, "test series", "series.csv", window=3, test_path="short.csv") == (
        "short.csv: window = 3 is longer than the test series (2 rows)")
    assert fails(read_series, "longer than the series", "short.csv", window=3, test_path="series.csv") == (
        "short.csv: window = 3 is longer than the series (2 rows)")


def test_series_column_errors(here):
    write("s.csv", series_csv(10))
    assert fails(read_series, "no column", "s.csv", columns=["a", "c"], window=2) == (
        "s.csv has no column 'c'; its columns: date, a, b")
    fails(read_series, r"^s\.csv: column 'date' is not numeric \(row 1: '2020-01-01'\)", "s.csv",
          columns=["date"], window=2)
    write("gap.csv", "a\n1\n2\n\n4\n")
    assert fails(read_series, "missing value", "gap.csv", window=2) == (
        "gap.csv: missing value at row 3, column 'a': set data.missing to mean, zero, interpolate or drop")


def test_breast_cancer_table_as_csv_and_parquet(here):
    """scikit-learn's bundled breast-cancer table: 569 rows, 30 features, a 0/1 label 'target'."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv("cancer.csv", index=False)
    frame.to_parquet("cancer.parquet")
    for name in ("cancer.csv", "cancer.parquet"):
        loaded = read_table(name, label_column="target")
        assert loaded.x.shape == (569, 30) and loaded.x.dtype == np.float32
        assert loaded.feature_names == tuple(frame.columns[:30])
        assert "target" not in loaded.feature_names
        np.testing.assert_array_equal(loaded.y, frame["target"].to_numpy())
        assert loaded.class_names == () and set(loaded.y.tolist()) == {0, 1}
        np.testing.assert_allclose(loaded.x, frame.iloc[:, :30].to_numpy(np.float32), rtol=1e-6)
    assert loaded.source == "parquet:cancer.parquet (569 rows, 30 columns, label 'target')"
    assert read_table("cancer.csv", label_column="target").source == (
        "csv:cancer.csv (569 rows, 30 columns, label 'target')")


def test_co2_series_with_missing_weeks(here):
    """statsmodels' weekly Mauna Loa CO2 (2,284 weeks, 59 missing; the first at week 7)."""
    from statsmodels.datasets import co2

    frame = co2.load_pandas().data
    frame.to_csv("co2.csv", index_label="week")  # the date column is not numeric: left out
    assert fails(read_series, "missing value", "co2.csv", window=52) == (
        "co2.csv: missing value at row 7, column 'co2': set data.missing to mean, zero, interpolate or drop")
    loaded = read_series("co2.csv", missing="interpolate", window=52, stride=4)
    assert loaded.feature_names == ("co2",)
    # 2,284 rows: round(2284 × 0.8) = 1,827 training rows, 457 test rows.
    assert loaded.x.shape == ((1827 - 52) // 4 + 1, 52, 1)
    assert loaded.x_test.shape == ((457 - 52) // 4 + 1, 52, 1)
    assert np.isfinite(loaded.x).all() and np.isfinite(loaded.x_test).all()
    v = frame["co2"].to_numpy()
    assert np.isnan(v[6]) and not np.isnan(v[5]) and not np.isnan(v[7])
    np.testing.assert_allclose(loaded.x[0, 6, 0], (v[5] + v[7]) / 2, rtol=1e-6)  # week 7, between
    np.testing.assert_allclose(loaded.x[1, :, 0], np.interp(np.arange(4, 56), np.flatnonzero(~np.isnan(v)),
                                                            v[~np.isnan(v)]), rtol=1e-6)
    np.testing.assert_allclose(loaded.x_test[-1, -1, 0], v[1827 + (457 - 52) // 4 * 4 + 51], rtol=1e-6)


def test_a_numeric_column_with_a_bad_cell_is_named_not_dropped(tmp_path):
    """Without data.columns, a column of numbers with one stray text cell is not silently left
    out of the features: the cell is named."""
    path = tmp_path / "sensors.csv"
    path.write_text("temp,pressure,label\n20.5,1.01,a\n21.0,n/a?,b\n19.8,0.99,a\n20.1,1.02,b\n")
    with pytest.raises(DataError) as info:
        read_table(str(path), label_column="label")
    message = str(info.value)
    assert "sensors.csv: column 'pressure' is numeric but row 2 holds 'n/a?'" in message and "\n" not in message
    # A text column (most cells not numbers) is still simply not a feature.
    path.write_text("temp,city\n20.5,Paris\n21.0,Oslo\n19.8,3\n")
    assert read_table(str(path)).feature_names == ("temp",)
