"""The `zoo` command, run as a user runs it: in a fresh process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import zoo

ROOT = Path(__file__).resolve().parent.parent
# TensorFlow's C++ runtime logs before Python can silence it; these lines are not ours.
TF_LOG_PREFIXES = ("I0000", "W0000", "E0000", "WARNING: All log")


def zoo_cli(*args, cwd=ROOT):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "zoo.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def our_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(TF_LOG_PREFIXES)]


def assert_user_error(result, *fragments):
    """Exit code 2, one line on stderr naming what is wrong, no traceback."""
    lines = our_lines(result.stderr)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_list_prints_families_and_recipes():
    result = zoo_cli("list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["models:  " + ", ".join(zoo.list_models()),
                                          "recipes: " + ", ".join(zoo.list_recipes())]


def test_unknown_recipe_lists_the_known_ones():
    line = assert_user_error(zoo_cli("fit", "vea"), "zoo fit: error:", "'vea'")
    assert all(name in line for name in zoo.list_recipes())


def test_malformed_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('[model]\nfamily = "basic\n')
    assert_user_error(zoo_cli("fit", path), str(path), "malformed TOML")


def test_out_of_range_set():
    assert_user_error(zoo_cli("fit", "sparse", "--set", "model.rho=2"), "recipes/sparse.toml", "model.rho",
                      "Received: rho=2")


def test_unknown_strategy():
    assert_user_error(zoo_cli("fit", "basic", "--strategy", "nope"), "train.strategy", "'nope'", "auto")


def test_a_finished_run_directory_is_refused(tmp_path):
    run_dir = tmp_path / "done"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps({"finished": True}))
    assert_user_error(zoo_cli("fit", "basic", "--out", run_dir), str(run_dir), "finished run", "--overwrite")
    assert json.loads((run_dir / "metrics.json").read_text()) == {"finished": True}


@pytest.mark.slow
def test_fit_a_shipped_recipe_on_fashion_mnist(tmp_path):
    out = tmp_path / "run"
    result = zoo_cli("fit", "recipes/stacked.toml", "--steps-per-epoch", "5", "--epochs", "1", "--out", out,
                     "--quiet")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] is True and metrics["epochs"] == 1
    assert (out / "model.keras").is_file()
