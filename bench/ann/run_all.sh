#!/usr/bin/env bash
# Runs the comparisons reported in docs/ANN.md and writes bench/ann/results/*.jsonl (+ the SVG
# plots). Needs: the cpu build with faiss (tq_ann_compare), data from scripts/fetch_glove.sh.
# Usage: bash bench/ann/run_all.sh [threads]   (default: all cores). Takes ~30 min on 2 cores,
# most of it faiss PQ training with Debian's reference BLAS and faiss's non-SIMD SQ scans.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=${1:-$(nproc)}
bin=build/cpu/bench/ann/tq_ann_compare
[ -x "$bin" ] || { echo "build tq_ann_compare first (cmake --build --preset cpu --target tq_ann_compare)" >&2; exit 1; }
bash scripts/fetch_glove.sh
[ -f data/ann/glove100_base.npy ] || /usr/bin/python3 bench/ann/make_sets.py
out=bench/ann/results
mkdir -p "$out"
meta() { echo "{\"machine\": \"$(lscpu | sed -n 's/^Model name: *//p') x $(nproc)\", \"commit\": \"$(git rev-parse --short HEAD)\", \"date\": \"$(date -u +%FT%TZ)\", \"threads\": $threads, \"load_average\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}"; }

meta > "$out/glove100.meta.json"
"$bin" --base data/ann/glove100_base.npy --queries data/ann/glove100_queries.npy --metric ip --k 10 \
  --threads "$threads" --repeat 2 \
  --tq "TQ1,nc;TQ2;TQ2,nc;TQ2.5,nc;TQ3;TQ3,nc;TQ3.5,nc;TQ4;TQ4,nc;TQ2,nc,rerank32" \
  --faiss "Flat;SQ4;SQ8;PQ25;PQ50;PQ50x4fs;PQ100x4fs" > "$out/glove100.jsonl"

meta > "$out/gauss1536.meta.json"
"$bin" --base data/ann/gauss1536_base.npy --queries data/ann/gauss1536_queries.npy --metric ip --k 10 \
  --threads "$threads" --repeat 1 --train-max 5000 \
  --tq "TQ1,nc;TQ2;TQ2,nc;TQ3,nc;TQ4;TQ4,nc" \
  --faiss "Flat;SQ4;SQ8;PQ384x4fs;PQ768x4fs" > "$out/gauss1536.jsonl"

/usr/bin/python3 bench/ann/plot_svg.py "$out"
# Indexing time, the issue-6 target (separate processes, wall and CPU time, load): bash bench/ann/add_time.sh
