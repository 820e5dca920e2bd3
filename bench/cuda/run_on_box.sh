#!/usr/bin/env bash
# On the GPU box (device tool): build the CUDA library + tests, run the CUDA tests, optionally
# compute-sanitizer, then the decode benchmark against SDPA. Logs and results go to $OUT.
#   bash bench/cuda/run_on_box.sh [test|sanitize|bench|all]
set -uo pipefail
what=${1:-all}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
cmake -S . -B build/box -G Ninja -DCMAKE_BUILD_TYPE=Release -DTQ_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DTQ_BUILD_BENCH=OFF -DTQ_WITH_FAISS=OFF > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build build/box -j 16 --target turboquant_shared tq_test_cuda > "$OUT/build.log" 2>&1 || { grep -E "error" -A5 "$OUT/build.log" | head -60; exit 1; }
echo "build ok"
if [[ $what == test || $what == all || $what == sanitize ]]; then
  ./build/box/tests/tq_test_cuda 2>&1 | tee "$OUT/test.log" | grep -E "OK|FAILED|Failure|PASSED|SKIPPED|error|Which|evaluates" | head -60
fi
if [[ $what == sanitize || $what == all ]]; then
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 9 ./build/box/tests/tq_test_cuda --gtest_filter='*Unsupported*:*MatchesCpu*' > "$OUT/sanitize_$tool.log" 2>&1
    echo "compute-sanitizer $tool: exit $? ($(grep -c 'ERROR SUMMARY: 0 errors' "$OUT/sanitize_$tool.log") clean summaries)"; tail -3 "$OUT/sanitize_$tool.log"
  done
fi
if [[ $what == bench || $what == all ]]; then
  PYTHONUNBUFFERED=1 python3 bench/cuda/bench_decode.py --lib build/box/libturboquant.so --out "$OUT" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
fi
