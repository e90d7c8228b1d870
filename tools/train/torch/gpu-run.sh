#!/usr/bin/env bash
# The GPU training run of 2026-11-28 (one lent H100/H200, 16 cores): the three Noise2Score families and the natural
# DDPM prior, trained side by side on one GPU (each network is small, so they share it), each for SECONDS of wall
# clock from the committed weights. Needs the packed training images (pack-images.ts) at $IMAGES. Writes each run's
# folder (tensors, train.json, log) under $RUNS; import them with import-noise2score.ts / import-ddpm.ts.
. "$(dirname "$0")/gpu-env.sh"
SECONDS_EACH=${SECONDS_EACH:-420}
n2s() { # family, init model, seed
  python3 -u noise2score.py --noise "$1" --images "$IMAGES" --steps 1000000 --batch 128 --patch 64 --lr 3e-4 \
    --init-from "$ROOT/models/$2" --out "$RUNS/n2s-$1" --seed "$3" --max-seconds "$SECONDS_EACH" \
    >"$RUNS/n2s-$1.log" 2>&1
}
n2s gaussian noise2score-gaussian/v5 81 &
n2s poisson noise2score-poisson/v2 82 &
n2s gamma noise2score-gamma/v2 83 &
python3 -u ddpm.py --images "$IMAGES" --size 64 --steps 1000000 --batch 128 --lr 4e-4 \
  --init-from "$ROOT/models/ddpm-natural-grey/20261128" --out "$RUNS/ddpm-natural-grey" --seed 84 \
  --max-seconds "$SECONDS_EACH" >"$RUNS/ddpm-natural-grey.log" 2>&1 &
wait
tail -n 3 "$RUNS"/*.log
