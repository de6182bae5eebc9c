"""Atomic file writes: a reader never sees a half-written file, even after a kill.

Temporaries carry the writer's process id right after their prefix (`.tmp<pid>.<name>`,
`.tmp-export-<pid>-<hex>`), so the leftovers of a killed writer can be told from the work of a
live one and removed (`remove_dead_temporaries`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path


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
    finally:
        if tmp.is_file():
            tmp.unlink()


def write_text(path, text: str) -> None:
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_json(path, data) -> None:
    """Writes `data` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (used to tell a live run from a dead one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
