#!/usr/bin/python3
"""Benchmark sets for bench/ann (written under data/ann/, git-ignored):
  glove100_base.npy [100000, 100], glove100_queries.npy [1000, 100]: GloVe 6B 100-d from
      data/glove100.npy (scripts/fetch_glove.sh), L2-normalized, one seeded permutation of all
      words: the first 100K rows are the base, the next 1K the queries (disjoint from the base).
  gauss1536_base.npy [N, 1536], gauss1536_queries.npy [1000, 1536]: i.i.d. N(0, 1), not normalized.
Usage: make_sets.py [--gauss-n N]   (default N = 20000)"""
import argparse
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gauss-n", type=int, default=20000)
    args = ap.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data")
    out = os.path.join(root, "ann")
    os.makedirs(out, exist_ok=True)
    g = np.load(os.path.join(root, "glove100.npy"))
    rng = np.random.default_rng(20250425)
    perm = rng.permutation(g.shape[0])
    x = g[perm[:101000]].astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise SystemExit("zero vector in the GloVe sample")
    x = (x / norms).astype(np.float32)
    np.save(os.path.join(out, "glove100_base.npy"), x[:100000])
    np.save(os.path.join(out, "glove100_queries.npy"), x[100000:])
    rng = np.random.default_rng(1536)
    np.save(os.path.join(out, "gauss1536_base.npy"), rng.standard_normal((args.gauss_n, 1536), dtype=np.float32))
    np.save(os.path.join(out, "gauss1536_queries.npy"), rng.standard_normal((1000, 1536), dtype=np.float32))
    print(f"{out}: glove100 100000 + 1000, gauss1536 {args.gauss_n} + 1000")


if __name__ == "__main__":
    main()
