#!/usr/bin/env bash
# `npm run bench:gpu` on a GPU machine without Node, from what bench/gpu/pack.sh left in .gpu/ (ignored by git).
# With the `run` tool: carry [.gpu/node-run, .gpu/gl], command `bash bench/gpu/run-on-device.sh`; the results
# (bench/RESULTS.md's gpu section, results.json, the log) are copied to $OUT when it is set. Arguments go to the
# benchmark (--quick, --reps N, --workers N, --backends wasm,webgpu, --no-http).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash .gpu/node-run/unpack.sh
tar -xJf .gpu/node-run/server-modules.tar.xz -C .gpu/node-run
export PATH=/tmp/node-run:$PATH
nvidia-smi || true
status=0
node .gpu/node-run/run.mjs "$@" 2>&1 | tee /tmp/bench-gpu.log || status=$?
if [ -n "${OUT:-}" ]; then
  cp /tmp/bench-gpu.log bench/RESULTS.md "$OUT"/ || true
  cp bench/out/gpu/results.json bench/out/gpu/section.md "$OUT"/ 2>/dev/null || true
fi
exit "$status"
