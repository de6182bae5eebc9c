"""The model registry: families register themselves where they are defined.

Example:
    >>> import zoo
    >>> zoo.list_models()
    ['basic', 'denoising', 'sparse', 'stacked', 'vae']
    >>> model = zoo.build("sparse", input_shape=(28, 28, 1), code_size=196, rho=0.05)
"""

from __future__ import annotations

from typing import Callable, TypeVar

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


def build(name: str, **hparams):
    """Builds a registered family from its hyperparameters (its constructor arguments)."""
    return get(name)(**hparams)


def _load_builtin() -> None:
    # Importing the package registers the built-in families; done lazily so that
    # `zoo.registry` itself has no TensorFlow import cost.
    import zoo.models  # noqa: F401
