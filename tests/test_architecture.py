"""The layout's rules, checked on the source: import-linter's contracts, and consumers that
ask the model through its hooks instead of checking which family it is."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import zoo

ROOT = Path(__file__).resolve().parent.parent
CONSUMERS = [p for sub in ("export", "evaluation", "bench") for p in sorted((ROOT / "zoo" / sub).glob("*.py"))]
CONSUMERS += [ROOT / "zoo" / "cli.py"]


def test_import_linter_contracts_are_kept():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is a test dependency (pip install '.[test]')"
    done = subprocess.run([lint, "--config", str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def _family_class_names() -> set[str]:
    return {zoo.registry.get(name).__name__ for name in zoo.list_models()}


@pytest.mark.parametrize("path", CONSUMERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_consumers_do_not_branch_on_the_family(path):
    source = path.read_text()
    tree = ast.parse(source)
    classes = _family_class_names()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zoo.models."):
            assert node.module in ("zoo.models.base",), f"{path.name} imports a family module {node.module}"
        if isinstance(node, ast.Name):
            assert node.id not in classes, f"{path.name} names the family class {node.id}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "model":
            assert not node.attr.startswith("_"), f"{path.name} calls a private model member model.{node.attr}"
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                if isinstance(side, ast.Constant) and side.value in zoo.list_models():
                    pytest.fail(f"{path.name} compares with the family name {side.value!r} (line {node.lineno})")
    assert not re.search(r"\bis_vae\b|hasattr\(model", source)


def test_tests_mirror_the_package_layout():
    subpackages = {p.parent.name for p in (ROOT / "zoo").glob("*/__init__.py")} - {"recipes"}
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= subpackages, f"test folders without a zoo subpackage: {sorted(folders - subpackages)}"
    missing = {name for name in subpackages if not any((ROOT / "tests" / name).glob("test_*.py"))}
    assert not missing, f"zoo subpackages without tests/<name>/: {sorted(missing)}"
