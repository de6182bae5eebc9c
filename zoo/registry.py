"""One generic registry: model families, hyperparameter schemas, noises, strategies and CLI commands.

Each entry is registered where it is defined (`@register("sparse")`) or, for the built-in
families, named lazily as "module:attribute" so that listing names imports nothing heavy.
Looking up an unknown name fails with the list of what exists.

Example:
    >>> import zoo
    >>> zoo.list_models()
    ['basic', 'denoising', 'sparse', 'stacked', 'vae']
    >>> model = zoo.build("sparse", input_shape=(28, 28, 1), code_size=196, rho=0.05)
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Names → objects, some of them imported on first lookup.

    Args:
        kind: what the entries are, for error messages ("model", "noise", ...).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def add(self, name: str, obj: T) -> T:
        """Registers `obj` as `name`; registering another object under a taken name is an error."""
        current = self._entries.get(name)
        if current is not None and current is not obj and not isinstance(current, str):
            raise ValueError(f"{self.kind.capitalize()} '{name}' is already registered "
                             f"({getattr(current, '__name__', current)})")
        self._entries[name] = obj
        return obj

    def add_lazy(self, name: str, target: str) -> None:
        """Registers "module:attribute", imported on the first `get(name)`."""
        self._entries.setdefault(name, target)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""
        return lambda obj: self.add(name, obj)

    def get(self, name: str) -> T:
        """The object registered as `name`; ValueError listing the known names otherwise."""
        if name not in self._entries:
            raise ValueError(f"Unknown {self.kind} {name!r}. Known: {', '.join(self.names())}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = getattr(importlib.import_module(module), attribute)
            self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, object) in the order of registration, lazy entries imported."""
        return [(name, self.get(name)) for name in self._entries]

    def __contains__(self, name) -> bool:
        return name in self._entries


#: Model families: name → the `keras.Model` subclass (built-ins imported on first use).
FAMILIES: Registry = Registry("model")
#: Their hyperparameter schemas: name → a `zoo.configs.schema.HParams` dataclass (no TensorFlow).
HPARAMS: Registry = Registry("model")

_BUILTIN = {"basic": "basic:BasicAutoencoder", "stacked": "stacked:StackedAutoencoder",
            "sparse": "sparse:SparseAutoencoder", "denoising": "denoising:DenoisingAutoencoder",
            "vae": "vae:VariationalAutoencoder", "cvae": "cvae:ConditionalVariationalAutoencoder",
            "vqvae": "vqvae:VQVAE"}
for _name, _target in _BUILTIN.items():
    FAMILIES.add_lazy(_name, f"zoo.models.{_target}")


def register(name: str, hparams=None):
    """Class decorator that makes a model family buildable and checkable by `name`.

    The family's hyperparameter dataclass is `hparams` or the class's `HParams` attribute;
    recipes are checked against it without building the model.
    """

    def decorate(cls):
        schema = hparams or cls.__dict__.get("HParams") or getattr(cls, "HParams", None)
        FAMILIES.add(name, cls)
        if schema is not None:
            HPARAMS.add(name, schema)
            cls.per_example_objective = schema.per_example_objective
        cls.family = name
        return cls

    return decorate


def list_models() -> list[str]:
    """Names of the registered model families, sorted."""
    _load_builtin_schemas()
    return FAMILIES.names()


def get(name: str) -> type:
    """The model class registered as `name`."""
    return FAMILIES.get(name)


def hparams_class(name: str):
    """The hyperparameter dataclass of family `name` (no TensorFlow for the built-ins)."""
    _load_builtin_schemas()
    if name not in HPARAMS and name in FAMILIES:
        FAMILIES.get(name)  # a family registered lazily elsewhere registers its schema on import
    return HPARAMS.get(name)


def hyperparameters(name: str) -> dict[str, Any]:
    """A family's hyperparameters and their defaults (its `HParams` fields), with `input_shape`
    and `preprocessing` (the data's, `zoo.layers.preprocessing`)."""
    import dataclasses

    fields = [f for f in dataclasses.fields(hparams_class(name)) if f.init]
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory() for f in fields}
    return {"input_shape": None, **defaults, "preprocessing": None}


# Arguments every Keras model takes besides its own hyperparameters.
KERAS_MODEL_ARGUMENTS = ("name", "trainable", "dtype")


def build(family: str, /, **hparams):
    """Builds a registered family from its hyperparameters (its constructor arguments).

    Raises:
        ValueError: an unknown family, or an argument the family does not take (rather than
            silently ignoring it), naming what is allowed.
    """
    known = list(hyperparameters(family))
    for key in hparams:
        if key not in known and key not in KERAS_MODEL_ARGUMENTS:
            raise ValueError(f"Unknown argument '{key}' for model '{family}'. "
                             f"Allowed: {', '.join([*known, *KERAS_MODEL_ARGUMENTS])}")
    return get(family)(**hparams)


def _load_builtin_schemas() -> None:
    importlib.import_module("zoo.configs.families")  # registers the built-in schemas (TF-free)
    importlib.import_module("zoo.configs.vqvae")
