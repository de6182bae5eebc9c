"""A recipe's splits: fit, validation and test arrays, binarized as the recipe says."""

from __future__ import annotations

from zoo.data.sources import binarize_static, check_finite, load_arrays


def load_splits(data, input_shape, seed: int):
    """(x_fit, x_val, x_test, arrays) of a `DataConfig`, checked against the model's input shape.

    The last `data.validation_size` training examples are held out for validation. With
    binarize="static" the training set is sampled once with `seed` and the test set with
    seed + 1; with "dynamic" only the test set (seed + 1) and the validation set (seed + 2) are
    sampled once, so that evaluations are comparable, while training batches are resampled by
    the pipeline.

    Raises:
        ValueError: the data's shape differs from `input_shape`, non-finite values, or a
            validation split that leaves no training example.
    """
    arrays = load_arrays(data.dataset, data_dir=data.data_dir or None, source=data.source)
    if tuple(arrays.input_shape) != tuple(input_shape):
        raise ValueError(f"Data shape {arrays.input_shape} does not match the model input {tuple(input_shape)}")
    check_finite(arrays.x_train, "x_train")
    check_finite(arrays.x_test, "x_test")
    x_train, x_test = arrays.x_train, arrays.x_test
    n_val = data.validation_size
    if n_val >= len(x_train):
        raise ValueError(f"data.validation_size = {n_val} leaves no training example: {data.dataset} has "
                         f"{len(x_train)} training examples; use at most {len(x_train) - 1}")
    if data.binarize == "static":
        x_train = binarize_static(x_train, seed)
        x_test = binarize_static(x_test, seed + 1)
    elif data.binarize == "dynamic":
        x_test = binarize_static(x_test, seed + 1)
    x_val = x_train[len(x_train) - n_val:] if n_val else None
    x_fit = x_train[: len(x_train) - n_val] if n_val else x_train
    if x_val is not None and data.binarize == "dynamic":
        x_val = binarize_static(x_val, seed + 2)
    return x_fit, x_val, x_test, arrays
