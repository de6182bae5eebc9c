"""The recipes shipped with zoo, found wherever zoo is installed, without importing TensorFlow.

The top-level recipes/ folder of the source tree is the one copy. pyproject.toml maps it onto the
package `zoo.recipes`, so a wheel (`pip install .`) carries it as zoo/recipes/*.toml and an
editable install (`pip install -e .`) finds it through setuptools' import hook. A source tree used
without installing (PYTHONPATH=.) falls back to the recipes/ folder beside zoo/.

    >>> from zoo.configs.shipped import list_recipes, shipped_recipe
    >>> "vae" in list_recipes()
    True
    >>> shipped_recipe("vae").name
    'vae.toml'
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.resources
from pathlib import Path

PACKAGE = "zoo.recipes"
SUFFIX = ".toml"
_SOURCE_DIR = Path(__file__).resolve().parents[2] / "recipes"
_extracted = contextlib.ExitStack()  # recipes copied out of a zipped install, removed at exit
atexit.register(_extracted.close)


def recipes_dir():
    """The shipped recipes folder: an importlib.resources Traversable (a Path for every unzipped install)."""
    try:
        return importlib.resources.files(PACKAGE)
    except ModuleNotFoundError:  # a source tree on sys.path, not installed
        return _SOURCE_DIR


def list_recipes() -> list[str]:
    """The names (file stems) of the shipped recipes, sorted."""
    folder = recipes_dir()
    if not folder.is_dir():
        return []
    return sorted(entry.name[: -len(SUFFIX)] for entry in folder.iterdir()
                  if entry.name.endswith(SUFFIX) and entry.is_file())


def shipped_recipe(name: str) -> Path | None:
    """The file of the shipped recipe `name` as a real filesystem path, or None when none is called that.

    Only the names `list_recipes` gives are looked up, so a name cannot reach outside the folder.
    Wheels install unzipped and give their own path; a zipped install's file is copied out once and
    stays until the interpreter exits.
    """
    if name not in list_recipes():
        return None
    entry = recipes_dir().joinpath(name + SUFFIX)
    if isinstance(entry, Path):
        return entry
    return _extracted.enter_context(importlib.resources.as_file(entry))
