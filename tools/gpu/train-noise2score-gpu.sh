#!/usr/bin/env bash
# GPU tier of Noise2Score (issue 18): a larger score network trained on a GPU in resumable chunks, for the `run`
# device tool, whose machines are fresh at each start and lend about 15 minutes per session.
#
# Here (CPU machine), once:   bash tools/gpu/train-noise2score-gpu.sh prepare
#   packs the training images WITHOUT the held-out last 40 of train400 (bench/denoise/heldout.ts TRAIN400_HOLDOUT)
#   into .gpu/train360.{u8,json} (ignored by git).
# On the device, per chunk:   bash tools/gpu/train-noise2score-gpu.sh chunk
#   (carry: .gpu/train360.u8, .gpu/train360.json and, from the second chunk on, .gpu/runs/n2s-$FAMILY-gpu)
#   resumes from .gpu/runs/n2s-$FAMILY-gpu/checkpoint.pt when present, trains for CHUNK_SECONDS of wall clock
#   (killed by `timeout`; a checkpoint is written every 30 s, atomically), and copies the run folder to $OUT so the
#   next session can carry it back (copy it from the reply's files_at to .gpu/runs/ first).
#   The run ends by itself at STEPS steps (the cosine learning-rate schedule is over STEPS, not wall clock, so the
#   chunks add up to the same run as one long one) and then writes the final tensors + train.json.
# Here again, when train.json exists:   bash tools/gpu/train-noise2score-gpu.sh import VERSION
#   imports the run as models/noise2score-$FAMILY/VERSION (import-noise2score.ts: probe check, Set12 figure) and
#   marks its manifest `"tier": "gpu"`, so the service serves it by default only on a GPU backend.
#
# Settings (environment): FAMILY (gaussian | poisson | gamma; default gaussian), STEPS (default 60000),
# BATCH (128), PATCH (64), LR (4e-4), SEED (181), CHUNK_SECONDS (420), PYTHON (the interpreter with PyTorch;
# default python3: on a machine without a GPU the chunk trains on the CPU, e.g. STEPS=4 BATCH=4 CHUNK_SECONDS=120
# PYTHON=/usr/bin/python3 to check the script end to end),
# ARCHITECTURE (default '{"widths":[64,128,256],"convs":[3,3,4,3,3]}': about 3.4 M parameters against the CPU
# tier's 0.62 M, four to five times its multiply-adds; at 512x512 on an H200 over WebGPU a 3x3 convolution stack
# runs at 7-8.6 TMAC/s (../shared/gpu/README.md), so a call stays in the tens of milliseconds).
#
# Expected time (an estimate, not measured for this architecture): the 0.62 M network trained at about 140 steps/s
# at batch 256 alone on an H200 (models/noise2score-gaussian/v7 torchLog: 22694 steps in 170 s); with about 5x the
# work per step and batch 128, expect 40 to 60 steps/s, so 60000 steps take 17 to 25 minutes: 3 to 4 chunks of
# 420 s. Each chunk prints its steps/s in the log (the `seconds` of its last lines) to correct the estimate.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
FAMILY=${FAMILY:-gaussian}
STEPS=${STEPS:-60000}
BATCH=${BATCH:-128}
PATCH=${PATCH:-64}
LR=${LR:-4e-4}
SEED=${SEED:-181}
CHUNK_SECONDS=${CHUNK_SECONDS:-420}
PYTHON=${PYTHON:-python3}
ARCHITECTURE=${ARCHITECTURE:-'{"widths":[64,128,256],"convs":[3,3,4,3,3]}'}
IMAGES=.gpu/train360
RUN=.gpu/runs/n2s-$FAMILY-gpu
HOLDOUT=40
# The trainers move from src/train to tools/train (issue 22): use whichever is there.
TORCH_DIR=src/train/torch
[ -f tools/train/torch/noise2score.py ] && TORCH_DIR=tools/train/torch

case "${1:-}" in
prepare)
  list=$(mktemp -d)
  trap 'rm -rf "$list"' EXIT
  ls ../shared/data/train400/*.png | sort | head -n -$HOLDOUT | while read -r f; do ln -s "$(realpath "$f")" "$list/"; done
  echo "packing $(ls "$list" | wc -l) images (train400 without its last $HOLDOUT)"
  mkdir -p .gpu
  npx tsx "$TORCH_DIR/pack-images.ts" "$list" "$IMAGES"
  ;;
chunk)
  [ -f "$IMAGES.u8" ] || { echo "missing $IMAGES.u8: run 'prepare' on the CPU machine and carry it" >&2; exit 2; }
  mkdir -p "$RUN"
  nvidia-smi -L || true
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")'
  resume=()
  [ -f "$RUN/checkpoint.pt" ] && resume=(--resume) && echo "resuming from $RUN/checkpoint.pt"
  set +e
  timeout --signal=TERM "$CHUNK_SECONDS" "$PYTHON" -u "$TORCH_DIR/noise2score.py" --noise "$FAMILY" \
    --images "$IMAGES" --steps "$STEPS" --batch "$BATCH" --patch "$PATCH" --lr "$LR" --seed "$SEED" \
    --architecture "$ARCHITECTURE" --out "$RUN" --checkpoint-seconds 30 "${resume[@]}" >>"$RUN/train.log" 2>&1
  status=$?
  set -e
  tail -n 4 "$RUN/train.log"
  if [ -f "$RUN/train.json" ]; then echo "finished: import it with '$0 import VERSION'"; 
  elif [ "$status" = 124 ]; then echo "chunk over after $CHUNK_SECONDS s: carry $RUN to the next chunk";
  else echo "trainer exited with status $status" >&2; fi
  if [ -n "${OUT:-}" ]; then mkdir -p "$OUT/$RUN" && cp -a "$RUN/." "$OUT/$RUN/"; fi
  ;;
import)
  VERSION=${2:?usage: $0 import VERSION}
  [ -f "$RUN/train.json" ] || { echo "$RUN/train.json is missing: the run has not finished" >&2; exit 2; }
  OUT_DIR=models/noise2score-$FAMILY/$VERSION
  npx tsx "$TORCH_DIR/import-noise2score.ts" --from "$RUN" --out "$OUT_DIR" --version "$VERSION" \
    --validation-dir ../shared/data/set12 \
    --lineage "bash tools/gpu/train-noise2score-gpu.sh chunk (FAMILY=$FAMILY STEPS=$STEPS BATCH=$BATCH ARCHITECTURE=$ARCHITECTURE), train400 without its last $HOLDOUT images, resumable chunks of $CHUNK_SECONDS s"
  node -e '
    const fs = require("node:fs");
    const p = process.argv[1];
    const m = JSON.parse(fs.readFileSync(p, "utf8"));
    fs.writeFileSync(p, JSON.stringify({ ...m, tier: "gpu" }, null, 2) + "\n");
  ' "$OUT_DIR/manifest.json"
  echo "wrote $OUT_DIR (tier gpu); measure it with npm run bench:denoise-heldout"
  ;;
*)
  sed -n '2,30p' "$0"
  exit 2
  ;;
esac
