"""Recipes: TOML files validated into typed configs, with one-line errors naming file and key.

A recipe has three tables. `[model]` holds `family` and that family's constructor arguments
(the registered class is the schema: its signature gives the keys, their defaults the types,
its checks the ranges); `[data]` maps to `DataConfig` and `[train]` to `TrainConfig`.

Example:
    >>> recipe = zoo.load_recipe("recipes/vae.toml", overrides=["train.epochs=5"])
    >>> run = recipe.fit()
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

from zoo import registry
from zoo.checks import check_choice, check_range
from zoo.data import BINARIZATIONS, DATASETS, SOURCES

DATASET_SHAPES = {"fashion_mnist": (28, 28, 1), "mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "exponential")
STRATEGY_NAMES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
LOOPS = ("auto", "fit", "custom")
RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


class RecipeError(ValueError):
    """A recipe that cannot be used; the message is one line naming the file and the key."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how they are prepared.

    Attributes:
        dataset: fashion_mnist, mnist or cifar10.
        data_dir: a directory of IDX files that overrides the search ("" = search).
        source: auto, idx or tfds.
        binarize: none, static (sampled once) or dynamic (resampled every batch).
        validation_size: training examples held out for validation (0 = none).
    """

    dataset: str = "fashion_mnist"
    data_dir: str = ""
    source: str = "auto"
    binarize: str = "none"
    validation_size: int = 5000

    def __post_init__(self):
        check_choice("dataset", self.dataset, DATASETS)
        check_choice("source", self.source, SOURCES)
        check_choice("binarize", self.binarize, BINARIZATIONS)
        check_range("validation_size", self.validation_size, 0, 50000)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a model is trained.

    Attributes:
        epochs: passes over the training set.
        batch_size: the global batch, split across replicas.
        steps_per_epoch: 0 = the whole training set; otherwise a short epoch.
        optimizer: adam, adamw, sgd or rmsprop.
        learning_rate: the initial learning rate.
        lr_schedule: constant, cosine (to 0 at the last step) or exponential (×0.1 over the run).
        weight_decay: decoupled weight decay of adamw.
        clipnorm: gradient norm clip (0 = none).
        strategy: auto, one_device, mirrored, multi_worker or tpu.
        seed: seed of weights, shuffling and noise.
        jit_compile: compile the train step with XLA.
        mixed_precision: float32, mixed_float16 or mixed_bfloat16.
        steps_per_execution: train steps per call into the compiled function.
        batch_shards: shards of each batch whose forward and backward passes run side by side,
            one per core, with TensorFlow set to 1 intra-op and `batch_shards` inter-op threads
            for the process; the same gradient as the whole batch (`zoo.sharding`).
        early_stopping_patience: epochs without improvement before stopping (0 = never).
        max_minutes: training time budget of one session in minutes (0 = none); training stops
            after the last epoch that is expected to end within it.
        loop: auto (the custom loop where `Model.fit` fails or miscounts steps, see
            `zoo.trainer.use_custom_loop`; `Model.fit` otherwise), fit, or custom
            (`zoo.loop.fit_custom_loop`, which drives Keras's train_step under any strategy).
    """

    epochs: int = 10
    batch_size: int = 128
    steps_per_epoch: int = 0
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    clipnorm: float = 0.0
    strategy: str = "auto"
    seed: int = 0
    jit_compile: bool = False
    mixed_precision: str = "float32"
    steps_per_execution: int = 1
    batch_shards: int = 1
    early_stopping_patience: int = 0
    max_minutes: float = 0.0
    loop: str = "auto"

    def __post_init__(self):
        check_range("epochs", self.epochs, 1)
        check_range("batch_size", self.batch_size, 1)
        check_range("steps_per_epoch", self.steps_per_epoch, 0)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_range("learning_rate", self.learning_rate, 0.0, low_open=True)
        check_choice("lr_schedule", self.lr_schedule, SCHEDULES)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("clipnorm", self.clipnorm, 0.0)
        check_choice("strategy", self.strategy, STRATEGY_NAMES)
        check_choice("mixed_precision", self.mixed_precision, PRECISIONS)
        check_range("steps_per_execution", self.steps_per_execution, 1)
        check_range("batch_shards", self.batch_shards, 1)
        check_range("early_stopping_patience", self.early_stopping_patience, 0)
        check_range("max_minutes", self.max_minutes, 0.0)
        check_choice("loop", self.loop, LOOPS)
        if self.loop == "fit" and self.strategy == "multi_worker":
            raise ValueError("loop 'fit' does not work under strategy 'multi_worker' (Keras 3's Model.fit fails "
                             "there, keras-team/keras#20585): use loop = \"auto\" or \"custom\"")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A registered family and its hyperparameters (the family's constructor arguments)."""

    family: str
    params: dict = dataclasses.field(default_factory=dict)

    def build(self, input_shape):
        """Builds the model for examples of `input_shape`."""
        return registry.build(self.family, input_shape=tuple(input_shape), **self.params)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A validated recipe: what to build, on which data, trained how.

    Attributes:
        name: the run's name (the file's stem unless the file sets `name`).
        model, data, train: the three tables.
        path: the file it came from ("" if built in code).
        description: free text.
    """

    name: str
    model: ModelConfig
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    path: str = ""
    description: str = ""

    @property
    def input_shape(self) -> tuple:
        return DATASET_SHAPES[self.data.dataset]

    def to_dict(self) -> dict:
        """The resolved recipe as plain data (what `to_toml` writes)."""
        out = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["model"] = {"family": self.model.family, **self.model.params}
        out["data"] = dataclasses.asdict(self.data)
        out["train"] = dataclasses.asdict(self.train)
        return out

    def to_toml(self) -> str:
        """The resolved recipe as TOML; loading it gives an equal recipe."""
        return dumps_toml(self.to_dict())

    def replace(self, section: str, **values) -> "Recipe":
        """A copy with `values` replacing keys of `section` ("model", "data" or "train")."""
        return parse_recipe(_set_many(self.to_dict(), section, values), self.path or "<recipe>")

    def fit(self, epochs: int | None = None, steps_per_epoch: int | None = None, strategy: str | None = None,
            out=None, resume: bool = False, overwrite: bool = False, verbose="auto"):
        """Trains this recipe; see `zoo.trainer.fit`. Returns a `zoo.trainer.Run`."""
        from zoo.trainer import fit

        overrides = {k: v for k, v in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch),
                                       ("strategy", strategy)) if v is not None}
        recipe = self.replace("train", **overrides) if overrides else self
        return fit(recipe, out=out, resume=resume, overwrite=overwrite, verbose=verbose)


def list_recipes(directory=RECIPES_DIR) -> list[str]:
    """Stems of the recipes shipped in `recipes/`."""
    return sorted(p.stem for p in Path(directory).glob("*.toml"))


def resolve_recipe_path(name_or_path) -> Path:
    """A recipe file from a path, or from the name of a shipped recipe (e.g. "vae")."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = RECIPES_DIR / f"{name_or_path}.toml"
    if path.suffix == "" and shipped.is_file():
        return shipped
    raise FileNotFoundError(
        f"No recipe file {str(name_or_path)!r}. Known recipes: {', '.join(list_recipes()) or 'none'} "
        f"(in {RECIPES_DIR})"
    )


def load_recipe(name_or_path, overrides=()) -> Recipe:
    """Loads and validates a recipe file, applying `section.key=value` overrides.

    Raises:
        FileNotFoundError: no such file or shipped recipe.
        RecipeError: malformed TOML, unknown keys, wrong types or out-of-range values.
    """
    path = resolve_recipe_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: malformed TOML: {e}") from None
    for override in overrides:
        raw = apply_override(raw, override, str(path))
    raw.setdefault("name", path.stem)
    return parse_recipe(raw, str(path))


def apply_override(raw: dict, override: str, where: str = "--set") -> dict:
    """Returns `raw` with one `section.key=value` override applied; the value is read as TOML."""
    key, sep, text = override.partition("=")
    keys = key.strip().split(".")
    if not sep or len(keys) < 2 or not all(keys):
        raise RecipeError(f"{where}: --set expects section.key=value (e.g. model.code_size=64). Received: {override!r}")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()  # a bare word is a string: --set model.likelihood=gaussian
    raw = _copy(raw)
    node = raw
    for part in keys[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise RecipeError(f"{where}: cannot set {key}: {part} is not a table")
    node[keys[-1]] = value
    return raw


def parse_recipe(raw: dict, where: str) -> Recipe:
    """Validates plain recipe data (as read from TOML) into a `Recipe`."""
    raw = _copy(raw)
    unknown = set(raw) - {"name", "description", "model", "data", "train"}
    if unknown:
        raise RecipeError(f"{where}: unknown key {sorted(unknown)[0]!r}. Allowed: name, description, model, data, train")
    for section in ("model", "data", "train"):
        if not isinstance(raw.get(section, {}), dict):
            raise RecipeError(f"{where}: [{section}] must be a table")
    name = raw.get("name", Path(where).stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise RecipeError(f"{where}: name must be letters, digits, '_', '-' or '.'. Received: name={name!r}")
    data = _dataclass_from(DataConfig, raw.get("data", {}), "data", where)
    train = _dataclass_from(TrainConfig, raw.get("train", {}), "train", where)
    model = _model_from(raw.get("model", {}), DATASET_SHAPES[data.dataset], where)
    if train.batch_shards > 1 and not registry.get(model.family).per_example_objective:
        raise RecipeError(f"{where}: train.batch_shards must be 1 for model '{model.family}', whose objective uses "
                          f"statistics of the whole batch. Received: train.batch_shards={train.batch_shards}")
    return Recipe(name=name, model=model, data=data, train=train, path=where,
                  description=str(raw.get("description", "")))


def _dataclass_from(cls, values: dict, section: str, where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    checked = {}
    for key, value in values.items():
        if key not in fields:
            raise RecipeError(f"{where}: unknown key {section}.{key}. Allowed: {', '.join(fields)}")
        checked[key] = _check_type(value, fields[key].default, f"{section}.{key}", where)
    try:
        return cls(**checked)
    except ValueError as e:
        raise RecipeError(f"{where}: {_qualify(str(e), section)}") from None


def _model_from(values: dict, input_shape, where: str) -> ModelConfig:
    values = dict(values)
    family = values.pop("family", None)
    if family is None:
        raise RecipeError(f"{where}: model.family is required. Known: {', '.join(registry.list_models())}")
    try:
        cls = registry.get(family)
    except ValueError as e:
        raise RecipeError(f"{where}: model.family: {e}") from None
    defaults = registry.hyperparameters(family)
    if "input_shape" in values and tuple(values["input_shape"]) != tuple(input_shape):
        raise RecipeError(f"{where}: model.input_shape {list(values['input_shape'])} does not match the data's "
                          f"{list(input_shape)}")
    values.pop("input_shape", None)
    params = {}
    for key, value in values.items():
        if key not in defaults or key == "input_shape":
            allowed = ", ".join(k for k in defaults if k != "input_shape")
            raise RecipeError(f"{where}: unknown key model.{key} for family '{family}'. Allowed: family, {allowed}")
        params[key] = _check_type(value, defaults[key], f"model.{key}", where)
    if isinstance(params.get("noise"), dict):
        from zoo.layers.noise import make_noise

        try:
            make_noise(params["noise"])
        except (ValueError, TypeError) as e:
            raise RecipeError(f"{where}: {_qualify(str(e), 'model.noise')}") from None
    try:
        cls(input_shape=tuple(input_shape), **params)  # runs the family's own range checks
    except (ValueError, TypeError) as e:
        raise RecipeError(f"{where}: {_qualify(str(e), 'model')}") from None
    return ModelConfig(family=family, params=params)


def _check_type(value, default, key: str, where: str):
    """Checks `value` against the type of the field's default; ints are accepted for floats."""
    if default is None or default is inspect.Parameter.empty:
        return value
    if isinstance(default, bool):
        ok, expected = isinstance(value, bool), "a boolean (true or false)"
    elif isinstance(default, int):
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, expected = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok, expected = isinstance(value, str), "a string"
    elif isinstance(default, (list, tuple)):
        ok, expected = isinstance(value, list), "a list"
    elif isinstance(default, dict):
        ok, expected = isinstance(value, dict), "a table"
    else:
        return value
    if not ok:
        raise RecipeError(f"{where}: {key} must be {expected}. Received: {key}={value!r}")
    return value


def _qualify(message: str, section: str) -> str:
    """Prefixes the key a check names ("rate must ...") with its section ("model.noise.rate must ...")."""
    return re.sub(r"^(\w+) must", rf"{section}.\1 must", message, count=1)


def _set_many(raw: dict, section: str, values: dict) -> dict:
    raw = _copy(raw)
    raw.setdefault(section, {}).update(values)
    return raw


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def dumps_toml(data: dict) -> str:
    """Writes plain data (tables, strings, numbers, booleans, lists) as TOML."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    out = "\n".join(lines)
    for key, value in tables:
        out += f"\n\n[{key}]\n" + dumps_toml(value).replace("\n\n[", f"\n\n[{key}.")
    return out.strip() + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
