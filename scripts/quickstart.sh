#!/usr/bin/env bash
# Quickstart: set everything up, then fit every recipe briefly (1 epoch, one seed), evaluate,
# export (SavedModel + LiteRT + ONNX) and write bench/report.md. Extra arguments go to `zoo bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/zoo bench --epochs 1 --nll-examples 1000 --out bench "$@"
