#!/bin/bash
# The hour-long likelihood attempt: fit RECIPE into WORK/run, copying the newest checkpoint to
# WORK/snaps every 5 minutes (named by the seconds since the start), for the NLL-against-time curve.
#   bash benchmarks/likelihood/hour.sh benchmarks/likelihood/vae_vamp_hour.toml /tmp/nllrun
#   bash benchmarks/likelihood/curve.sh /tmp/nllrun          # then the curve, and the final figure:
#   python benchmarks/nll.py /tmp/nllrun/run                 # IS k=1000 on the full test set
set -euo pipefail
recipe=$(realpath "$1"); work=$2
mkdir -p "$work/snaps" && cd "$work"
start=$(date +%s)
echo "start $(date -u +%FT%TZ)" > times.txt
zoo fit "$recipe" --out run --quiet > fit.out 2> fit.err &
pid=$!
while kill -0 $pid 2>/dev/null; do
  sleep 300
  f=$(ls run/checkpoints/epoch-*.state.keras 2>/dev/null | sort | tail -1 || true)
  if [ -n "$f" ]; then cp "$f" "snaps/t$(( $(date +%s) - start ))_$(basename "$f")"; fi
done
wait $pid && echo "rc 0" >> times.txt || echo "rc $?" >> times.txt
echo "end $(date -u +%FT%TZ) $(( $(date +%s) - start ))" >> times.txt
