"""zoo.errors.failure: which exceptions are the user's input, the environment, divergence, or a bug."""

import errno
import tomllib

import pytest
import tensorflow as tf

from zoo.errors import RunLocked, TrainingDiverged, debugging, failure


@pytest.mark.parametrize("exc, code, fragments", [
    (ValueError("r.toml: train.epochs must be an integer"), 2, ["r.toml: train.epochs"]),
    (tomllib.TOMLDecodeError("Invalid value (at line 1)"), 2, ["Invalid value"]),
    (FileNotFoundError("No recipe file 'x.toml'"), 2, ["x.toml"]),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "runs"), 2, ["runs"]),
    (RunLocked("runs/x: in use by another zoo process (pid 7)"), 2, ["pid 7"]),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 2, ["not UTF-8"]),
    (OSError(errno.ENOSPC, "No space left on device", "runs/x/model.keras"), 1,
     ["runs/x/model.keras: No space left on device", "free some space"]),
    (PermissionError(errno.EACCES, "Permission denied", "/srv/models"), 1,
     ["/srv/models: Permission denied", "permissions"]),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/run"), 1, ["Read-only", "writable directory"]),
    (OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: ... )"), 1,
     ["No space left on device"]),  # h5py's kind: errno given, strerror its own text
    (MemoryError(), 1, ["out of memory", "train.batch_size"]),
    (tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[4096,4096]"), 1,
     ["out of memory", "OOM when allocating"]),
    (TrainingDiverged("training diverged: loss became nan in epoch 2"), 3, ["loss became nan"]),
])
def test_failures_a_user_can_fix_are_one_line_with_their_code(exc, code, fragments):
    got = failure(exc)
    assert got is not None and got[0] == code, got
    assert "\n" not in got[1]
    for fragment in fragments:
        assert fragment in got[1], (fragment, got[1])


@pytest.mark.parametrize("exc", [KeyError("x"), TypeError("unsupported operand"), AttributeError("no attr"),
                                 RuntimeError("internal"), ZeroDivisionError()])
def test_anything_else_is_a_bug_shown_with_its_traceback(exc):
    assert failure(exc) is None


def test_a_multi_line_message_keeps_its_first_line():
    assert failure(ValueError("\n  first line\nsecond")) == (2, "first line")


@pytest.mark.parametrize("value, on", [("", False), ("0", False), ("false", False), ("no", False),
                                       ("1", True), ("yes", True)])
def test_zoo_debug(value, on, monkeypatch):
    monkeypatch.setenv("ZOO_DEBUG", value)
    assert debugging() is on


def test_not_enough_space_keeps_its_sizes(tmp_path, monkeypatch):
    import collections
    import shutil

    from zoo.io import check_free_space

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(2**30, 2**30 - 3 * 2**20, 3 * 2**20))
    check_free_space(tmp_path / "run", 2 * 2**20, "this run")  # enough
    with pytest.raises(OSError) as info:
        check_free_space(tmp_path / "run", 5 * 2**20, "this run")
    code, line = failure(info.value)
    assert code == 1 and line == (f"{tmp_path / 'run'}: 3.0 MiB free, this run needs about 5.0 MiB; "
                                  f"free some space or choose another directory")
