#!/usr/bin/env bash
# On the GPU box (device tool), from a copy of the append branch (e.g. /work/main/.dev_append with
# .hwy linked in): the CUDA append tests, compute-sanitizer (memcheck, racecheck) on them, SASS and
# ncu counts of the v2 kernel, then bench/cuda/profile_append.py (v2 and v1 against device copy).
# Uses prebuilt/{tq_test_cuda,libturboquant.so} when they were carried and load here (a Release
# build of this tree with -DTQ_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a), else builds into
# /tmp/bappend (kept on a warm box). Logs go to $OUT; the summary is printed last.
#   cd .dev_append && ln -sfn ../.hwy .hwy && bash bench/cuda/run_append_on_box.sh
# APPEND_QUICK=1: tests, compute-sanitizer on the small shapes only, no SASS, no ncu;
# BENCH_CODECS=tq2,tq2.5,...: the codecs of the benchmark table (default: all; with APPEND_QUICK=1
# the benchmark runs only when BENCH_CODECS is set); NCU_CODECS="tq2.5:frac tq3:v2": the ncu runs.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$SECONDS
export LD_LIBRARY_PATH="$PWD/.hwy/usr/lib/x86_64-linux-gnu:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
test_bin=prebuilt/tq_test_cuda lib=prebuilt/libturboquant.so
if ! { [[ -x $test_bin ]] && $test_bin --gtest_list_tests > /dev/null 2>&1; }; then
  echo "prebuilt binaries missing or not loadable: building"
  cmake -S . -B /tmp/bappend -Dhwy_DIR="$PWD/.hwy/usr/lib/x86_64-linux-gnu/cmake/hwy" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DTQ_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a -DTQ_BUILD_BENCH=OFF -DTQ_WITH_FAISS=OFF > "$OUT/build.log" 2>&1 \
    || { tail -30 "$OUT/build.log"; exit 1; }
  cmake --build /tmp/bappend -j 16 --target turboquant_shared tq_test_cuda >> "$OUT/build.log" 2>&1 \
    || { grep -E "error" -A5 "$OUT/build.log" | head -60; exit 1; }
  test_bin=/tmp/bappend/tests/tq_test_cuda lib=/tmp/bappend/libturboquant.so
  echo "build ok ($((SECONDS - t0)) s)"
fi
timeout 200 $test_bin --gtest_filter='CudaAppend*' > "$OUT/test.log" 2>&1
echo "tests CudaAppend*: exit $? ($((SECONDS - t0)) s)"
grep -E "^\[  (FAILED|PASSED|SKIPPED|     OK) |Failure|Expected|Which is|seed|differing|codec=" "$OUT/test.log" | head -30
# compute-sanitizer on the small shapes (every kernel; large tiles forced on the fractional one);
# memcheck on the large shapes comes last (not with APPEND_QUICK=1): it takes longest.
sanitize() {  # tool, gtest filter, log name, timeout
  timeout "$4" compute-sanitizer --tool "$1" --error-exitcode 9 $test_bin --gtest_filter="$2" > "$OUT/$3.log" 2>&1
  echo "compute-sanitizer $1 ($2): exit $? ($((SECONDS - t0)) s) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/$3.log" | tail -1)"
}
small='CudaAppend.BitIdenticalToCpuEncoder:CudaAppend.FractionalLargeTilesSmallAppends'
sanitize memcheck "$small" memcheck 120
sanitize racecheck "$small" racecheck 120
bench_codecs=${BENCH_CODECS-tq2,tq3,tq4,fp16,tq2.5,tq3.5}
bench() {
  PYTHONUNBUFFERED=1 timeout 150 python3 bench/cuda/profile_append.py --lib $lib --codecs "$bench_codecs" > "$OUT/bench.log" 2>&1
  echo "bench: exit $? ($((SECONDS - t0)) s)"
  grep -E "DIFFERENT|Error|error|device copy" "$OUT/bench.log" | head
  sed -n '/^| codec/,$p' "$OUT/bench.log"
}
if [[ ${APPEND_QUICK:-0} == 1 ]]; then
  [[ -n ${BENCH_CODECS:-} ]] && bench
  exit 0
fi
k='_ZN2tq4cuda6append18append_tile_kernelILi128ELi32ELi3ELi1EEEvNS1_6ParamsE'
cuobjdump -sass -fun "$k" $test_bin > "$OUT/sass.txt" 2>&1
echo "SASS v2 tq3 D=128 C=32 f16: $(grep -cE '^\s+/\*[0-9a-f]{4}\*/' "$OUT/sass.txt") instructions, top:" \
  "$(grep -oE '^\s+/\*[0-9a-f]{4}\*/\s+(@!?U?P[0-9T] )?[A-Z0-9_]+' "$OUT/sass.txt" | awk '{print $NF}' | sort | uniq -c \
     | sort -rn | head -14 | awk '{printf "%s %s, ", $2, $1}')"
for ck in ${NCU_CODECS:-tq3:v2 tq2:v2 tq4:v2}; do  # codec:kernel (v2, v1, frac)
  c=${ck%%:*} kern=${ck##*:}
  timeout 60 ncu --clock-control none -k regex:'append_(tile|frac)' -s 1 -c 1 --section SpeedOfLight --section WarpStateStats \
    --section Occupancy --metrics sm__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active \
    python3 bench/cuda/profile_append.py --lib $lib --ncu --codec $c --kernel $kern --iters 2 > "$OUT/ncu_${c}_$kern.txt" 2>&1
  echo "ncu $c $kern: $(grep -E 'Duration|inst_executed.sum|issue_active|Achieved Occupancy|Registers Per|Memory Throughput' "$OUT/ncu_${c}_$kern.txt" \
    | awk '{$1=$1; print}' | tr '\n' ';')"
done
echo "(per vector: inst_executed.sum / 524288)"
bench
sanitize memcheck 'CudaAppend.TiledOddShapes:CudaAppend.FractionalOddShapes' memcheck_large 150
