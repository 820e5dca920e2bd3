#!/usr/bin/env bash
# On the GPU box: the production library and -DTQ_DECODE_PROBE libraries (PV probes of
# decode_v3.cuh: kind 1 e4m3 and 2 int8 from a fragment-native V layout, 3 int8 from today's layout)
# built side by side, then the same decode steps timed with each (drop_stages.py, no stage dropped).
#   PROBES="2 3" bash bench/cuda/probe_on_box.sh tq3 32x131072 32x16384
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
codec=${1:-tq3}; shift || true
kinds=${PROBES:-1 2 3}  # PROBE_TESTS=k: also build and run the decode tests against probe k (kind 4 is exact)
hwy=(); [[ -d .hwy ]] && hwy=(-Dhwy_DIR="$PWD/.hwy/usr/lib/x86_64-linux-gnu/cmake/hwy") \
  && export LD_LIBRARY_PATH="$PWD/.hwy/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
build() {  # dir flags
  cmake -S . -B "build/$1" "${hwy[@]}" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTQ_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
    -DTQ_BUILD_BENCH=OFF -DTQ_WITH_FAISS=OFF -DTQ_BUILD_TESTS=${3:+ON} -DCMAKE_CUDA_FLAGS="$2" > "$OUT/$1_build.log" 2>&1 \
    && cmake --build "build/$1" -j 5 --target turboquant_shared ${3:-} >> "$OUT/$1_build.log" 2>&1
}
pids=(); build prod "" & pids+=($!)
for k in $kinds; do
  t=; [[ ${PROBE_TESTS:-} == "$k" ]] && t=tq_test_cuda
  build probe$k "-DTQ_DECODE_PROBE -DTQ_PROBE_KIND=$k" $t & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { grep -h -E "error" -A5 "$OUT"/*_build.log | head -30; exit 1; }; done
if [[ -n ${PROBE_TESTS:-} ]]; then
  timeout 200 ./build/probe$PROBE_TESTS/tests/tq_test_cuda --gtest_filter='CudaDecode.*:CudaKvStore*' > "$OUT/probe_test.log" 2>&1
  echo "decode tests against probe$PROBE_TESTS: exit $?"; grep -E "^\[  (FAILED|PASSED) |Failure|Expected|Which is" "$OUT/probe_test.log" | head -12
fi
for v in prod $(for k in $kinds; do echo probe$k; done); do
  echo "== $v${TQ_CUDA_DECODE_STAGES:+ (stages $TQ_CUDA_DECODE_STAGES)}"
  timeout 200 python3 bench/cuda/drop_stages.py --lib "build/$v/libturboquant.so" --codec "$codec" --shapes "$@" --drops 0 2>&1 | tee -a "$OUT/probe.txt"
done
for k in $kinds; do
  cuobjdump -sass -fun '_ZN2tq4cuda2v313decode_kernelILi128ELi3ELi3ELi0ELi0ELi0EEEvNS1_6ParamsE' \
    build/probe$k/CMakeFiles/tq_objects.dir/src/cuda/decode_v3_d128.cu.o > "$OUT/probe${k}_sass.txt" 2>&1
done
