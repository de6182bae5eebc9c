"""Small real datasets that ship inside installed packages, read offline (no TensorFlow).

    digits         scikit-learn's 1,797 handwritten digits, 8×8 grayscale, values 0..16, 10 classes
                   (the UCI optical-recognition test set); images, scaled by 1/16 in the model.
    breast_cancer  scikit-learn's Wisconsin diagnostic table: 569 rows, 30 numeric features,
                   label 0 = malignant, 1 = benign; a table, standardized in the model.
    sunspots       statsmodels' yearly sunspot numbers 1700-2008 (309 rows, column SUNACTIVITY);
                   a series cut into `data.window` rows (default 11, about one solar cycle).
    co2            statsmodels' weekly CO2 at Mauna Loa 1958-2001 (2,284 rows, 59 missing: set
                   data.missing); a series, default window 52 (one year).

They go through the same readers as a user's own files (`zoo.data.tables`), so the missing-value
rules, windows and errors are the same.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from zoo.data.catalog import BUNDLED, DEFAULT_WINDOWS, PRETTY
from zoo.data.examples import Loaded


def load_bundled(name: str, data) -> Loaded:
    """The examples of bundled dataset `name` read with the `DataConfig` `data`'s options.

    Raises:
        ValueError: an unknown name.
        DataError: as the readers raise it (e.g. co2's missing values with missing = "refuse").
    """
    from zoo.data import tables

    if name not in BUNDLED:
        raise ValueError(f"Unknown bundled dataset {name!r}. Known: {', '.join(BUNDLED)}")
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = bunch.images.astype(np.float32)[..., None]  # (1797, 8, 8, 1), values 0..16
        return Loaded(x=x, y=bunch.target.astype(np.int64), kind="images", value_range=16.0,
                      class_names=tuple(str(c) for c in bunch.target_names),
                      source=f"sklearn:digits ({len(x):,} images of 8×8×1, 10 classes)")
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        bunch = load_breast_cancer(as_frame=True)
        frame = bunch.frame
        loaded = tables.read_table(name, columns=tuple(data.columns), label_column=data.label_column or "target",
                                   missing=data.missing, frame=frame)
        return dataclasses.replace(loaded, class_names=tuple(str(c) for c in bunch.target_names),
                                   source="sklearn:" + loaded.source.split(":", 1)[1])
    import statsmodels.datasets as sm

    frame = sm.sunspots.load_pandas().data[["SUNACTIVITY"]] if name == "sunspots" else sm.co2.load_pandas().data
    frame = frame.reset_index(drop=True)
    loaded = tables.read_series(name, columns=tuple(data.columns), missing=data.missing,
                                window=data.window or DEFAULT_WINDOWS[name], stride=data.stride,
                                test_fraction=data.test_fraction, frame=frame)
    return dataclasses.replace(loaded, source=f"statsmodels:{PRETTY[name]} " + loaded.source.split(" ", 1)[1])
