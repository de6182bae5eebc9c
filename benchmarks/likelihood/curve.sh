#!/bin/bash
# Test NLL of every snapshot hour.sh took (IS k=100 on the first 2,000 test images: a quick estimate
# of the curve; the final figure is benchmarks/nll.py with k=1000 on all 10,000): one JSON line each.
set -euo pipefail
work=$1
here=$(dirname "$(realpath "$0")")
for name in $(ls "$work/snaps" | awk -F'epoch-' '{print $2, $0}' | sort | cut -d' ' -f2); do  # by epoch
  python "$here/../nll.py" "$work/run" --model "../snaps/$name" --k 100 --n 2000
done
