"""The package as pip installs it: the wheel ships recipes/ as `zoo.recipes`, and zoo finds them there.

The slow test builds the wheel offline with the running environment's setuptools (no build
isolation, no index), installs it into a bare folder and imports it from elsewhere, so neither the
source tree nor the editable install can answer for it.
"""

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

from zoo.configs import shipped

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "recipes").glob("*.toml"))


def test_pyproject_lists_every_package():
    """packages is listed by hand (for the recipes mapping), so a new subpackage of zoo must be added to it."""
    setuptools_config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = find_packages(str(ROOT), include=["zoo", "zoo.*"])
    assert sorted(setuptools_config["packages"]) == sorted(found + ["zoo.recipes"])
    assert setuptools_config["package-dir"] == {"zoo.recipes": "recipes"}
    assert not (ROOT / "zoo" / "recipes").exists(), "recipes/ at the top is the one copy"


def test_shipped_recipes_from_the_source_tree():
    assert RECIPES, "no recipes/*.toml"
    assert shipped.list_recipes() == [p.stem for p in RECIPES]
    found = shipped.shipped_recipe("vae")
    assert found is not None and found.is_file() and found.read_text() == (ROOT / "recipes" / "vae.toml").read_text()
    for name in ("no_such_recipe", "../pyproject", "vae.toml", "__init__", ""):
        assert shipped.shipped_recipe(name) is None, name


def _build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the project's packaging inputs (so no build/ or egg-info lands in the tree)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((ROOT / name).read_bytes())
    for folder in ("zoo", "recipes"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                target = src / path.relative_to(ROOT)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    out = tmp_path / "wheel"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(out), str(src)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("zoo-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_ships_and_finds_the_recipes(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for recipe in RECIPES:
            assert archive.read(f"zoo/recipes/{recipe.name}") == recipe.read_bytes(), recipe.name
        sources = {str(p.relative_to(ROOT)) for p in (ROOT / "zoo").rglob("*.py") if "__pycache__" not in p.parts}
    assert sources <= names, f"modules missing from the wheel: {sorted(sources - names)}"
    assert not [n for n in names if n.startswith("recipes/")], "recipes/ must ship only as zoo/recipes/"

    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                           "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = ("import json, zoo, zoo.configs.shipped as s; p = s.shipped_recipe('vae'); "
             "print(json.dumps({'zoo': zoo.__file__, 'dir': str(s.recipes_dir()), 'names': s.list_recipes(), "
             "'vae': str(p), 'text': p.read_text()}))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(found["zoo"]).is_relative_to(site), found["zoo"]
    assert Path(found["dir"]).is_relative_to(site), found["dir"]
    assert found["names"] == [p.stem for p in RECIPES]
    assert Path(found["vae"]) == site / "zoo" / "recipes" / "vae.toml"
    assert found["text"] == (ROOT / "recipes" / "vae.toml").read_text()
