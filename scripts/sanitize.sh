#!/usr/bin/env bash
# ASan + UBSan build of the CPU library and test suite (preset `asan`), then the tests under it with
# leak detection. Tests whose name matches TQ_SANITIZE_EXCLUDE are skipped (statistical tests that
# need millions of encodes; their code paths are covered by the smaller tests). Usage:
#   bash scripts/sanitize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_deps.sh
exclude=${TQ_SANITIZE_EXCLUDE:-"DistortionWithinOnePercent|QjlInnerProductsAreUnbiased"}
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --preset asan -j "$(nproc)" --timeout 1200 -E "$exclude"
