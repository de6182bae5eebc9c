"""The zoo's failures and how each is told to a user: one line and an exit code.

Three kinds of failure reach a user, and each has its exit code:

    2  bad input: a recipe, a flag, a file or a name that is wrong, missing or corrupt
       (`ValueError` and its kin, `FileNotFoundError`, `RunLocked`), and what is allowed;
    1  the environment: a full or read-only disk, a permission, memory (`OSError`,
       `MemoryError`, TensorFlow's `ResourceExhaustedError`), and what to do about it;
    3  training diverged (`TrainingDiverged`): the run is kept at its last finite checkpoint.

`failure(exc)` turns an exception into (exit code, one line), or None for an exception the
zoo did not expect: a bug, which the CLI shows with its traceback. This module imports only
the standard library.
"""

from __future__ import annotations

import errno
import os
import sys
import tomllib

#: Environment variable that makes the CLI re-raise every failure with its traceback.
DEBUG_ENV = "ZOO_DEBUG"

USER_ERROR, ENVIRONMENT_ERROR, DIVERGED = 2, 1, 3


class RunLocked(ValueError):
    """Another process holds the run directory or export base this one would write."""


class TrainingDiverged(RuntimeError):
    """Training stopped because its loss diverged (`zoo.training.callbacks.DivergenceGuard`).

    Attributes:
        run_dir: the run directory, marked `"finished": false` with the reason.
        epoch: the last epoch whose checkpoint is finite (0: none).
        reason: what the guard saw, in words.
    """

    def __init__(self, message: str, *, run_dir=None, epoch: int = 0, reason: str = ""):
        super().__init__(message)
        self.run_dir, self.epoch, self.reason = run_dir, epoch, reason


def debugging() -> bool:
    """Whether `ZOO_DEBUG` asks for tracebacks (any value but "", "0", "false", "no")."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


_ADVICE = {
    errno.ENOSPC: "free some space or choose another directory",
    errno.EDQUOT: "free some space or choose another directory",
    errno.EROFS: "choose a writable directory",
    errno.EACCES: "check the permissions or choose another directory",
    errno.EPERM: "check the permissions or choose another directory",
    errno.EMFILE: "raise the open-file limit (ulimit -n)",
    errno.EIO: "check the disk",
}


class NotEnoughSpace(OSError):
    """A file system with less free space than a job needs (errno ENOSPC; its text says how much)."""


def describe_os_error(exc: OSError) -> str:
    """An `OSError` in one line: the path, the system's reason and what to do.

    The reason is the system's text for the error number (libraries such as h5py put their own
    multi-line text there), except for the zoo's `NotEnoughSpace`, whose text gives the sizes.
    """
    if isinstance(exc, NotEnoughSpace) or exc.errno is None:
        reason = exc.strerror or first_line(exc)
    else:
        reason = os.strerror(exc.errno)
    path = exc.filename
    where = f"{path}: " if path else ""
    advice = _ADVICE.get(exc.errno)
    return f"{where}{reason}" + (f"; {advice}" if advice else "")


def _is_tensorflow_oom(exc: BaseException) -> bool:
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(exc, tf.errors.ResourceExhaustedError)


def failure(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, one-line message) for a failure a user can cause or fix; None for a bug."""
    if isinstance(exc, TrainingDiverged):
        return DIVERGED, first_line(exc)
    if isinstance(exc, UnicodeError):
        return USER_ERROR, f"not UTF-8 text ({first_line(exc)})"
    if isinstance(exc, (ValueError, tomllib.TOMLDecodeError, FileNotFoundError, NotADirectoryError,
                        IsADirectoryError, FileExistsError)):
        return USER_ERROR, first_line(exc)
    if isinstance(exc, MemoryError) or _is_tensorflow_oom(exc):
        what = first_line(exc) if str(exc).strip() else "out of memory"
        return ENVIRONMENT_ERROR, (f"out of memory ({what.split(' [Op:')[0][:200]}); lower train.batch_size or "
                                   f"the model's size, or close other programs")
    if isinstance(exc, OSError):
        return ENVIRONMENT_ERROR, describe_os_error(exc)
    return None
