#!/usr/bin/env bash
# On the GPU box: build the library with the decode timeline (-DTQ_DECODE_TRACE) into build/trace and
# print the per-CTA timeline of small-batch decode steps (bench/cuda/trace_decode.py).
#   bash bench/cuda/trace_on_box.sh [codec shapes...]   e.g. tq3 1x1024 1x16384
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
codec=${1:-tq3}; shift || true
hwy=(); [[ -d .hwy ]] && hwy=(-Dhwy_DIR="$PWD/.hwy/usr/lib/x86_64-linux-gnu/cmake/hwy") \
  && export LD_LIBRARY_PATH="$PWD/.hwy/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
cmake -S . -B build/trace "${hwy[@]}" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTQ_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DTQ_BUILD_BENCH=OFF -DTQ_WITH_FAISS=OFF -DTQ_BUILD_TESTS=OFF -DCMAKE_CUDA_FLAGS=-DTQ_DECODE_TRACE > "$OUT/trace_build.log" 2>&1 \
  && cmake --build build/trace -j 16 --target turboquant_shared >> "$OUT/trace_build.log" 2>&1 \
  || { grep -E "error" -A5 "$OUT/trace_build.log" | head -40; exit 1; }
python3 bench/cuda/trace_decode.py --lib build/trace/libturboquant.so --codec "$codec" --shapes "${@:-1x1024}" 2>&1 | tee -a "$OUT/trace.txt"
