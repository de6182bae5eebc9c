"""The model registry: families register themselves where they are defined.

Example:
    >>> import zoo
    >>> zoo.list_models()
    ['basic', 'denoising', 'sparse', 'stacked', 'vae']
    >>> model = zoo.build("sparse", input_shape=(28, 28, 1), code_size=196, rho=0.05)
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, TypeVar

T = TypeVar("T", bound=type)

_MODELS: dict[str, type] = {}


def register(name: str) -> Callable[[T], T]:
    """Class decorator that makes a model family buildable by `name`."""

    def decorate(cls: T) -> T:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"Model family '{name}' is already registered by {_MODELS[name].__name__}")
        _MODELS[name] = cls
        cls.family = name
        return cls

    return decorate


def list_models() -> list[str]:
    """Names of the registered model families, sorted."""
    _load_builtin()
    return sorted(_MODELS)


def get(name: str) -> type:
    """The class registered as `name`; ValueError listing the known names otherwise."""
    _load_builtin()
    if name not in _MODELS:
        raise ValueError(f"Unknown model '{name}'. Known: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


# Arguments every Keras model takes besides its own hyperparameters.
KERAS_MODEL_ARGUMENTS = ("name", "trainable", "dtype")


def hyperparameters(name: str) -> dict[str, Any]:
    """A family's hyperparameters and their defaults: its constructor's named arguments."""
    return {key: p.default for key, p in inspect.signature(get(name).__init__).parameters.items()
            if p.kind is p.POSITIONAL_OR_KEYWORD and key != "self"}


def build(family: str, /, **hparams):
    """Builds a registered family from its hyperparameters (its constructor arguments).

    Raises:
        ValueError: an unknown family, or an argument the family does not take (rather than
            silently ignoring it), naming what is allowed.
    """
    known = hyperparameters(family)
    for key in hparams:
        if key not in known and key not in KERAS_MODEL_ARGUMENTS:
            raise ValueError(f"Unknown argument '{key}' for model '{family}'. "
                             f"Allowed: {', '.join([*known, *KERAS_MODEL_ARGUMENTS])}")
    return get(family)(**hparams)


def _load_builtin() -> None:
    # Importing the package registers the built-in families; done lazily so that
    # `zoo.registry` itself has no TensorFlow import cost.
    import zoo.models  # noqa: F401
