#!/usr/bin/env bash
# The GPU run of 2026-11-28 (session 5) for the speed target of issue 4: three cheaper Noise2Score Gaussian networks
# (add-skips, fewer full-resolution convolutions; 0.24-0.29 s per 512x512 image on wasm against 0.72 s for v7)
# distilled side by side on one GPU from v7 averaged over the 8 symmetries (29.49 dB on Set12 at sigma 25), each
# for SECONDS_EACH of wall clock from scratch. Writes each run's folder under $RUNS; import with
# import-noise2score.ts (the architecture travels in train.json). RESUME=1 continues the runs in $RUNS from their
# checkpoints up to SECONDS_EACH in all (the learning rate restarts where the longer cosine puts it).
# Session 5 ran it with SECONDS_EACH=430, then RESUME=1 SECONDS_EACH=700 (H200, three runs side by side):
# 30751 / 30256 / 29967 steps of batch 128; Set12 sigma 25 25.55 / 25.04 / 26.12 dB against 29.07 for v7 itself,
# so none was committed (npm run bench:denoise-arch, bench/RESULTS.md).
. "$(dirname "$0")/gpu-env.sh"
SECONDS_EACH=${SECONDS_EACH:-430}
RESUME=${RESUME:-}
student() { # name, widths, convs, seed
  python3 -u noise2score.py --noise gaussian --images "$IMAGES" --steps 10000000 --batch 128 --patch 64 --lr 1e-3 \
    --architecture "{\"kind\":\"unet\",\"widths\":$2,\"outputScale\":32,\"skip\":\"add\",\"convs\":$3}" \
    --teacher "$ROOT/models/noise2score-gaussian/v7" --teacher-ensemble 8 --out "$RUNS/$1" --seed "$4" \
    --max-seconds "$SECONDS_EACH" ${RESUME:+--resume} >>"$RUNS/$1.log" 2>&1
}
student s1 '[16,48,128]' '[1,1,3,1,1]' 101 &
student s2 '[16,48,160]' '[1,1,3,1,1]' 102 &
student s3 '[16,32,128]' '[1,2,4,2,1]' 103 &
wait
tail -n 3 "$RUNS"/*.log
