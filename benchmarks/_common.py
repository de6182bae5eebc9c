"""Helpers the runner scripts share (speed.py, memory.py, batch_scaling.py, distributed.py).

Each script puts `benchmarks/` on `sys.path` (it is there already when the script is run) and
imports from here: `from _common import ...`.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def zoo_cli() -> str:
    """The `zoo` command beside this interpreter (the venv's), as the benchmarks run it."""
    return str(Path(sys.executable).with_name("zoo"))


def quiet_env(**extra: str) -> dict:
    """This process's environment with TensorFlow's C++ logging off, plus `extra`, for a child."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free on 127.0.0.1 now (all bound at once, then released)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def emit(result: dict, json_path: str = "") -> dict:
    """Prints `result` as the script's last line, one line of JSON, and writes it (indented) to `json_path` if given."""
    print(json.dumps(result))
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=1) + "\n")
    return result
