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

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "setup: installing zoo and its pinned dependencies"
.venv/bin/python -m pip install -q -c constraints.txt -e ".[export,test]"
echo "setup: done ($(.venv/bin/python -c 'import tensorflow as tf, keras, tensorflow_probability as tfp; print(f"tensorflow {tf.__version__}, keras {keras.__version__}, tfp {tfp.__version__}")' 2>/dev/null))"
