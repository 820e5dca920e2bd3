#!/usr/bin/env bash
# On the GPU box (device tool): build the CUDA library + tests, run the CUDA tests, compute-sanitizer
# on small shapes, SASS of the hot kernel, ncu on two shapes, then the decode benchmark against SDPA.
# Logs and results go to $OUT (8 files at most come back):
#   build.log test.log (tests + sanitizers) sass.txt ncu.txt bench.log bench_decode.{csv,json,svg}
#   bash bench/cuda/run_on_box.sh [all|test|bench|sweep|quick|verify|pipes]   (sweep: split policy; quick: decode
#   tests without sanitizers, then the benchmark without ncu; verify: every CUDA test, memcheck and
#   racecheck on SAN_FILTER, the benchmark)
set -uo pipefail
what=${1:-all}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t0=$SECONDS
# The tests compute-sanitizer runs: small shapes of every path, and the one test whose CTAs reuse
# ring stages (racecheck found the one-lane stage release there, session 13).
san_tests='CudaDecode.SmallShapes:CudaDecode.LongSegmentsMergeInTwoLevels'
# Highway is not installed on the box: Debian's libhwy-dev unpacked into .hwy/ travels with `carry`
# (apt-get download libhwy-dev libhwy1 && dpkg -x each into .hwy).
hwy=(); [[ -d .hwy ]] && hwy=(-Dhwy_DIR="$PWD/.hwy/usr/lib/x86_64-linux-gnu/cmake/hwy") \
  && export LD_LIBRARY_PATH="$PWD/.hwy/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
cmake -S . -B build/box "${hwy[@]}" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTQ_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DTQ_BUILD_BENCH=OFF -DTQ_WITH_FAISS=OFF > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
targets=(turboquant_shared tq_test_cuda); [[ $what == final ]] && targets+=(tq)
cmake --build build/box -j 16 --target "${targets[@]}" >> "$OUT/build.log" 2>&1 \
  || { grep -E "error" -A5 "$OUT/build.log" | head -60; exit 1; }
echo "build ok ($((SECONDS - t0)) s)"
obj=build/box/CMakeFiles/tq_objects.dir/src/cuda/decode_v3_d128.cu.o
# SASS_QV=1: the quad-V kernel (V in token quads) instead of the row kernel.
cuobjdump -sass -fun "_ZN2tq4cuda2v313decode_kernelILi128ELi3ELi3ELi0ELi0ELi${SASS_QV:-0}EEEvNS1_6ParamsE" "$obj" > "$OUT/sass.txt" 2>&1
echo "SASS tq3 D=128: $(grep -cE '^\s+/\*[0-9a-f]{4}\*/' "$OUT/sass.txt") instructions," \
  "$(grep -c 'HMMA' "$OUT/sass.txt") HMMA, $(grep -c 'PRMT' "$OUT/sass.txt") PRMT, $(grep -cE 'LDL|STL' "$OUT/sass.txt") local"
if [[ $what == ncu ]]; then  # stall reasons + top stalled instructions, large and small batch (tq3)
  stalls=$(for r in long_scoreboard short_scoreboard barrier membar wait math_pipe_throttle mio_throttle lg_throttle \
    not_selected selected dispatch_stall no_instruction branch_resolving sleeping drain misc tex_throttle; do
    printf 'smsp__average_warps_issue_stalled_%s_per_issue_active.ratio,' $r; done)
  # NCU_CODEC (default tq3; e.g. tq3+q), NCU_SHAPES (;-separated profile_one.py arguments)
  IFS=';' read -ra shapes <<< "${NCU_SHAPES:---batch 32 --context 16384;--batch 1 --context 16384;--batch 1 --context 1024}"
  nc=${NCU_CODEC:-tq3}
  for shape in "${shapes[@]}"; do
    echo "== $nc $shape" >> "$OUT/ncu.txt"
    timeout 60 ncu --clock-control none -k regex:decode_kernel -s 3 -c 1 --section SpeedOfLight --section SchedulerStats \
      --metrics "${stalls%,},sm__inst_executed.sum,smsp__issue_active.avg.pct_of_peak_sustained_active" \
      python3 bench/cuda/profile_one.py --lib build/box/libturboquant.so --codec $nc $shape >> "$OUT/ncu.txt" 2>&1
    tag=$(echo "$shape" | tr -dc '0-9_')
    timeout 90 ncu --clock-control none -k regex:decode_kernel -s 3 -c 1 --section SourceCounters --section WarpStateStats \
      --page source --print-source sass --csv \
      python3 bench/cuda/profile_one.py --lib build/box/libturboquant.so --codec $nc $shape > "/tmp/src_$tag.csv" 2>&1
    echo "== top stalled instructions, $nc $shape" >> "$OUT/stalls.txt"
    python3 bench/cuda/stall_pcs.py "/tmp/src_$tag.csv" 45 >> "$OUT/stalls.txt" 2>&1
  done
  echo "ncu done ($((SECONDS - t0)) s)"
  grep -E "^== |Duration|DRAM Throughput|Issue Slots|issue_active|inst_executed.sum|issue_stalled" "$OUT/ncu.txt" | \
    awk '$NF+0 > 0.2 || /==|Duration|DRAM|Issue|inst_exec/' | head -60
fi
if [[ $what == final ]]; then  # everything a session ends with, most important first
  timeout 240 ./build/box/tests/tq_test_cuda > "$OUT/test.log" 2>&1
  echo "all CUDA tests: exit $? ($((SECONDS - t0)) s)"
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|Expected|Which is|seed" "$OUT/test.log" | head -30
  sanitize() {
    timeout 60 compute-sanitizer --tool $1 --error-exitcode 9 ./build/box/tests/tq_test_cuda \
      --gtest_filter="$san_tests:CudaDecode.Bad*" >> "$OUT/sanitize.log" 2>&1
    echo "compute-sanitizer $1: exit $? ($((SECONDS - t0)) s)"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitize.log" | tail -1
  }
  sanitize memcheck
  PYTHONUNBUFFERED=1 timeout 330 python3 bench/cuda/bench_decode.py --lib build/box/libturboquant.so --out "$OUT" ${BENCH_ARGS:-} \
    > "$OUT/bench.log" 2>&1
  echo "bench: exit $? ($((SECONDS - t0)) s)"; grep -E "cross-check|reference|Error|error" "$OUT/bench.log" | head -12
  sed -n '/^| B |/,$p' "$OUT/bench.log"
  if [[ -f data/proxy/proxy.gguf ]]; then
    for args in "--ctx 512 --max-tokens 5110 --kv tq3 --device cuda" "--ctx 512 --max-tokens 5110 --kv tq2.5 --device cuda" \
                "--ctx 256 --max-tokens 2550 --kv tq3 --kv-store cuda"; do
      timeout 60 ./build/box/tq perplexity --model data/proxy/proxy.gguf --text data/proxy/heldout.txt --json --no-progress $args \
        > "$OUT/ppl.json" 2>> "$OUT/test.log"
      python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('ppl', sys.argv[2], 'ratio %.4f KLD %.4f top1 %.2f%% tok/s %.0f' % (j['ppl_ratio'], j['kld_mean'], 100*j['top1_agree'], j['tokens_per_s']))" "$OUT/ppl.json" "$args" 2>&1 | tail -1
    done
  fi
  sanitize racecheck
fi
if [[ $what == verify ]]; then  # every CUDA test, memcheck + racecheck on small shapes, then the benchmark
  timeout 300 ./build/box/tests/tq_test_cuda > "$OUT/test.log" 2>&1
  echo "all CUDA tests: exit $? ($((SECONDS - t0)) s)"
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|Expected|Which is|seed|differing" "$OUT/test.log" | head -30
  for tool in memcheck racecheck; do
    timeout 120 compute-sanitizer --tool $tool --error-exitcode 9 ./build/box/tests/tq_test_cuda \
      --gtest_filter="${SAN_FILTER:-$san_tests:CudaKvStore.VQuads*}" >> "$OUT/sanitize.log" 2>&1
    echo "compute-sanitizer $tool: exit $? ($((SECONDS - t0)) s)"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitize.log" | tail -1
  done
  PYTHONUNBUFFERED=1 timeout 300 python3 bench/cuda/bench_decode.py --lib build/box/libturboquant.so --out "$OUT" ${BENCH_ARGS:-} \
    > "$OUT/bench.log" 2>&1
  echo "bench: exit $? ($((SECONDS - t0)) s)"; grep -E "cross-check|reference|Error|error|append" "$OUT/bench.log" | head -30
  sed -n '/^| B |/,$p' "$OUT/bench.log"
fi
if [[ $what == quick ]]; then
  timeout 200 ./build/box/tests/tq_test_cuda --gtest_filter='CudaDecodeFrag*:CudaDecode.*' > "$OUT/test.log" 2>&1
  echo "tests: exit $? ($((SECONDS - t0)) s)"
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|Expected|Which is|rel\. L2|seed" "$OUT/test.log" | head -40
  PYTHONUNBUFFERED=1 timeout 300 python3 bench/cuda/bench_decode.py --lib build/box/libturboquant.so --out "$OUT" ${BENCH_ARGS:-} \
    > "$OUT/bench.log" 2>&1
  echo "bench: exit $? ($((SECONDS - t0)) s)"; grep -E "cross-check|reference|Error|error" "$OUT/bench.log" | head -12
  sed -n '/^| B |/,$p' "$OUT/bench.log"
fi
if [[ $what == all || $what == test ]]; then
  for f in 'CudaDecodeFrag*:CudaDecode.*' 'CudaAppend.*'; do  # separate processes: a fault stays local
    timeout 200 ./build/box/tests/tq_test_cuda --gtest_filter="$f" >> "$OUT/test.log" 2>&1
    echo "tests $f: exit $? ($((SECONDS - t0)) s)"
  done
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|Expected|Which is|rel|seed|differing" "$OUT/test.log" | head -30
  for tool in memcheck racecheck initcheck; do
    timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 ./build/box/tests/tq_test_cuda \
      --gtest_filter="$san_tests:CudaDecode.Bad*:CudaAppend.Bit*" >> "$OUT/test.log" 2>&1
    echo "compute-sanitizer $tool: exit $? ($((SECONDS - t0)) s)"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/test.log" | tail -1
  done
fi
if [[ $what == all || $what == bench ]]; then
  for c in tq3 k4v4; do
    timeout 60 ncu --clock-control none -k regex:decode_kernel -s 3 -c 1 --section SpeedOfLight \
      --section WarpStateStats --section SchedulerStats --section Occupancy --section ComputeWorkloadAnalysis \
      python3 bench/cuda/profile_one.py --lib build/box/libturboquant.so --codec $c >> "$OUT/ncu.txt" 2>&1
  done
  timeout 60 ncu --clock-control none -k regex:decode_kernel -s 3 -c 1 --metrics \
    sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fmaheavy.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active,sm__inst_executed.sum \
    python3 bench/cuda/profile_one.py --lib build/box/libturboquant.so --codec tq3 >> "$OUT/ncu.txt" 2>&1
  # Stall reasons (warp cycles per issued instruction, by reason) of the tq3 kernel at B=32, T=16K.
  stalls=$(for r in long_scoreboard short_scoreboard barrier membar wait math_pipe_throttle mio_throttle lg_throttle \
    not_selected selected dispatch_stall no_instruction branch_resolving sleeping drain misc tex_throttle; do
    printf 'smsp__average_warps_issue_stalled_%s_per_issue_active.ratio,' $r; done)
  timeout 60 ncu --clock-control none -k regex:decode_kernel -s 3 -c 1 --metrics "${stalls%,}" \
    python3 bench/cuda/profile_one.py --lib build/box/libturboquant.so --codec tq3 >> "$OUT/ncu.txt" 2>&1
  for shape in "--batch 1 --context 1024" "--batch 1 --context 16384"; do  # small batches: kernel time alone
    timeout 60 ncu --clock-control none -k regex:decode_kernel -s 3 -c 1 --section SpeedOfLight \
      python3 bench/cuda/profile_one.py --lib build/box/libturboquant.so --codec tq3 $shape >> "$OUT/ncu.txt" 2>&1
  done
  echo "ncu done ($((SECONDS - t0)) s)"; grep -E "pipe_|inst_executed.sum|issue_stalled" "$OUT/ncu.txt" | sort -k3 -n -r | head -24
  grep -E "decode_kernel<|DRAM Throughput|Duration|Compute \(SM\)|Issue Slots Busy|Issued Warp|Achieved Occupancy|No Eligible" "$OUT/ncu.txt" | head -24
  PYTHONUNBUFFERED=1 timeout 330 python3 bench/cuda/bench_decode.py --lib build/box/libturboquant.so --out "$OUT" ${BENCH_ARGS:-} \
    > "$OUT/bench.log" 2>&1
  echo "bench: exit $? ($((SECONDS - t0)) s)"; grep -E "cross-check|reference|Error|error" "$OUT/bench.log" | head -12
  sed -n '/^| B |/,$p' "$OUT/bench.log"
fi
if [[ $what == quick || $what == pipes ]]; then  # per-pipe issue share of the decode kernel, PIPE_CODECS at B = 32, T = 16K
  for c in ${PIPE_CODECS:-tq3+q}; do
    echo "== $c" >> "$OUT/pipes.txt"
    timeout 60 ncu --clock-control none -k regex:decode_kernel -s 3 -c 1 --metrics \
      sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fmaheavy.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__inst_executed.sum,gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
      python3 bench/cuda/profile_one.py --lib build/box/libturboquant.so --codec $c >> "$OUT/pipes.txt" 2>&1
  done
  grep -E "^== |pipe_|inst_executed.sum|duration|dram__" "$OUT/pipes.txt" | awk '{print $1, $(NF)}' | paste -sd' ' | sed 's/== /\n/g'; echo
fi
if [[ $what == sweep ]]; then
  PYTHONUNBUFFERED=1 timeout 200 python3 bench/cuda/sweep_split.py --lib build/box/libturboquant.so ${SWEEP_ARGS:-} \
    > "$OUT/sweep.log" 2>&1
  echo "sweep: exit $? ($((SECONDS - t0)) s)"; cat "$OUT/sweep.log" | grep -v "^$" | tail -40
fi
