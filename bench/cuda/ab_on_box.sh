#!/usr/bin/env bash
# On the GPU box: the trees of bench/cuda/ab_prepare.sh built side by side (build-ab/<name>, kept
# on a warm box), then
#   test:  every CUDA test of the last tree, memcheck + racecheck on SAN_FILTER;
#   bench: bench_decode.py of every tree in separate processes, B = 1 rows in two interleaved rounds
#          (A B A B: drift shows), larger shapes once; one table of µs per tree last.
#   bash bench/cuda/ab_on_box.sh test|bench|both     (CODECS, SMALL, LARGE override the shapes;
#   TEST_FILTER picks the tests, SAN_FILTER the sanitizers' tests)
set -uo pipefail
what=${1:-both}
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; t0=$SECONDS
mapfile -t trees < <(ls -d .ab/*/ | xargs -n1 basename)
(( ${#trees[@]} )) || { echo "no trees: run bench/cuda/ab_prepare.sh here first and carry .ab"; exit 2; }
last=${trees[-1]}
build() {  # tree targets...
  local t=$1; shift
  cmake -S .ab/$t -B build-ab/$t -G Ninja -DCMAKE_BUILD_TYPE=Release -DTQ_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
    -DTQ_BUILD_BENCH=OFF -DTQ_WITH_FAISS=OFF > "$OUT/build_$t.log" 2>&1 \
    && cmake --build build-ab/$t -j "$(nproc)" --target "$@" >> "$OUT/build_$t.log" 2>&1 \
    || { echo "build $t failed"; grep -E "error" -A5 "$OUT/build_$t.log" | head -30; return 1; }
  echo "build $t ok ($((SECONDS - t0)) s)"
}
for t in "${trees[@]}"; do
  if [[ $what != bench && $t == "$last" ]]; then build $t turboquant_shared tq_test_cuda || exit 1
  else build $t turboquant_shared || exit 1; fi
done
if [[ $what != bench ]]; then
  timeout 300 build-ab/$last/tests/tq_test_cuda --gtest_filter="${TEST_FILTER:-*}" > "$OUT/test_$last.log" 2>&1
  echo "tests $last: exit $? ($((SECONDS - t0)) s)"
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|Expected|Which is|seed|differ" "$OUT/test_$last.log" | head -20
  for tool in memcheck racecheck; do
    timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 build-ab/$last/tests/tq_test_cuda \
      --gtest_filter="${SAN_FILTER:-CudaDecode.SmallShapes:CudaDecode.LongSegmentsMergeInTwoLevels}" > "$OUT/san_${tool}.log" 2>&1
    echo "$tool $last: exit $? ($((SECONDS - t0)) s) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/san_${tool}.log" | tail -1)"
  done
fi
if [[ $what != test ]]; then
  codecs=${CODECS:-tq3+q,tq3,k4v4,fp16}
  run() {  # tree tag args...
    local t=$1 tag=$2; shift 2
    PYTHONUNBUFFERED=1 timeout 200 python3 bench/cuda/bench_decode.py --lib build-ab/$t/libturboquant.so \
      --out "$OUT/b_$tag" --append-codecs "" --codecs "$codecs" "$@" > "$OUT/bench_$tag.log" 2>&1 \
      || echo "bench $tag failed: $(tail -2 "$OUT/bench_$tag.log")"
  }
  for round in 1 2; do for t in "${trees[@]}"; do run $t "$t.s$round" --batch 1 --context "${SMALL:-1024,16384,131072}"; done; done
  for t in "${trees[@]}"; do run $t "$t.l" --batch 8,32 --context "${LARGE:-16384,131072}"; done
  echo "bench done ($((SECONDS - t0)) s)"
  python3 - "$OUT" <<'PY'
import csv, glob, sys, collections
rows, tags = collections.defaultdict(dict), set()
for f in sorted(glob.glob(sys.argv[1] + "/b_*/bench_decode.csv")):
    tag = f.split("/")[-2][2:]
    tags.add(tag)
    for r in csv.DictReader(open(f)):
        rows[(int(r["batch"]), int(r["context"]), r["codec"])][tag] = float(r["us"])
tags = sorted(tags)
print("| B | T | codec | " + " | ".join(tags) + " |")
print("|---|---|---|" + "---|" * len(tags))
for k in sorted(rows):
    print(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(f"{rows[k][t]:.1f}" if t in rows[k] else "" for t in tags) + " |")
PY
fi
