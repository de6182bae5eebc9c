"""Typed hyperparameters: frozen dataclasses whose fields carry their type, range and choices.

A field is declared with `param(default, low=…, high=…, choices=…)`; `HParams.__post_init__`
checks every value against its annotation and its bounds and raises a one-line ValueError
naming the key and what is allowed. Nothing here imports TensorFlow: a recipe is checked
before any model is built.

Example:
    >>> @dataclasses.dataclass(frozen=True)
    ... class Hyper(HParams):
    ...     rate: float = param(0.1, low=0.0, high=1.0, high_open=True)
    >>> Hyper(rate=1.0)
    ValueError: rate must be in [0.0, 1.0). Received: rate=1.0
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

MISSING = dataclasses.MISSING

#: The largest integer any setting may take: counts, sizes and seeds reach TensorFlow as int32.
INT32_MAX = 2**31 - 1


def param(default, *, low=None, high=None, low_open: bool = False, high_open: bool = False, choices=None,
          item_low=None, doc: str = ""):
    """A dataclass field with its bounds: `low`/`high` for numbers, `choices` for strings,
    `item_low` for each item of a tuple of integers."""
    meta = {"low": low, "high": high, "low_open": low_open, "high_open": high_open, "choices": choices,
            "item_low": item_low, "doc": doc}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def describe_type(tp) -> str:
    """The type of a field in words, as the errors say it."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        names = [describe_type(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" (or omitted)" if type(None) in args else "")
    if origin is tuple:
        items = [describe_type(a).removeprefix("an ").removeprefix("a ") for a in typing.get_args(args[0]) or args[:1]]
        return "a list of " + " or ".join(f"{item}s" for item in items)
    return {bool: "a boolean (true or false)", int: "an integer", float: "a number", str: "a string",
            dict: "a table"}.get(tp, getattr(tp, "__name__", str(tp)))


def coerce(value, tp, key: str):
    """`value` converted to the field type `tp` (ints to floats, lists to tuples) or TypeError naming `key`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except TypeError:
                pass
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is dict:
        if isinstance(value, dict):
            return dict(value)
    elif tp is Any:
        return value
    raise TypeError(f"{key} must be {describe_type(tp)}. Received: {key}={value!r}")


def check_bounds(key: str, value, meta) -> None:
    """Raises ValueError if `value` is outside the field's `low`/`high`/`choices`/`item_low`."""
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(map(str, choices))}. Received: {key}={value!r}")
    low, high = meta.get("low"), meta.get("high")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number. Received: {key}={value}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT32_MAX:
        raise ValueError(f"{key} must be an integer of at most {INT32_MAX} in size (TensorFlow's int32). "
                         f"Received: {key}={value}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (low is not None or high is not None):
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if meta.get("low_open") else value >= low
        if ok and high is not None:
            ok = value < high if meta.get("high_open") else value <= high
        if not ok:
            lo = "(-inf" if low is None else ("(" if meta.get("low_open") else "[") + f"{low}"
            hi = "inf)" if high is None else f"{high}" + (")" if meta.get("high_open") else "]")
            raise ValueError(f"{key} must be in {lo}, {hi}. Received: {key}={value!r}")
    if isinstance(value, tuple) and any(isinstance(v, int) and abs(v) > INT32_MAX for v in value):
        raise ValueError(f"{key} must hold integers of at most {INT32_MAX} in size (TensorFlow's int32). "
                         f"Received: {key}={list(value)}")
    item_low = meta.get("item_low")
    if item_low is not None and isinstance(value, tuple) and any(v < item_low for v in value):
        raise ValueError(f"{key} must be a list of integers >= {item_low}. Received: {key}={list(value)}")


@dataclasses.dataclass(frozen=True)
class HParams:
    """Base of every family's hyperparameters: types and bounds checked on construction.

    Attributes:
        per_example_objective: whether the family's objective is a mean over examples plus
            terms of the parameters only, which lets a batch be cut into shards
            (`train.batch_shards`); a family whose objective uses whole-batch statistics sets False.
    """

    per_example_objective: typing.ClassVar[bool] = True

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = coerce(getattr(self, f.name), hints[f.name], f.name)
            check_bounds(f.name, value, f.metadata)
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Checks that involve several fields; families override it."""

    @classmethod
    def keys(cls) -> list[str]:
        """The keys a recipe may set: the constructor arguments (fields fixed by the family excluded)."""
        return [f.name for f in dataclasses.fields(cls) if f.init]

    def to_dict(self) -> dict:
        """Plain data (tuples as lists) for TOML and Keras configs."""
        def plain(v):
            return [plain(x) for x in v] if isinstance(v, (tuple, list)) else dict(v) if isinstance(v, dict) else v

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}

    def parameter_count(self, input_shape) -> int:
        """The number of weights the model will have for `input_shape`, estimated before building."""
        return 0
