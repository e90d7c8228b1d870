#!/usr/bin/env bash
# The second GPU run of 2026-11-28: Noise2Score Gaussian alone on the GPU, from v6 (the first run, gpu-run.sh),
# with twice the batch, for SECONDS_EACH of wall clock. Same inputs and outputs as gpu-run.sh.
. "$(dirname "$0")/gpu-env.sh"
SECONDS_EACH=${SECONDS_EACH:-180}
python3 -u noise2score.py --noise gaussian --images "$IMAGES" --steps 1000000 --batch 256 --patch 64 --lr 2e-4 \
  --init-from "$ROOT/models/noise2score-gaussian/v6" --out "$RUNS/n2s-gaussian-2" --seed 91 \
  --max-seconds "$SECONDS_EACH" >"$RUNS/n2s-gaussian-2.log" 2>&1
tail -n 3 "$RUNS"/*.log
