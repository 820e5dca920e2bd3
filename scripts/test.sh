#!/usr/bin/env bash
# Builds everything (CUDA too when nvcc is present; GPU tests skip visibly without a GPU) and runs
# the whole test suite. Usage: bash scripts/test.sh   (from anywhere; installs what it needs)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_deps.sh
preset=release
command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ] || preset=cpu
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
jobs=$(nproc)
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$jobs"
ctest --preset "$preset" -j "$jobs" --timeout 900
