#!/usr/bin/python3
"""Synthetic Q/K/V with LLM-like statistics, for `tq eval` at head_dim 64 and 128.

What real LLM keys look like, and how each trait is generated here (per KV head, seeded):
  * Outlier channels. A few key channels carry magnitudes 10-50x the others, nearly constant
    over tokens (a large mean with a small fluctuation). Here: `--outlier-pairs` RoPE pairs (2
    channels each; default 2 pairs at D=64, 3 at D=128), picked among the lowest-frequency third of
    the pairs (where they sit in Llama-family models), each with a magnitude m ~ U(10, 50) (in units
    of the ordinary channels' scale), a random phase, and a per-token fluctuation of 0.1 m.
  * RoPE. Keys are generated before RoPE and rotated by position (pairs (2i, 2i+1), theta 10000),
    so the outlier pairs turn slowly with position and the ordinary channels mix within pairs.
  * Uneven ordinary channels: per-channel scale ~ lognormal(0, 0.3).
  * Attention sink. Token 0 has a key with an extra component along a sink direction that every
    query shares, so that it takes a large share of attention (mean sink mass is printed), and a
    small value (0.2x), as observed in trained models.
  * Peaked content attention. Each query attends strongly to a few (`--relevant`, default 3) earlier
    tokens: it contains a scaled copy of their keys' ordinary channels, plus noise. Query outlier
    channels are small (0.3), so the key outliers shift all scores of a query nearly equally — they
    hurt through quantization (the step or the norm they inflate), not through the softmax.
  * Values: Gaussian with per-channel lognormal(0, 0.3) scales, no outliers (values are not
    outlier-heavy in LLMs), no RoPE.
Queries are the last Tq positions (causal in `tq eval`). GQA: Hq = 4 Hkv.

Output (git-ignored): data/kv/synth_d{D}.safetensors with q [B, Hq, Tq, D], k, v [B, Hkv, T, D].
Usage: /usr/bin/python3 scripts/gen_synthetic_kv.py [--D 128] [--T 2048] [--Tq 64] [--B 2] [--Hkv 4]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_write import save_safetensors  # noqa: E402


def rope(x, pos, theta=10000.0):
    """x [..., T, D] rotated by position pos [T] on interleaved pairs."""
    D = x.shape[-1]
    ang = pos[:, None] * theta ** (-np.arange(0, D, 2) / D)[None, :]
    c, s = np.cos(ang), np.sin(ang)
    y = np.empty_like(x)
    y[..., 0::2] = x[..., 0::2] * c - x[..., 1::2] * s
    y[..., 1::2] = x[..., 0::2] * s + x[..., 1::2] * c
    return y


def head(rng, T, Tq, D, G, a):
    n_pairs = a.outlier_pairs if a.outlier_pairs >= 0 else (2 if D <= 64 else 3)
    pairs = rng.choice(np.arange(D // 2 - D // 6, D // 2), size=n_pairs, replace=False)
    out_ch = np.sort(np.concatenate([2 * pairs, 2 * pairs + 1]))
    normal = np.setdiff1d(np.arange(D), out_ch)
    pos = np.arange(T, dtype=np.float64)

    # Keys before RoPE.
    sig = np.exp(0.3 * rng.standard_normal(D))
    k = rng.standard_normal((T, D)) * sig
    for p in pairs:
        m, phase = rng.uniform(10, 50), rng.uniform(0, 2 * np.pi)
        for c, f in ((2 * p, np.cos(phase)), (2 * p + 1, np.sin(phase))):
            k[:, c] = m * f + 0.1 * m * rng.standard_normal(T)
    sink_dir = np.zeros(D)
    sink_dir[normal] = rng.standard_normal(len(normal))
    sink_dir /= np.linalg.norm(sink_dir)
    k[0, normal] = 0.3 * k[0, normal]
    k[0] += a.sink * np.sqrt(D) * sink_dir
    k = rope(k, pos)

    # Values.
    v = rng.standard_normal((T, D)) * np.exp(0.3 * rng.standard_normal(D))
    v[0] *= 0.2

    # Queries (post-RoPE space) for the last Tq positions, G query heads per KV head.
    q = np.empty((G, Tq, D))
    for g in range(G):
        for i in range(Tq):
            p = T - Tq + i
            x = rng.standard_normal(D)
            x[out_ch] *= 0.3
            rel = rng.choice(np.arange(1, p + 1), size=a.relevant, replace=False)
            for j in rel:  # content match on ordinary channels
                kn = np.zeros(D)
                kn[normal] = k[j, normal]
                x += a.content * np.sqrt(D) * kn / np.dot(kn, kn) * rng.uniform(0.5, 1.0)
            x += a.sink * sink_dir  # q.k_0 / sqrt(D) gains sink^2
            q[g, i] = x
    return q, k, v, out_ch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--D", type=int, default=128)
    ap.add_argument("--T", type=int, default=2048)
    ap.add_argument("--Tq", type=int, default=64)
    ap.add_argument("--B", type=int, default=2)
    ap.add_argument("--Hkv", type=int, default=4)
    ap.add_argument("--G", type=int, default=4, help="query heads per KV head")
    ap.add_argument("--outlier-pairs", type=int, default=-1, help="-1: 2 at D<=64, 3 above")
    ap.add_argument("--relevant", type=int, default=3)
    ap.add_argument("--content", type=float, default=9.0, help="score boost of a relevant token (score units)")
    ap.add_argument("--sink", type=float, default=2.7, help="sink key component (x sqrt(D))")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(here, "../data/kv"))
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    Q = np.empty((a.B, a.Hkv * a.G, a.Tq, a.D))
    K = np.empty((a.B, a.Hkv, a.T, a.D))
    V = np.empty_like(K)
    for b in range(a.B):
        for h in range(a.Hkv):
            q, k, v, out_ch = head(rng, a.T, a.Tq, a.D, a.G, a)
            Q[b, h * a.G:(h + 1) * a.G], K[b, h], V[b, h] = q, k, v
    # Statistics of the reference attention, for the record (docs/QUALITY.md).
    s = np.einsum("bhid,bhtd->bhit", Q, np.repeat(K, a.G, axis=1)) / np.sqrt(a.D)
    s = np.exp(s - s.max(-1, keepdims=True))
    p = s / s.sum(-1, keepdims=True)
    ent = -(p * np.log(np.maximum(p, 1e-300))).sum(-1)
    kn = np.linalg.norm(K, axis=-1)
    e = (K ** 2).sum(axis=(0, 2))  # [Hkv, D] energy per channel
    share = np.sort(e / e.sum(-1, keepdims=True), axis=-1)[:, ::-1]
    n_out = 2 * (a.outlier_pairs if a.outlier_pairs >= 0 else (2 if a.D <= 64 else 3))
    print(f"D={a.D}: sink mass {p[..., 0].mean():.3f}, max prob {p.max(-1).mean():.3f}, "
          f"entropy {ent.mean():.2f} nats (uniform {np.log(a.T):.2f}); |k| mean {kn.mean():.1f}; "
          f"top-{n_out} channels hold {share[:, :n_out].sum(-1).mean():.3f} of the key energy")
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"synth_d{a.D}.safetensors")
    save_safetensors(path, {"q": Q, "k": K, "v": V}, {"generator": "scripts/gen_synthetic_kv.py", "args": vars(a)})
    print(f"wrote {path}: q {Q.shape} k {K.shape}")


if __name__ == "__main__":
    main()
