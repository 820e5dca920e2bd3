#!/usr/bin/env bash
# On the GPU box: the decode kernels built with a debug instrument, then its script.
#   bash bench/cuda/debug_on_box.sh trace tq3 1x1024 1x16384   per-CTA timeline of small batches
#                                    (-DTQ_DECODE_TRACE, bench/cuda/trace_decode.py)
#   bash bench/cuda/debug_on_box.sh drop tq3 32x16384          the step with one stage dropped
#                                    (-DTQ_DECODE_DROP, bench/cuda/drop_stages.py; DROPS=0,8,32
#                                    picks the variants)
#   bash bench/cuda/debug_on_box.sh probe tq3 32x131072         every block pair's PV through the
#                                    fragment-native e4m3 probe (-DTQ_DECODE_PROBE, decode_v3.cuh)
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
what=$1 codec=${2:-tq3}; shift 2 || shift $#
case $what in
  trace) flag=-DTQ_DECODE_TRACE script=trace_decode.py ;;
  drop) flag=-DTQ_DECODE_DROP script=drop_stages.py ;;
  probe) flag=-DTQ_DECODE_PROBE script=drop_stages.py; DROPS=0 ;;
  *) echo "usage: $0 trace|drop|probe codec shapes..."; exit 2 ;;
esac
hwy=(); [[ -d .hwy ]] && hwy=(-Dhwy_DIR="$PWD/.hwy/usr/lib/x86_64-linux-gnu/cmake/hwy") \
  && export LD_LIBRARY_PATH="$PWD/.hwy/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
cmake -S . -B "build/$what" "${hwy[@]}" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTQ_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DTQ_BUILD_BENCH=OFF -DTQ_WITH_FAISS=OFF -DTQ_BUILD_TESTS=OFF -DCMAKE_CUDA_FLAGS="$flag" > "$OUT/${what}_build.log" 2>&1 \
  && cmake --build "build/$what" -j 16 --target turboquant_shared >> "$OUT/${what}_build.log" 2>&1 \
  || { grep -E "error" -A5 "$OUT/${what}_build.log" | head -40; exit 1; }
extra=(); [[ $what != trace && -n ${DROPS:-} ]] && extra=(--drops "$DROPS")
python3 "bench/cuda/$script" --lib "build/$what/libturboquant.so" --codec "$codec" --shapes "$@" "${extra[@]}" 2>&1 | tee -a "$OUT/$what.txt"
