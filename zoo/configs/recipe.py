"""Recipes: TOML files validated into typed configs, with one-line errors naming file and key.

A recipe has three tables. `[model]` holds `family` and that family's hyperparameters, checked
by its `HParams` dataclass (`zoo.configs.families`); `[data]` maps to `DataConfig` and `[train]`
to `TrainConfig`. A recipe may start from another: `base = "denoising_gaussian.toml"` (a path
relative to the recipe, or a shipped recipe's name) loads that one first and overlays this
file's keys table by table; a table that sets `family` or `kind` replaces the base's table
instead of merging into it. Checking a recipe builds no model and imports no TensorFlow; the
model's size is estimated from the hyperparameters and refused when it could not fit in memory.

Example:
    >>> recipe = zoo.load_recipe("recipes/vae.toml", overrides=["train.epochs=5"])
    >>> run = zoo.fit(recipe)
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from pathlib import Path

import tomli_w

from zoo import registry
from zoo.configs import shipped
from zoo.configs.schema import HParams, param
from zoo.data.catalog import (BINARIZATIONS, BUNDLED, COLOR_MODES, DATASETS, FORMATS, MISSING, SOURCES, TRAIN_SIZES,
                              kind_of, known_shape)

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "cosine", "exponential")
STRATEGY_NAMES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
LOOPS = ("auto", "fit", "custom")
TOP_KEYS = ("name", "description", "base", "model", "data", "train")
#: Bytes per parameter while training: float32 weights, gradients and Adam's two moments.
TRAINING_BYTES_PER_PARAMETER = 16
MAX_BASE_DEPTH = 8


class RecipeError(ValueError):
    """A recipe that cannot be used; the message is one line naming the file and the key."""


#: `check_model_for_data` without a check of the labels.
NOT_CHECKED = object()


@dataclasses.dataclass(frozen=True)
class DataConfig(HParams):
    """Where the examples come from and how they are prepared (docs/data.md).

    Attributes:
        dataset: a built-in dataset: fashion_mnist, mnist, cifar10 (images in [0, 1]); digits,
            breast_cancer, sunspots, co2 (real data bundled with scikit-learn and statsmodels);
            or, with source = "tfds", any TensorFlow Datasets image dataset by name.
        path: your own data instead: a folder of images (PNG, JPEG, BMP, GIF; class subfolders
            are labels; train/ and test/ subfolders are the splits), a .npy/.npz file, or a
            .csv/.parquet table (a series when `window` is set). Relative to the working directory.
        format: auto (decided by the path), images, arrays, table or series.
        test_path: a separate test folder or file ("" = a test/ subfolder, else `test_fraction`).
        test_fraction: the seeded fraction held out for testing when no test split is given (the
            last rows of a series).
        validation_size: examples held out of the training split for validation: a count (0 =
            none), a fraction in (0, 1), or "auto" (5000 of the catalog's image datasets, 10%
            of any other data).
        data_dir: a directory of IDX files that overrides the search ("" = search).
        source: auto, idx or tfds (the catalog's image datasets).
        binarize: none, static (sampled once) or dynamic (resampled every batch); the catalog's
            image datasets only.
        image_size: [H, W] to resize every image of a folder to ([] = their own, common size).
        color_mode: auto, grayscale or rgb (images of a folder).
        x_key: the examples' array in an .npz ("" = "x", or its only array).
        labels: labels of arrays: an .npz key or a .npy file ("" = the .npz's "y" if present).
        columns: feature columns of a table or series ([] = every numeric column but the label).
        label_column: a table's label column ("" = none).
        missing: what to do with missing values: refuse, mean, zero, interpolate or drop.
        normal_labels: one-class training: the fit and validation splits keep only examples with
            these labels (ints or class names), the test split keeps every example, and `zoo score`
            counts the others as anomalies ([] = train on everything).
        window: a series' window length (>= 2); 0 reads a table (for the bundled series: their
            default window, 11 years of sunspots, 52 weeks of CO2).
        stride: rows between the starts of consecutive windows.
    """

    dataset: str = param("fashion_mnist")
    path: str = param("")
    format: str = param("auto", choices=FORMATS)
    test_path: str = param("")
    test_fraction: float = param(0.2, low=0.0, high=1.0, low_open=True, high_open=True)
    validation_size: int | float | str = param("auto", low=0)
    data_dir: str = param("")
    source: str = param("auto", choices=SOURCES)
    binarize: str = param("none", choices=BINARIZATIONS)
    image_size: tuple[int, ...] = param((), item_low=1)
    color_mode: str = param("auto", choices=COLOR_MODES)
    x_key: str = param("")
    labels: str = param("")
    columns: tuple[str, ...] = param(())
    label_column: str = param("")
    missing: str = param("refuse", choices=MISSING)
    normal_labels: tuple[int | str, ...] = param(())
    window: int = param(0, low=0)
    stride: int = param(1, low=1)

    def check(self) -> None:
        v = self.validation_size
        if isinstance(v, str) and v != "auto":
            raise ValueError(f"validation_size must be a count >= 0, a fraction in (0, 1) or \"auto\". "
                             f"Received: validation_size={v!r}")
        if isinstance(v, float) and not 0 < v < 1:
            raise ValueError(f"validation_size as a fraction must be in (0, 1). Received: validation_size={v!r}")
        if self.image_size and len(self.image_size) != 2:
            raise ValueError(f"image_size must be [H, W] (or []). Received: image_size={list(self.image_size)}")
        if self.test_path and not self.path:
            raise ValueError("test_path needs path (your own data); the built-in datasets have their own test split")
        kind = self.kind
        if kind == "series" and self.window < 2 and not (self.window == 0 and self.dataset in BUNDLED and not self.path):
            raise ValueError(f"window must be >= 2 for a series (the rows of one example). Received: window={self.window}")
        if kind != "series" and self.window:
            raise ValueError(f"window applies to series (a .csv/.parquet path or format = \"series\"); "
                             f"this data is {kind}. Received: window={self.window}")
        if self.path or self.dataset in BUNDLED:
            if self.binarize != "none":
                raise ValueError(f"binarize applies to the catalog's image datasets ({', '.join(DATASETS)}); this "
                                 f"data is scaled or standardized inside the model. Received: binarize={self.binarize!r}")
        if not self.path:
            if self.source != "tfds" and self.dataset not in DATASETS + tuple(BUNDLED):
                raise ValueError(f"dataset must be one of {', '.join(DATASETS + tuple(BUNDLED))} (or any TensorFlow "
                                 f"Datasets image dataset with source = \"tfds\"), or set path to your own data. "
                                 f"Received: dataset={self.dataset!r}")
            n = TRAIN_SIZES.get(self.dataset)
            if n and isinstance(v, int) and v >= n:
                raise ValueError(f"validation_size must leave training examples: {self.dataset} has {n}, so at most "
                                 f"{n - 1}. Received: validation_size={v}")

    @property
    def kind(self) -> str:
        """images, table, series, or arrays (decided by the arrays' shape when read)."""
        try:
            return kind_of(self.dataset, self.path, self.format, self.window)
        except ValueError as e:
            raise ValueError(f"path: {e}") from None

    @property
    def input_shape(self):
        """The per-example shape if the recipe alone decides it, else None (own data, TFDS by name)."""
        if self.path and self.format not in ("auto", "images"):
            return None
        return known_shape(self.dataset, self.path, self.window, tuple(self.image_size), self.color_mode)


@dataclasses.dataclass(frozen=True)
class TrainConfig(HParams):
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
            for the process (never where a GPU is visible); the same gradient as the whole batch
            (`zoo.training.sharding`). "auto" picks by device at fit time: 2 on a 2-core CPU, else 1.
        early_stopping_patience: epochs without improvement before stopping (0 = never).
        max_minutes: training time budget of one session in minutes (0 = none); training stops
            after the last epoch that is expected to end within it.
        loop: auto (the custom loop where `Model.fit` fails or miscounts steps, see
            `zoo.training.trainer.use_custom_loop`; `Model.fit` otherwise), fit, or custom
            (`zoo.training.loops.fit_custom_loop`, which drives Keras's train_step under any strategy).
    """

    epochs: int = param(10, low=1)
    batch_size: int = param(128, low=1)
    steps_per_epoch: int = param(0, low=0)
    optimizer: str = param("adam", choices=OPTIMIZERS)
    learning_rate: float = param(1e-3, low=0.0, low_open=True)
    lr_schedule: str = param("constant", choices=SCHEDULES)
    weight_decay: float = param(0.0, low=0.0)
    clipnorm: float = param(0.0, low=0.0)
    strategy: str = param("auto", choices=STRATEGY_NAMES)
    seed: int = param(0, low=0, high=2 ** 31 - 1)
    jit_compile: bool = param(False)
    mixed_precision: str = param("float32", choices=PRECISIONS)
    steps_per_execution: int = param(1, low=1)
    batch_shards: int | str = param("auto", low=1)
    early_stopping_patience: int = param(0, low=0)
    max_minutes: float = param(0.0, low=0.0)
    loop: str = param("auto", choices=LOOPS)

    def check(self) -> None:
        if isinstance(self.batch_shards, str) and self.batch_shards != "auto":
            raise ValueError(f"batch_shards must be an integer >= 1 or \"auto\". "
                             f"Received: batch_shards={self.batch_shards!r}")
        if self.loop == "fit" and self.strategy == "multi_worker":
            raise ValueError("loop 'fit' does not work under strategy 'multi_worker' (Keras 3's Model.fit fails "
                             "there, keras-team/keras#20585): use loop = \"auto\" or \"custom\"")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A registered family and its checked hyperparameters.

    Attributes:
        family: the registered name.
        hparams: the family's `HParams` instance (every key, defaults filled in).
        params: the keys the recipe set, as plain data (what `to_toml` writes back).
    """

    family: str
    hparams: HParams
    params: dict = dataclasses.field(default_factory=dict)

    def build(self, input_shape, preprocessing=None):
        """Builds the model for examples of `input_shape` in raw units that `preprocessing` maps to
        the model's (`zoo.layers.preprocessing`; None: none). Imports the family's module."""
        return registry.build(self.family, input_shape=tuple(input_shape), preprocessing=preprocessing,
                              **self.hparams.to_dict())


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
    def input_shape(self):
        """The per-example shape when the recipe decides it; None for own data (known once read)."""
        return self.data.input_shape

    def to_dict(self) -> dict:
        """The resolved recipe as plain data (what `to_toml` writes)."""
        out = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["model"] = {"family": self.model.family, **self.model.params}
        out["data"] = self.data.to_dict()
        out["train"] = self.train.to_dict()
        return out

    def to_toml(self) -> str:
        """The resolved recipe as TOML; loading it gives an equal recipe."""
        return tomli_w.dumps(self.to_dict())

    def replace(self, section: str, **values) -> "Recipe":
        """A copy with `values` replacing keys of `section` ("model", "data" or "train")."""
        return parse_recipe(_set_many(self.to_dict(), section, values), self.path or "<recipe>")


def list_recipes() -> list[str]:
    """Names of the recipes shipped with the package (the repository's `recipes/`)."""
    return shipped.list_recipes()


def resolve_recipe_path(name_or_path, relative_to: Path | None = None) -> Path:
    """A recipe file from a path (relative to `relative_to` if given), or a shipped recipe's name."""
    path = Path(name_or_path)
    if relative_to is not None and not path.is_absolute():
        candidate = relative_to / path
        if candidate.is_file():
            return candidate
    if path.is_file():
        return path
    if path.suffix in ("", ".toml"):
        found = shipped.shipped_recipe(path.stem if path.suffix else str(name_or_path))
        if found is not None and path.parent == Path("."):
            return found
    raise FileNotFoundError(
        f"No recipe file {str(name_or_path)!r}. Known recipes: {', '.join(list_recipes()) or 'none'}"
    )


def read_toml(path: Path) -> dict:
    """A TOML file as plain data; RecipeError naming the file for unreadable or malformed ones."""
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RecipeError(f"{path}: not UTF-8 text (byte {e.start}); save the recipe as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: malformed TOML: {e}") from None
    except OSError as e:
        raise RecipeError(f"{path}: cannot read the recipe: {e.strerror}") from None


def read_recipe(path: Path, _seen=()) -> dict:
    """The recipe's plain data with its `base` chain resolved (the file's own keys win)."""
    raw = read_toml(path)
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise RecipeError(f"{path}: base must be a string (a recipe file or name). Received: base={base!r}")
    try:
        base_path = resolve_recipe_path(base, relative_to=path.parent)
    except FileNotFoundError as e:
        raise RecipeError(f"{path}: base: {e}") from None
    if base_path.resolve() in _seen or len(_seen) >= MAX_BASE_DEPTH:
        raise RecipeError(f"{path}: base {base!r} makes a cycle of recipes (or a chain deeper than {MAX_BASE_DEPTH})")
    parent = read_recipe(base_path, (*_seen, path.resolve()))
    parent.pop("name", None)  # a recipe is named after its own file
    return overlay(parent, raw)


def overlay(base: dict, top: dict) -> dict:
    """`top` over `base`, table by table; a table of `top` that sets `family` or `kind` replaces
    the base's table (another family or noise shares none of its keys)."""
    out = _copy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not (
                {"family", "kind"} & set(value) and any(value.get(k) != out[key].get(k) for k in ("family", "kind")
                                                        if k in value)):
            out[key] = overlay(out[key], value)
        else:
            out[key] = _copy(value)
    return out


#: Keys of [data] that name or describe one source; `with_data` drops them, and keeps the others
#: (window, stride, missing, image_size, color_mode, test_fraction, validation_size).
SOURCE_KEYS = ("dataset", "path", "format", "test_path", "data_dir", "source", "binarize", "x_key", "labels",
               "columns", "label_column")


def data_table(source: str) -> dict:
    """The [data] keys that select `source`: an existing file or folder (your own data), a
    built-in dataset's name, or "tfds:NAME" (any TensorFlow Datasets image dataset).

    Raises:
        RecipeError: none of these.
    """
    if os.path.exists(source):
        return {"path": str(source)}
    if source.startswith("tfds:") and len(source) > 5:
        return {"dataset": source[5:], "source": "tfds"}
    if source in DATASETS or source in BUNDLED:
        return {"dataset": source}
    raise RecipeError(f"--data: no file or folder {source!r}, and not a dataset name; the datasets: "
                      f"{', '.join(DATASETS + tuple(BUNDLED))}, or tfds:NAME")


def data_config(source: str, settings=(), where: str = "--data") -> DataConfig:
    """The `DataConfig` reading `source` (`data_table`) with `KEY=VALUE` settings applied (values
    read as TOML, e.g. "window=52"), every other key at its default.

    Raises:
        RecipeError: a bad source, setting or value, in one line.
    """
    raw = {"data": data_table(source)}
    for setting in settings:
        if "=" not in setting:
            raise RecipeError(f"{where}: a [data] setting is KEY=VALUE (e.g. window=52). Received: {setting!r}")
        raw = apply_override(raw, f"data.{setting}", where)
    return _section(DataConfig, raw["data"], "data", where)


def with_data(raw: dict, source: str) -> dict:
    """Recipe data whose [data] table reads `source` (see `data_table`): the keys of the recipe's
    own source are dropped, its window, stride, missing-value rule, image size, colour mode and
    split sizes kept."""
    raw = _copy(raw)
    data = {k: v for k, v in (raw.get("data") or {}).items() if k not in SOURCE_KEYS}
    raw["data"] = {**data_table(source), **data}
    return raw


def load_recipe(name_or_path, overrides=(), data: str | None = None) -> Recipe:
    """Loads and validates a recipe file, applying `section.key=value` overrides.

    Args:
        name_or_path: a recipe file or a shipped recipe's name.
        overrides: `section.key=value` strings (`zoo fit --set`), applied last.
        data: train on this instead of the recipe's data: a file or folder of your own, or a
            dataset's name (`with_data`; `zoo fit --data`).

    Raises:
        FileNotFoundError: no such file or shipped recipe.
        RecipeError: malformed TOML, unknown keys, wrong types or out-of-range values.
    """
    path = resolve_recipe_path(name_or_path)
    raw = read_recipe(path)
    if data is not None:
        raw = with_data(raw, data)
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
    """Validates plain recipe data (as read from TOML) into a `Recipe`; builds no model."""
    raw = _copy(raw)
    raw.pop("base", None)
    unknown = set(raw) - set(TOP_KEYS)
    if unknown:
        raise RecipeError(f"{where}: unknown key {sorted(unknown)[0]!r}. Allowed: {', '.join(TOP_KEYS)}")
    for section in ("model", "data", "train"):
        if not isinstance(raw.get(section, {}), dict):
            raise RecipeError(f"{where}: [{section}] must be a table")
    name = raw.get("name", Path(where).stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise RecipeError(f"{where}: name must be letters, digits, '_', '-' or '.'. Received: name={name!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise RecipeError(f"{where}: description must be a string. Received: description={description!r}")
    data = _section(DataConfig, raw.get("data", {}), "data", where)
    train = _section(TrainConfig, raw.get("train", {}), "train", where)
    model = _model_from(raw.get("model", {}), data.input_shape, where)
    if train.batch_shards != "auto" and train.batch_shards > 1 and not model.hparams.per_example_objective:
        raise RecipeError(f"{where}: train.batch_shards must be 1 for model '{model.family}', whose objective uses "
                          f"statistics of the whole batch. Received: train.batch_shards={train.batch_shards}")
    return Recipe(name=name, model=model, data=data, train=train, path=where, description=description)


def _section(cls, values: dict, section: str, where: str):
    """`cls(**values)` with every failure as one line naming `section.key`."""
    allowed = cls.keys()
    for key in values:
        if key not in allowed:
            raise RecipeError(f"{where}: unknown key {section}.{key}. Allowed: {', '.join(allowed)}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{where}: {section}.{e}") from None


def _model_from(values: dict, input_shape, where: str) -> ModelConfig:
    values = dict(values)
    family = values.pop("family", None)
    known = registry.list_models()
    if family is None:
        raise RecipeError(f"{where}: model.family is required. Known: {', '.join(known)}")
    if not isinstance(family, str) or family not in known:
        raise RecipeError(f"{where}: model.family: Unknown model {family!r}. Known: {', '.join(known)}")
    if "input_shape" in values:
        given = values.pop("input_shape")
        if not isinstance(given, list) or (input_shape is not None and [*given] != [*input_shape]):
            raise RecipeError(f"{where}: model.input_shape must be the data's shape {list(input_shape)} (or "
                              f"omitted). Received: model.input_shape={given!r}")
    hparams = _section(registry.hparams_class(family), values, "model", where)
    model = ModelConfig(family=family, hparams=hparams, params=_copy(values))
    if input_shape is not None:  # own data: checked by `check_model_for_data` once it is read
        check_model_for_data(model, input_shape, None, where)
    return model


def check_model_for_data(model: ModelConfig, input_shape, bounded, where: str, labels=NOT_CHECKED) -> None:
    """RecipeError when the model cannot take examples of `input_shape` (or, `bounded` not None,
    of those units: False for standardized tables and series; or, `labels` given, the data's
    labels, None when it has none: a conditional model needs them), or could not fit in memory."""
    try:
        model.hparams.check_shape(tuple(input_shape))
        if bounded is not None:
            model.hparams.check_units(bounded)
    except ValueError as e:
        raise RecipeError(f"{where}: model.{e} (the data's examples have shape {tuple(input_shape)})") from None
    if labels is not NOT_CHECKED:
        try:
            model.hparams.check_labels(labels)
        except ValueError as e:
            raise RecipeError(f"{where}: model.{e}" if str(e).startswith("num_classes") else f"{where}: {e}") from None
    check_fits_in_memory(model.hparams, tuple(input_shape), where)


def check_fits_in_memory(hparams: HParams, input_shape, where: str) -> None:
    """RecipeError when the estimated training memory of the model exceeds this machine's RAM."""
    count = hparams.parameter_count(input_shape)
    need = count * TRAINING_BYTES_PER_PARAMETER
    have = physical_memory()
    if have and need > have:
        raise RecipeError(f"{where}: [model] would have {count:,} parameters, about {need / 2 ** 30:.1f} GiB to "
                          f"train (weights, gradients, Adam's moments) on a machine with {have / 2 ** 30:.1f} GiB; "
                          f"reduce model.code_size or model.hidden")


def physical_memory() -> int:
    """This machine's RAM in bytes (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def apply_overrides(raw: dict, overrides, where: str) -> dict:
    for override in overrides:
        raw = apply_override(raw, override, where)
    return raw


def _set_many(raw: dict, section: str, values: dict) -> dict:
    raw = _copy(raw)
    raw.setdefault(section, {}).update(_copy(values))
    return raw


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


def dumps_toml(data: dict) -> str:
    """Plain data as TOML (tomli-w): nested tables stay nested, so the text reloads equal."""
    return tomli_w.dumps(data)
