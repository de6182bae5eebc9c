"""The fault-injection corpus: malformed recipes and command lines, generated from the schema.

Every key of every recipe table (each family's `[model]`, the denoising family's `[model.noise]`
kinds, `[data]`, `[train]`) gets a value of the wrong type and, where the key has a range or a
set of choices, one outside it; then syntax errors, encodings and bad flags. Each case is a
`Case(id, argv, files, named)`: the files to write (name → bytes) before running
`zoo ARGV...` in an empty directory, and a fragment the one error line must contain (the key,
flag or file it names).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import tomli_w

from zoo import registry
from zoo.configs.noises import NOISES
from zoo.configs.recipe import DataConfig, TrainConfig

#: The valid recipe every case starts from: one short epoch on the bundled digits (8x8 images),
#: so a mutation the schema wrongly accepted would show up as a (quick) successful run.
BASE_TRAIN = {"epochs": 1, "steps_per_epoch": 1, "batch_size": 8}
BASE_DATA = {"dataset": "digits"}


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    argv: tuple
    files: dict
    named: str  # a fragment of the error line: the key, flag or file it must name


def _base(family: str) -> dict:
    model: dict[str, Any] = {"family": family}
    if family == "denoising":
        model["noise"] = {"kind": "gaussian", "stddev": 0.3}
    return {"model": model, "data": dict(BASE_DATA), "train": dict(BASE_TRAIN)}


def _is_union(tp) -> bool:
    return typing.get_origin(tp) is typing.Union or str(typing.get_origin(tp)) == "<class 'types.UnionType'>"


def wrong_type(tp):
    """A TOML value that is not of field type `tp`, or None where every value is allowed."""
    if tp is Any:
        return None
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return {"a": 1} if any(a is str for a in args) else "abc"  # a table is never a scalar or a list
    if typing.get_origin(tp) is tuple:
        return "abc" if typing.get_args(tp)[0] is not str else [1, 2]
    return {bool: "yes", int: "abc", float: "abc", str: 12, dict: 12}.get(tp, {"a": 1})


def out_of_range(tp, meta):
    """A value of the right type outside the field's range or choices, or None if it has neither."""
    if meta.get("choices"):
        return "nope"
    low, high = meta.get("low"), meta.get("high")
    if meta.get("item_low") is not None:
        return [meta["item_low"] - 1]
    number = tp if tp in (int, float) else next((a for a in typing.get_args(tp) if a in (int, float)), None)
    if number is None:
        return None
    if low is not None:
        return low if meta.get("low_open") else (low - 1 if number is int else low - 0.5)
    if high is not None:
        return high if meta.get("high_open") else high + 1
    return 2**40 if number is int else float("inf")  # past int32, or not finite


def _fields(cls):
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name], f.metadata) for f in dataclasses.fields(cls) if f.init]


def _set(recipe: dict, path: tuple, value) -> dict:
    node = recipe
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return recipe


def _recipe_cases(name: str, base: dict, path: tuple, tp, meta) -> list[Case]:
    cases = []
    for kind, value in (("type", wrong_type(tp)), ("range", out_of_range(tp, meta))):
        if value is None:
            continue
        recipe = _set(_copy(base), path, value)
        cases.append(Case(f"{name}-{'.'.join(path)}-{kind}", ("fit", "r.toml"),
                          {"r.toml": tomli_w.dumps(recipe).encode()}, path[-1]))
    return cases


def _copy(d):
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in d.items()}


def recipe_cases() -> list[Case]:
    """A wrong type and an out-of-range value for every key of every table."""
    cases = []
    for family in registry.list_models():
        base = _base(family)
        for key, tp, meta in _fields(registry.hparams_class(family)):
            if key in ("noise", "input_shape"):
                continue
            cases += _recipe_cases(family, base, ("model", key), tp, meta)
    base = _base("denoising")
    for kind in NOISES.names():
        noisy = _set(_copy(base), ("model", "noise"), {"kind": kind})
        for key, tp, meta in _fields(NOISES.get(kind)):
            cases += _recipe_cases(f"noise-{kind}", noisy, ("model", "noise", key), tp, meta)
    for section, cls in (("data", DataConfig), ("train", TrainConfig)):
        for key, tp, meta in _fields(cls):
            cases += _recipe_cases("recipe", _base("basic"), (section, key), tp, meta)
    return cases


def _toml(text: str) -> dict:
    return {"r.toml": text.encode()}


GOOD = tomli_w.dumps(_base("basic"))

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


IDX_RECIPE = GOOD.replace('dataset = "digits"', 'dataset = "fashion_mnist"\ndata_dir = "idx"').encode()


def _idx_dir(suffix: str, content: bytes) -> dict:
    """The recipe reading Fashion-MNIST from `idx/`, where every IDX file holds `content`."""
    return {"r.toml": IDX_RECIPE, **{f"idx/{name}{suffix}": content for name in IDX_FILES}}

#: Recipes broken as files: syntax, encodings, structure, names.
FILE_CASES = [
    Case("syntax-unclosed-table", ("fit", "r.toml"), _toml("[model\nfamily = 'basic'\n"), "r.toml"),
    Case("syntax-no-value", ("fit", "r.toml"), _toml("[train]\nepochs =\n"), "r.toml"),
    Case("syntax-duplicate-key", ("fit", "r.toml"), _toml(GOOD + "\n[train]\nepochs = 2\n"), "r.toml"),
    Case("syntax-bare-string", ("fit", "r.toml"), _toml("[model]\nfamily = basic\n"), "r.toml"),
    Case("syntax-unterminated-string", ("fit", "r.toml"), _toml('description = "open\n'), "r.toml"),
    Case("encoding-latin1", ("fit", "r.toml"), {"r.toml": 'description = "caf\xe9"\n'.encode("latin-1")}, "r.toml"),
    Case("encoding-utf16", ("fit", "r.toml"), {"r.toml": GOOD.encode("utf-16")}, "r.toml"),
    Case("encoding-binary", ("fit", "r.toml"), {"r.toml": bytes(range(256))}, "r.toml"),
    Case("empty-file", ("fit", "r.toml"), _toml(""), "model.family"),
    Case("no-model-table", ("fit", "r.toml"), _toml("[train]\nepochs = 1\n"), "model.family"),
    Case("unknown-family", ("fit", "r.toml"), _toml("[model]\nfamily = 'nope'\n"), "model.family"),
    Case("family-not-string", ("fit", "r.toml"), _toml("[model]\nfamily = 3\n"), "model.family"),
    Case("unknown-top-key", ("fit", "r.toml"), _toml(GOOD + "\nbogus = 1\n"), "bogus"),
    Case("unknown-section", ("fit", "r.toml"), _toml(GOOD + "\n[extra]\na = 1\n"), "extra"),
    Case("unknown-model-key", ("fit", "r.toml"), _toml(GOOD.replace("family = ", "bogus = 1\nfamily = ")), "bogus"),
    Case("unknown-train-key", ("fit", "r.toml"), _toml(GOOD.replace("[train]", "[train]\nepoch = 3")), "epoch"),
    Case("section-not-table", ("fit", "r.toml"), _toml("train = 3\n[model]\nfamily = 'basic'\n"), "[train]"),
    Case("bad-name", ("fit", "r.toml"), _toml('name = "a b/c"\n' + GOOD), "name"),
    Case("description-not-string", ("fit", "r.toml"), _toml("description = 3\n" + GOOD), "description"),
    Case("input-shape-string", ("fit", "r.toml"), _toml(GOOD.replace("family = ", 'input_shape = "28x28"\nfamily = ')),
         "input_shape"),
    Case("base-missing", ("fit", "r.toml"), _toml('base = "nowhere.toml"\n' + GOOD), "nowhere"),
    Case("base-cycle", ("fit", "r.toml"), _toml('base = "r.toml"\n' + GOOD), "r.toml"),
    Case("recipe-missing", ("fit", "missing.toml"), {}, "missing.toml"),
    Case("recipe-is-directory", ("fit", "adir"), {"adir/x": b""}, "adir"),
    Case("data-path-missing", ("fit", "r.toml"), _toml(GOOD.replace('dataset = "digits"', 'path = "none.npy"')),
         "none.npy"),
    Case("data-csv-garbage", ("fit", "r.toml", "--data", "t.csv"), {**_toml(GOOD), "t.csv": b"\xff\xfe\x00garbage"},
         "t.csv"),
    Case("data-npy-corrupt", ("fit", "r.toml", "--data", "x.npy"), {**_toml(GOOD), "x.npy": b"\x93NUMPY broken"},
         "x.npy"),
    Case("data-folder-empty", ("fit", "r.toml", "--data", "imgs"), {**_toml(GOOD), "imgs/readme.txt": b"no images"},
         "imgs"),
    Case("idx-gzip-truncated", ("fit", "r.toml"), _idx_dir(".gz", b"\x1f\x8b\x08\x00trunc"), "gzip"),
    Case("idx-gzip-corrupt", ("fit", "r.toml"),
         _idx_dir(".gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(200))), "gzip"),
    Case("idx-not-idx", ("fit", "r.toml"), _idx_dir("", b"hello world, not idx"), "IDX"),
    Case("idx-dir-missing-files", ("fit", "r.toml"), {"r.toml": IDX_RECIPE, "idx/readme": b""}, "idx"),
]

#: Command lines broken as flags.
FLAG_CASES = [
    Case("flag-epochs-not-int", ("fit", "r.toml", "--epochs", "abc"), _toml(GOOD), "--epochs"),
    Case("flag-epochs-zero", ("fit", "r.toml", "--epochs", "0"), _toml(GOOD), "epochs"),
    Case("flag-epochs-negative", ("fit", "r.toml", "--epochs", "-3"), _toml(GOOD), "epochs"),
    Case("flag-epochs-huge", ("fit", "r.toml", "--epochs", str(2**40)), _toml(GOOD), "epochs"),
    Case("flag-steps-not-int", ("fit", "r.toml", "--steps-per-epoch", "1.5"), _toml(GOOD), "--steps-per-epoch"),
    Case("flag-resume-overwrite", ("fit", "r.toml", "--resume", "--overwrite"), _toml(GOOD), "--resume"),
    Case("flag-unknown", ("fit", "r.toml", "--bogus"), _toml(GOOD), "--bogus"),
    Case("flag-no-recipe", ("fit",), {}, "recipe"),
    Case("flag-strategy", ("fit", "r.toml", "--strategy", "nope"), _toml(GOOD), "strategy"),
    Case("flag-set-no-equals", ("fit", "r.toml", "--set", "train.epochs"), _toml(GOOD), "train.epochs"),
    Case("flag-set-unknown-key", ("fit", "r.toml", "--set", "train.bogus=1"), _toml(GOOD), "bogus"),
    Case("flag-set-bad-value", ("fit", "r.toml", "--set", "train.epochs=abc"), _toml(GOOD), "epochs"),
    Case("flag-set-bad-section", ("fit", "r.toml", "--set", "nope.x=1"), _toml(GOOD), "nope"),
    Case("flag-data-missing", ("fit", "r.toml", "--data", "nothing.csv"), _toml(GOOD), "nothing.csv"),
    Case("flag-data-unknown-name", ("fit", "r.toml", "--data", "not_a_dataset"), _toml(GOOD), "not_a_dataset"),
    Case("flag-out-is-file", ("fit", "r.toml", "--out", "afile"), {**_toml(GOOD), "afile": b"x"}, "afile"),
    Case("no-command", (), {}, "no command"),
    Case("unknown-command", ("fitt",), {}, "fitt"),
    Case("export-missing", ("export", "nowhere"), {}, "nowhere"),
    Case("export-format", ("export", "nowhere", "--format", "zip"), {}, "format"),
    Case("export-quantize", ("export", "nowhere", "--format", "tflite", "--quantize", "int3"), {}, "quantize"),
    Case("export-latency", ("export", "nowhere", "--latency-runs", "x"), {}, "--latency-runs"),
    Case("export-truncated-keras", ("export", "m.keras"), {"m.keras": b"PK\x03\x04truncated"}, "m.keras"),
    Case("export-not-keras", ("export", "m.keras"), {"m.keras": b"hello"}, "m.keras"),
    Case("export-calibration-bad", ("export", "m.keras", "--calibration-data", "c.npy"),
         {"m.keras": b"hello", "c.npy": b"nope"}, "c.npy"),
    Case("evaluate-missing", ("evaluate", "nowhere"), {}, "nowhere"),
    Case("evaluate-samples", ("evaluate", "run", "--nll-samples", "many"), {}, "--nll-samples"),
    Case("evaluate-empty-dir", ("evaluate", "run"), {"run/notes.txt": b""}, "run"),
    Case("score-missing", ("score", "nowhere"), {}, "nowhere"),
    Case("score-level", ("score", "run", "--level", "high"), {}, "--level"),
    Case("bench-task", ("bench", "--task", "nope"), {}, "--task"),
    Case("bench-classes", ("bench", "--task", "anomaly", "--classes", "a,b"), {}, "--classes"),
    Case("bench-unknown-recipe", ("bench", "no_such_recipe", "--no-export"), {}, "no_such_recipe"),
]


def all_cases() -> list[Case]:
    return recipe_cases() + FILE_CASES + FLAG_CASES
