"""Safe writes: a reader never sees a half-written file, and a directory has one writer.

- Atomic files: temporaries carry the writer's process id right after their prefix
  (`.tmp<pid>.<name>`, `.tmp-export-<pid>-<hex>`), so the leftovers of a killed writer can be told
  from the work of a live one and removed (`remove_dead_temporaries`). A failed write (a full
  disk) raises an `OSError` that names the file it was writing; the previous file stays.
- Strict JSON: `write_json` writes non-finite numbers as null, never the `NaN` literal.
- One writer: `exclusive_lock` holds an OS lock (`fcntl.flock`) on a directory's lock file for
  as long as a fit or an export writes there. The kernel releases it when its process ends,
  however it ends, so a killed run never blocks the next one.
- Free space: `check_free_space` refuses to start a job whose files cannot fit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
from pathlib import Path

from zoo.errors import NotEnoughSpace, RunLocked


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the whole name as the ending: Keras picks the file format from it (".weights.h5").
    tmp = path.with_name(f".tmp{os.getpid()}.{path.name}")
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno is None or isinstance(e, FileNotFoundError):
            raise
        # Name the file being written: writers below (zipfile, h5py) often do not.
        raise OSError(e.errno, os.strerror(e.errno), str(path)) from e
    finally:
        if tmp.is_file():
            tmp.unlink()


def write_text(path, text: str) -> None:
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def finite_json(data):
    """`data` with every non-finite float (NaN, ±inf) replaced by None, so it is strict JSON."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    return data


def write_json(path, data) -> None:
    """Writes `data` as indented strict JSON to `path` atomically (non-finite numbers as null)."""
    write_text(path, json.dumps(finite_json(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


#: The lock file `exclusive_lock` holds in a directory (it also records the holder's pid).
LOCK_FILE = ".zoo.lock"


@contextlib.contextmanager
def exclusive_lock(directory, what: str = "directory"):
    """Holds the OS lock of `directory` (its `.zoo.lock`) for the block; one holder at a time.

    Raises:
        RunLocked: another live process holds it; the message names its pid.
    """
    import fcntl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise RunLocked(f"{directory}: this {what} is in use by another zoo process (pid {holder}); wait for "
                            f"it to end or choose another directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock (the file stays: deleting it would race with a waiting locker)


def check_free_space(directory, needed_bytes: int, what: str) -> None:
    """Raises `NotEnoughSpace` (an OSError, ENOSPC) naming `directory` if its file system has less
    than `needed_bytes` free."""
    directory = Path(directory)
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed_bytes:
        raise NotEnoughSpace(errno.ENOSPC, f"{free / 2**20:.1f} MiB free, {what} needs about "
                                           f"{needed_bytes / 2**20:.1f} MiB", str(directory))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (used to tell a live run from a dead one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_path(path: Path, ignore_errors: bool = False) -> None:
    """Deletes a file or a link, or a directory with its tree (`ignore_errors`: a tree's errors, a missing file)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=ignore_errors)
    else:
        path.unlink(missing_ok=ignore_errors)


def remove_dead_temporaries(directory, prefix: str) -> list[Path]:
    """Deletes the entries of `directory` named `<prefix><pid>…` whose process is gone; returns them.

    A temporary file or directory a killed writer left behind is removed; one a live process
    is still writing is kept.
    """
    directory = Path(directory)
    removed = []
    for entry in directory.glob(f"{prefix}*") if directory.is_dir() else ():
        pid = re.match(r"\d+", entry.name[len(prefix):])
        if pid and not pid_alive(int(pid.group())):
            remove_path(entry, ignore_errors=True)
            removed.append(entry)
    return removed
