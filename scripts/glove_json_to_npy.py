#!/usr/bin/python3
"""Converts the wink-embeddings JSON ({words: [...], vectors: {word: [v_0..v_{d-1}, l2norm, index]}})
to a float32 .npy [n, d] in `words` order plus a words file. Refuses malformed entries rather than
writing a partly filled array. Usage: glove_json_to_npy.py IN.json OUT.npy WORDS.txt"""
import json
import sys

import numpy as np


def main(src, out, words_out):
    with open(src) as f:
        j = json.load(f)
    dim = int(j["dimensions"])
    words = j["words"]
    vecs = j["vectors"]
    x = np.empty((len(words), dim), dtype=np.float32)
    for i, w in enumerate(words):
        e = vecs[w]
        if len(e) < dim:
            sys.exit(f"word {w!r}: entry has {len(e)} values, expected >= {dim}")
        x[i] = e[:dim]
    if not np.all(np.isfinite(x)):
        sys.exit("non-finite values in the embeddings")
    # Write to temporary names and rename, so that an interrupted run leaves no half file behind.
    np.save(out + ".tmp.npy", x)
    with open(words_out + ".tmp", "w") as f:
        f.write("\n".join(words) + "\n")
    import os
    os.replace(out + ".tmp.npy", out)
    os.replace(words_out + ".tmp", words_out)
    print(f"{out}: {x.shape[0]} x {x.shape[1]} float32, mean norm {np.linalg.norm(x, axis=1).mean():.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:4])
