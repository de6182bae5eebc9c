"""How fast the `zoo` command answers when it needs no TensorFlow.

    python benchmarks/cli_startup.py            # 20 runs of each command
    python benchmarks/cli_startup.py --runs 50

Times, as subprocesses of the project's `.venv/bin/zoo` (or `zoo` on PATH), the wall clock of
`zoo --help`, `zoo fit --help`, `zoo list` and an argument error (`zoo fit vae --epochs abc`),
N runs each after one untimed warm-up run (the page cache), and prints a markdown table of the
median and the minimum, with the date, the Python and the machine. Each run also checks its
exit code and that nothing but the one error line reached stderr. For scale: the same table has
`python -c pass` (the interpreter's own start-up) and `import tensorflow` (what these
commands avoid), the latter timed 3 times.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def zoo_executable() -> str:
    venv = ROOT / ".venv" / "bin" / "zoo"
    found = str(venv) if venv.is_file() else shutil.which("zoo")
    if not found:
        sys.exit("no zoo command: install the project (pip install -e .) or create .venv")
    return found


def python_of(zoo: str) -> str:
    """The interpreter of the zoo script (its shebang), for the reference rows."""
    first = Path(zoo).read_text().splitlines()[0]
    return first[2:].strip() if first.startswith("#!") else sys.executable


def time_runs(command: list[str], runs: int, expect_rc: int, stderr_lines: int) -> list[float]:
    subprocess.run(command, cwd=ROOT, capture_output=True)  # warm-up, untimed
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        if done.returncode != expect_rc or len(lines) != stderr_lines:
            sys.exit(f"{' '.join(command)}: exit {done.returncode}, stderr {lines!r} "
                     f"(expected exit {expect_rc} and {stderr_lines} stderr line(s))")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command (default 20)")
    parser.add_argument("--no-tensorflow", action="store_true", help="skip the `import tensorflow` reference row")
    args = parser.parse_args()
    zoo = zoo_executable()
    python = python_of(zoo)
    cases = [
        ("`zoo --help`", [zoo, "--help"], 0, 0, args.runs),
        ("`zoo fit --help`", [zoo, "fit", "--help"], 0, 0, args.runs),
        ("`zoo list`", [zoo, "list"], 0, 0, args.runs),
        ("`zoo fit vae --epochs abc` (argument error)", [zoo, "fit", "vae", "--epochs", "abc"], 2, 1, args.runs),
        ("reference: `python -c pass`", [python, "-c", "pass"], 0, 0, args.runs),
    ]
    if not args.no_tensorflow:
        env_quiet = "import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'; import tensorflow"
        cases.append(("reference: `python -c 'import tensorflow'`", [python, "-c", env_quiet], 0, None, 3))
    rows = []
    for label, command, rc, lines, runs in cases:
        if lines is None:  # TensorFlow's own start-up lines: not counted
            subprocess.run(command, cwd=ROOT, capture_output=True)
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
                times.append(time.perf_counter() - start)
        else:
            times = time_runs(command, runs, rc, lines)
        rows.append((label, runs, statistics.median(times), min(times)))
    now = datetime.datetime.now().astimezone()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"CLI start-up, {now:%Y-%m-%d %H:%M %Z}: Python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs (load average {load}), {zoo}")
    print()
    print("| command | runs | median | min |")
    print("|---|---:|---:|---:|")
    for label, runs, median, best in rows:
        print(f"| {label} | {runs} | {median * 1000:.0f} ms | {best * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
