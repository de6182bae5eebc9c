"""The `zoo` command, run as a user runs it: in a fresh process."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import zoo
import zoo.cli
import zoo.quiet
from zoo.quiet import is_tensorflow_noise

ROOT = Path(__file__).resolve().parent.parent


def user_env(**extra):
    """The environment of a user who set nothing: the CLI itself must keep TensorFlow quiet."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return {**env, **extra}


def zoo_cli(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "zoo.cli", *map(str, args)], cwd=cwd, env=env or user_env(),
                          capture_output=True, text=True, timeout=600)


def run_python(code, env=None):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env or user_env(),
                          capture_output=True, text=True, timeout=600)


def assert_user_error(result, *fragments):
    """Exit code 2, exactly one line on stderr naming what is wrong, no traceback, no TensorFlow start-up lines."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize("argv", [["--help"], ["fit", "--help"], ["export", "--help"], ["list"],
                                  ["fit", "vae", "--epochs", "abc"], []])
def test_help_list_and_argument_errors_never_import_tensorflow(argv):
    result = run_python(f"""
        import sys
        import zoo.cli
        code = zoo.cli.main({argv!r})
        heavy = [m for m in ("tensorflow", "keras") if m in sys.modules]
        assert not heavy, heavy
        print("exit", code)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"exit {2 if argv in ([], ['fit', 'vae', '--epochs', 'abc']) else 0}"


@pytest.mark.parametrize("argv, prog, fragment", [
    (["fit", "vae", "--epochs", "abc"], "zoo fit", "argument --epochs: invalid int value: 'abc'"),
    (["fit", "vae", "--resume", "--overwrite"], "zoo fit", "--overwrite: not allowed with argument --resume"),
    (["fit"], "zoo fit", "the following arguments are required: recipe"),
    (["fit", "vae", "--bogus"], "zoo fit", "unrecognized arguments: --bogus"),
    (["evaluate", "run", "--nll-samples", "many"], "zoo evaluate", "invalid int value: 'many'"),
    (["nope"], "zoo", "unknown command 'nope': choose one of " + ", ".join(zoo.cli.COMMANDS.names())),
    ([], "zoo", "no command given: choose one of"),
    (["--debug"], "zoo", "no command given"),
])
def test_argument_errors_are_one_line(argv, prog, fragment):
    result = zoo_cli(*argv)
    line = assert_user_error(result, f"{prog}: error: ", fragment)
    assert line.endswith(f"(see {prog} --help)")
    assert result.stdout == ""


def test_help_prints_the_commands():
    result = zoo_cli("--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: zoo") and all(name in result.stdout for name in ("fit", "list", "bench"))


def test_tensorflow_startup_lines_are_noise_and_nothing_else():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796160699.355899    8765 port.cc:153] oneDNN custom operations are on. You may see slightly "
        "different numerical results due to floating-point round-off errors from different computation orders.",
        "I0000 00:00:1796160699.356359    8765 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
        "will not be used.",
        "E0000 00:00:1796160706.592469    8765 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
        "Failed call to cuInit: UNKNOWN ERROR (303)",
        "E0000 00:00:1758131045.203198 3722035 cuda_dnn.cc:8579] Unable to register cuDNN factory: Attempting to "
        "register factory for plugin cuDNN when one has already been registered",
        "2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not find cuda drivers",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
        "appropriate compiler flags.",
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    ]
    kept = [
        "F0000 00:00:1796160706.592469    8765 tensor.cc:52] Check failed: dims == 2",
        "E0000 00:00:1796160706.592469    8765 kernel.cc:12] OOM when allocating tensor",
        "*** Check failure stack trace: ***",
        "zoo fit: error: something a user did",
        "Epoch 1/3",
    ]
    assert all(is_tensorflow_noise(line) for line in noise)
    assert not any(is_tensorflow_noise(line) for line in kept)


FD2_WRITER = """
    import os, sys
    import zoo.cli
    with zoo.quiet.quiet_tensorflow():
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("0", "1", "3")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
        os.write(2, b"I0000 00:00:1796160699.355899    8765 port.cc:153] oneDNN custom operations are on.\\n")
        print("a python line", file=sys.stderr)
        os.write(2, b"F0000 00:00:1796160699.355899    8765 foo.cc:1] Check failed: x\\n")
        if {abort}:
            os.abort()
    print("a line after", file=sys.stderr)
"""


def test_fd2_filter_drops_startup_lines_and_passes_the_rest():
    result = run_python(FD2_WRITER.format(abort=False))
    assert result.returncode == 0, result.stderr
    assert sorted(result.stderr.splitlines()) == sorted([
        "a python line", "F0000 00:00:1796160699.355899    8765 foo.cc:1] Check failed: x", "a line after"])


def test_fd2_filter_outlives_a_native_crash():
    result = run_python(FD2_WRITER.format(abort=True))
    assert result.returncode != 0
    assert "F0000 00:00:1796160699.355899    8765 foo.cc:1] Check failed: x" in result.stderr.splitlines()
    assert "oneDNN" not in result.stderr


def test_tf_cpp_min_log_level_0_shows_everything():
    result = run_python(FD2_WRITER.format(abort=False), env=user_env(TF_CPP_MIN_LOG_LEVEL="0"))
    assert result.returncode == 0, result.stderr
    assert "oneDNN custom operations are on." in result.stderr and "absl::InitializeLog()" in result.stderr


def test_list_prints_families_and_recipes():
    result = zoo_cli("list")
    assert result.returncode == 0 and result.stderr == "", result.stderr
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
    assert result.stderr == ""  # no TensorFlow start-up lines, no warnings
    assert result.stdout.strip().splitlines()[-1] == str(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] is True and metrics["epochs"] == 1
    assert (out / "model.keras").is_file()
