#!/usr/bin/env bash
# Builds tq and runs `tq demo`: what each codec gives on this machine (CPU; CUDA when present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_deps.sh
preset=release
command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ] || preset=cpu
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)" --target tq
"build/$preset/tq" demo "$@"
