"""Every malformed recipe and command line of the corpus: exit 2, one line, no traceback, nothing written.

The corpus (tests/fault_corpus.py) is generated from the schema, so a key added to a config is
tried here without a new test. Most cases run `zoo.cli.main` in this process (fast); a sample
runs the real `zoo` executable, where TensorFlow's start-up lines could also leak.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fault_corpus import all_cases
from zoo.cli import main

CASES = all_cases()


def snapshot(root: Path) -> dict:
    """Every file and directory under `root` with its size and hash."""
    seen = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        seen[rel] = "dir" if path.is_dir() else (path.stat().st_size, hashlib.sha1(path.read_bytes()).hexdigest())
    return seen


def write_files(root: Path, files: dict) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def check_one_line(code: int, err: str, case) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (case.id, code, err[-2000:])
    assert len(lines) == 1, (case.id, lines)
    assert "Traceback" not in err
    assert case.named.lower() in lines[0].lower(), (case.id, case.named, lines[0])
    assert lines[0].startswith("zoo"), lines[0]
    return lines[0]


def test_the_corpus_is_large_and_covers_every_table():
    assert len(CASES) >= 100, len(CASES)
    ids = {c.id for c in CASES}
    assert len(ids) == len(CASES), "case ids must be unique"
    for prefix in ("basic-model.", "stacked-model.", "sparse-model.", "denoising-model.", "vae-model.",
                   "noise-gaussian-", "noise-salt_pepper-", "noise-masking-", "recipe-data.", "recipe-train."):
        assert any(i.startswith(prefix) for i in ids), prefix


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    write_files(tmp_path, case.files)
    before = snapshot(tmp_path)
    code = main(list(case.argv))
    out, err = capfd.readouterr()
    check_one_line(code, err, case)
    assert snapshot(tmp_path) == before, f"{case.id} changed or added files"


# One of each kind, as the user runs them: the `zoo` executable in a fresh process.
PROCESS_SAMPLE = ["recipe-train.epochs-type", "vae-model.prior-range", "syntax-unclosed-table", "encoding-latin1",
                  "idx-gzip-truncated", "flag-epochs-not-int", "no-command", "export-truncated-keras",
                  "data-npy-corrupt", "recipe-train.seed-range"]


@pytest.mark.parametrize("case_id", PROCESS_SAMPLE)
def test_bad_input_in_a_fresh_process(case_id, tmp_path):
    case = next(c for c in CASES if c.id == case_id)
    write_files(tmp_path, case.files)
    before = snapshot(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ZOO_DEBUG")}
    result = subprocess.run([sys.executable, "-m", "zoo.cli", *case.argv], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    check_one_line(result.returncode, result.stderr, case)
    assert snapshot(tmp_path) == before


def test_debug_shows_the_traceback(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.toml").write_text("[model\n")
    with pytest.raises(ValueError, match="r.toml"):
        main(["fit", "r.toml", "--debug"])
    monkeypatch.setenv("ZOO_DEBUG", "1")
    with pytest.raises(ValueError, match="r.toml"):
        main(["fit", "r.toml"])
    monkeypatch.setenv("ZOO_DEBUG", "0")
    assert main(["fit", "r.toml"]) == 2
