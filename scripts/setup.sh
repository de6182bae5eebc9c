#!/usr/bin/env bash
# Sets up everything zoo needs on a fresh machine: Debian's Fashion-MNIST package, a virtual
# environment in .venv, and the package with its pinned dependencies. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  echo "setup: installing Debian's dataset-fashion-mnist"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

# PYTHON=python3.12 (or a path) picks the interpreter for a new .venv; by default the first of
# python3.11, python3.12, python3.13 and python3 that runs a supported Python. Each candidate is run,
# not just looked up, since a pyenv shim exists for versions it will not start.
supported() { "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' >/dev/null 2>&1; }
version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
if [ -n "${PYTHON:-}" ]; then
  if ! supported "$PYTHON"; then
    echo "setup: PYTHON=$PYTHON does not run Python 3.11-3.13 (pyproject.toml's requires-python)" >&2
    exit 1
  fi
  if [ -x .venv/bin/python ] && [ "$(version .venv/bin/python)" != "$(version "$PYTHON")" ]; then
    echo "setup: .venv has Python $(version .venv/bin/python), not $(version "$PYTHON"); remove .venv to recreate it" >&2
    exit 1
  fi
else
  for PYTHON in python3.11 python3.12 python3.13 python3 ""; do
    [ -n "$PYTHON" ] && supported "$PYTHON" && break
  done
  if [ -z "$PYTHON" ] && [ ! -x .venv/bin/python ]; then
    echo "setup: no Python 3.11-3.13 found; set PYTHON=/path/to/python3.X" >&2
    exit 1
  fi
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "setup: installing zoo and its pinned dependencies"
.venv/bin/python -m pip install -q -c constraints.txt -e ".[export,test]"
echo "setup: done ($(.venv/bin/python -c 'import tensorflow as tf, keras, tensorflow_probability as tfp; print(f"tensorflow {tf.__version__}, keras {keras.__version__}, tfp {tfp.__version__}")' 2>/dev/null))"
