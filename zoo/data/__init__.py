"""Data: the catalog (names and shapes, no TensorFlow), sources that load arrays, splits and pipelines."""
