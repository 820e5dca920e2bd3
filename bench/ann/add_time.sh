#!/usr/bin/env bash
# Indexing time of GloVe-100 (100K x 100) for the issue-6 target (< 50 ms at 4 bits on the 2-core
# machine): RUNS separate processes per (index, threads), each timing one FlatIndex::add of the whole
# base (tq_ann_compare --repeat 1, 10 queries); prints wall min / median / max, the process CPU time
# of the add (on a busy shared machine, CPU time / threads estimates the uncontended wall time) and
# the load average. Usage: bash bench/ann/add_time.sh [runs, default 11]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-11}
bin=build/cpu/bench/ann/tq_ann_compare
q=$(mktemp --suffix=.npy)
trap 'rm -f "$q"' EXIT
/usr/bin/python3 -c "import numpy as np, sys; np.save(sys.argv[1], np.load('data/ann/glove100_queries.npy')[:10])" "$q"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for idx in "TQ4" "TQ4,nc" "TQ2,nc"; do
  for t in 1 2; do
    for i in $(seq "$runs"); do
      "$bin" --base data/ann/glove100_base.npy --queries "$q" --tq "$idx" --faiss "" --threads "$t" --repeat 1 2>/dev/null |
        /usr/bin/python3 -c "import json, sys; j = json.loads(sys.stdin.readline()); print(j['build_s'] * 1e3, j['build_cpu_s'] * 1e3)"
    done | /usr/bin/python3 -c "
import statistics, sys
w, c = zip(*(map(float, l.split()) for l in sys.stdin))
print(f'{sys.argv[1]:8} threads {sys.argv[2]}: wall min {min(w):.1f} / median {statistics.median(w):.1f} / max {max(w):.1f} ms;'
      f' CPU time (all threads) min {min(c):.1f} / median {statistics.median(c):.1f} ms ({len(w)} runs)')" "$idx" "$t"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
