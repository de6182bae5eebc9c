"""Keeps TensorFlow's start-up lines from the terminal; standard library only.

TF_CPP_MIN_LOG_LEVEL=3 is set before TensorFlow is imported, but TensorFlow 2.21's C++ runtime
logs through absl before absl's logging is initialized, and those lines ignore every setting
(TF_CPP_MIN_LOG_LEVEL, GLOG_minloglevel, ABSL_MIN_LOG_LEVEL): "WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR", then "oneDNN custom operations are on",
"Could not find cuda drivers", "failed call to cuInit". So a command that imports TensorFlow
runs with the process's file descriptor 2 (where C++ code writes) piped through a small filter
process, which drops those start-up lines (`is_tensorflow_noise`) and passes every other line
on; Python's own `sys.stderr` (warnings, tracebacks, our error lines) writes to the terminal
directly. The filter is a separate process, this file run as a script, so that a native
crash's last words (a CHECK failure, a fatal signal) still arrive. TF_ENABLE_ONEDNN_OPTS is left
alone: it changes numerics. To see TensorFlow's C++ logs, set TF_CPP_MIN_LOG_LEVEL=0 (or 1):
then nothing is filtered.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys

# What TensorFlow (and TFLite) write to fd 2 before their logging honours TF_CPP_MIN_LOG_LEVEL.
_ABSL_PREINIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# absl / glog format: severity, MMDD hh:mm:ss.micros (seconds since 1970 before absl is set up), thread id,
# file:line] message; and the format of TensorFlow's own logger (before 2.20): date time: severity file:line] message.
_LOG_LINE = re.compile(r"^(?:([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+"
                       r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]))\s+[^\s\]]+:\d+\] (.*)$")
# ERROR lines that are start-up facts of a machine, not failures of the command.
_STARTUP_ERRORS = re.compile(
    r"failed call to cuInit|Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered")
# Lines outside the absl format: the continuation of the CPU-feature line, TFLite's interpreter.
_STARTUP_PLAIN = ("To enable the following instructions:", "INFO: Created TensorFlow Lite XNNPACK delegate",
                  "INFO: Initialized TensorFlow Lite runtime")


def is_tensorflow_noise(line: str) -> bool:
    """Whether a line written to fd 2 is TensorFlow's start-up logging that TF_CPP_MIN_LOG_LEVEL=3 means to hide.

    INFO and WARNING lines of the C++ runtime (absl format) are dropped; ERROR lines only when
    they are known start-up facts (no CUDA driver, plugin factories registered twice); FATAL
    lines and everything else pass.
    """
    line = line.rstrip("\r\n")
    if line == _ABSL_PREINIT or line.startswith(_STARTUP_PLAIN):
        return True
    m = _LOG_LINE.match(line)
    if not m:
        return False
    severity, message = m.group(1) or m.group(2), m.group(3)
    return severity in "IW" or (severity == "E" and bool(_STARTUP_ERRORS.search(message)))


def _filter_loop(read_fd: int, write_fd: int) -> None:
    """Copies lines from read_fd to write_fd until end of file, without TensorFlow's start-up noise."""
    pending = b""

    def emit(lines):
        out = b"".join(line for line in lines if not is_tensorflow_noise(line.decode("utf-8", "replace")))
        while out:
            try:
                out = out[os.write(write_fd, out):]
            except InterruptedError:
                continue
            except OSError:  # the terminal went away: keep draining so the command never blocks
                return

    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        emit(line + b"\n" for line in lines)
    if pending:
        emit([pending])


@contextlib.contextmanager
def quiet_tensorflow():
    """Sets TF_CPP_MIN_LOG_LEVEL=3 and, around the body, filters TensorFlow's start-up lines out of fd 2.

    Does nothing beyond the variable when TensorFlow is imported already (its start-up is over,
    e.g. `main` called from a test), when the user asked for C++ logs (TF_CPP_MIN_LOG_LEVEL=0
    or 1), or when fd 2 cannot be piped.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() in ("0", "1"):
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if "tensorflow" in sys.modules:
        yield
        return
    try:
        child, terminal = _start_filter()
    except (OSError, ValueError):
        yield
        return
    saved_stderr = sys.stderr
    # Python's own writes go straight to the terminal (unbuffered order kept, isatty kept).
    sys.stderr = open(terminal, "w", buffering=1, encoding=getattr(saved_stderr, "encoding", None) or "utf-8",
                      errors="backslashreplace", closefd=False)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        sys.stderr = saved_stderr
        os.dup2(terminal, 2)  # closes the pipe's last writer here: the filter drains and exits
        with contextlib.suppress(Exception):
            child.wait(timeout=5)


def _start_filter():
    """Starts the filter process on a pipe, points fd 2 at it; returns the process and a dup of the terminal's fd."""
    import signal
    import subprocess

    sys.stderr.flush()
    terminal = os.dup(2)
    read_fd, write_fd = os.pipe()
    # This file run as a script imports only the standard library (-I: not even its own directory).
    command = [sys.executable, "-I", "-S", os.path.abspath(__file__), _FILTER_FLAG]
    # Ignored signals are inherited: Ctrl-C reaches the command, not the filter, even as it starts.
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        previous = None
    try:
        child = subprocess.Popen(command, stdin=read_fd, stdout=terminal, stderr=terminal, close_fds=True)
    except BaseException:
        for fd in (terminal, read_fd, write_fd):
            os.close(fd)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    os.close(read_fd)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    return child, terminal


_FILTER_FLAG = "--_tensorflow-stderr-filter"

if __name__ == "__main__" and sys.argv[1:] == [_FILTER_FLAG]:  # the filter process of `quiet_tensorflow`
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _filter_loop(0, 1)
