# Sourced by the gpu-run*.sh scripts: strict mode, their folder as the working directory, and the shared settings
# ROOT (the repository), IMAGES (packed training images, pack-images.ts) and RUNS (where runs are written; created).
# Prints the GPU and PyTorch version for the log.
set -u
cd "$(dirname "$0")"
ROOT=$(cd ../../.. && pwd)
IMAGES=${IMAGES:-$ROOT/.gpu/train400}
RUNS=${RUNS:-/tmp/runs}
mkdir -p "$RUNS"
nvidia-smi -L || true
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")'
