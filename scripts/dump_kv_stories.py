#!/usr/bin/python3
"""Dump real Q/K/V tensors of stories260K (tiny llama, head_dim 8) for `tq eval`.

A numpy reference forward pass (fp32 weights, float64 arithmetic) reading the GGUF file with a tiny
GGUF v3 parser and tokenizing with the file's SentencePiece vocabulary (llama.cpp's SPM algorithm:
"▁"-escaped text, best-score bigram merges, byte fallback). It stands in until the C++ model runner
exists. Before dumping anything it checks that greedy decoding from BOS yields
"Once upon a time, there was a little girl named Lily." (independently established, see
/work/shared/data/README.md); if not, it stops.

Sequences (B = 16, T = 256 tokens each, BOS first): 3 chunks of each of the 4 shipped texts (out of
the model's distribution: Austen, Shakespeare, WikiText) + 4 stories sampled from the model itself
(temperature 1, seeded; in distribution).

Output (data/kv/, git-ignored), all float32, what a KV cache would store (K after RoPE):
  stories_L{l}.safetensors   q [B, 8, T, 8]  k [B, 4, T, 8]  v [B, 4, T, 8]   layer l = 0..4
  stories_all.safetensors    the 5 layers stacked along B (layer-major): q [5B, 8, T, 8], ...
Q at every position, so `tq eval` evaluates causal attention of all T queries.

Usage: /usr/bin/python3 scripts/dump_kv_stories.py [--gguf PATH] [--out data/kv] [--T 256]
"""
import argparse
import heapq
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_write import save_safetensors  # noqa: E402

# ---------------------------------------------------------------------------------------------
# GGUF v3 (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): little-endian header, KV
# metadata, tensor infos, then tensor data aligned to general.alignment (default 32).
# ---------------------------------------------------------------------------------------------
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class Reader:
    def __init__(self, buf):
        self.b, self.o = buf, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.o)[0]
        self.o += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        if self.o + n > len(self.b):
            raise ValueError("GGUF: string runs past the end of the file")
        s = self.b[self.o:self.o + n].decode("utf-8", errors="replace")
        self.o += n
        return s

    def value(self, t):
        if t in _SCALARS:
            return self.take(_SCALARS[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("<I"), self.take("<Q")
            return [self.value(et) for _ in range(n)]
        raise ValueError(f"GGUF: unknown value type {t}")


def load_gguf(path):
    buf = open(path, "rb").read()
    r = Reader(buf)
    if buf[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    r.o = 4
    version = r.take("<I")
    if version != 3:
        raise ValueError(f"{path}: GGUF version {version}, this parser reads v3")
    n_tensors, n_kv = r.take("<Q"), r.take("<Q")
    meta = {}
    for _ in range(n_kv):
        k = r.string()
        meta[k] = r.value(r.take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        nd = r.take("<I")
        dims = [r.take("<Q") for _ in range(nd)]
        ttype, off = r.take("<I"), r.take("<Q")
        infos.append((name, dims, ttype, off))
    align = meta.get("general.alignment", 32)
    base = (r.o + align - 1) // align * align
    tensors = {}
    for name, dims, ttype, off in infos:
        if ttype != 0:
            raise ValueError(f"tensor {name}: type {ttype}, only F32 (0) is supported")
        n = int(np.prod(dims))
        a = np.frombuffer(buf, dtype="<f4", count=n, offset=base + off)
        tensors[name] = a.reshape(list(reversed(dims))).astype(np.float64)  # ggml ne0 is the fastest axis
    return meta, tensors


# ---------------------------------------------------------------------------------------------
# SentencePiece (llama.cpp "SPM" tokenizer)
# ---------------------------------------------------------------------------------------------
class Tokenizer:
    def __init__(self, meta):
        self.tokens = meta["tokenizer.ggml.tokens"]
        self.scores = meta["tokenizer.ggml.scores"]
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.bos = meta.get("tokenizer.ggml.bos_token_id", 1)
        self.eos = meta.get("tokenizer.ggml.eos_token_id", 2)

    def encode(self, text):
        text = "▁" + text.replace(" ", "▁")
        syms = list(text)  # one symbol per code point
        # Merge the adjacent pair whose concatenation is a token with the highest score, leftmost first.
        prev = list(range(-1, len(syms) - 1))
        nxt = list(range(1, len(syms) + 1))
        nxt[-1] = -1
        alive = [True] * len(syms)
        heap = []

        def push(i):
            j = nxt[i]
            if i < 0 or j < 0:
                return
            t = syms[i] + syms[j]
            if t in self.ids:
                heapq.heappush(heap, (-self.scores[self.ids[t]], i, t))

        for i in range(len(syms) - 1):
            push(i)
        while heap:
            _, i, t = heapq.heappop(heap)
            j = nxt[i] if alive[i] else -1
            if j < 0 or syms[i] + syms[j] != t:
                continue  # stale entry
            syms[i] = t
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] >= 0:
                prev[nxt[j]] = i
            if prev[i] >= 0:
                push(prev[i])
            push(i)
        out = []
        for i, s in enumerate(syms):
            if not alive[i]:
                continue
            if s in self.ids:
                out.append(self.ids[s])
            else:  # byte fallback
                for byte in s.encode("utf-8"):
                    out.append(self.ids[f"<0x{byte:02X}>"])
        return out

    def decode(self, ids):
        bs = bytearray()
        for i in ids:
            t = self.tokens[i]
            if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
                bs.append(int(t[3:5], 16))
            elif i in (self.bos, self.eos):
                continue
            else:
                bs += t.replace("▁", " ").encode("utf-8")
        s = bs.decode("utf-8", errors="replace")
        return s[1:] if s.startswith(" ") else s


# ---------------------------------------------------------------------------------------------
# Llama forward pass (float64): RMSNorm, RoPE on interleaved pairs, GQA causal attention, SwiGLU.
# ---------------------------------------------------------------------------------------------
class Model:
    def __init__(self, meta, w):
        a = meta.get("general.architecture", "llama")
        self.n_layer = meta[f"{a}.block_count"]
        self.dim = meta[f"{a}.embedding_length"]
        self.n_head = meta[f"{a}.attention.head_count"]
        self.n_kv = meta[f"{a}.attention.head_count_kv"]
        self.eps = meta[f"{a}.attention.layer_norm_rms_epsilon"]
        self.theta = meta.get(f"{a}.rope.freq_base", 10000.0)
        self.hd = self.dim // self.n_head
        self.w = w
        self.out = w.get("output.weight", w["token_embd.weight"])  # tied embeddings when absent

    def rms(self, x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * g

    def rope(self, x, pos):  # x [T, H, hd]; pairs (2i, 2i+1)
        hd = x.shape[-1]
        inv = self.theta ** (-np.arange(0, hd, 2) / hd)
        ang = pos[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        y = np.empty_like(x)
        y[..., 0::2] = x0 * c - x1 * s
        y[..., 1::2] = x0 * s + x1 * c
        return y

    def forward(self, toks):
        """toks [T] -> logits [T, vocab], per layer (q [H,T,hd], k [Hkv,T,hd], v [Hkv,T,hd])."""
        w, T = self.w, len(toks)
        x = w["token_embd.weight"][toks]
        pos = np.arange(T, dtype=np.float64)
        mask = np.triu(np.full((T, T), -np.inf), 1)
        g = self.n_head // self.n_kv
        qkv = []
        for l in range(self.n_layer):
            p = f"blk.{l}."
            h = self.rms(x, w[p + "attn_norm.weight"])
            q = self.rope((h @ w[p + "attn_q.weight"].T).reshape(T, self.n_head, self.hd), pos)
            k = self.rope((h @ w[p + "attn_k.weight"].T).reshape(T, self.n_kv, self.hd), pos)
            v = (h @ w[p + "attn_v.weight"].T).reshape(T, self.n_kv, self.hd)
            qkv.append((q.transpose(1, 0, 2), k.transpose(1, 0, 2), v.transpose(1, 0, 2)))
            kk, vv = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)  # query head j reads KV head j // g
            s = np.einsum("thd,shd->hts", q, kk) / np.sqrt(self.hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            o = np.einsum("hts,shd->thd", s, vv).reshape(T, self.dim)
            x = x + o @ w[p + "attn_output.weight"].T
            h = self.rms(x, w[p + "ffn_norm.weight"])
            gate = h @ w[p + "ffn_gate.weight"].T
            x = x + ((gate / (1 + np.exp(-gate))) * (h @ w[p + "ffn_up.weight"].T)) @ w[p + "ffn_down.weight"].T
        logits = self.rms(x, w["output_norm.weight"]) @ self.out.T
        return logits, qkv


def generate(model, tok, n, rng=None):
    ids = [tok.bos]
    for _ in range(n):
        logits = model.forward(np.array(ids))[0][-1]
        if rng is None:
            ids.append(int(np.argmax(logits)))
        else:
            p = np.exp(logits - logits.max())
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--gguf", default=os.path.join(here, "../../shared/data/stories260K.gguf"))
    ap.add_argument("--text-dir", default=os.path.join(here, "../../shared/data/text"))
    ap.add_argument("--out", default=os.path.join(here, "../data/kv"))
    ap.add_argument("--T", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=3, help="chunks per text file")
    ap.add_argument("--generated", type=int, default=4, help="sequences sampled from the model")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    meta, w = load_gguf(a.gguf)
    tok, model = Tokenizer(meta), Model(meta, w)
    expected = "Once upon a time, there was a little girl named Lily."
    got = tok.decode(generate(model, tok, 16))
    print(f"greedy from BOS: {got!r}")
    if not got.startswith(expected):
        sys.exit(f"forward pass check FAILED: expected {expected!r}; not dumping")
    enc = tok.encode(expected)
    if tok.decode(enc) != expected:
        sys.exit("tokenizer round trip FAILED")

    T, rng = a.T, np.random.default_rng(a.seed)
    seqs, names = [], []
    for fn in sorted(os.listdir(a.text_dir)):
        text = open(os.path.join(a.text_dir, fn), encoding="utf-8", errors="replace").read()
        for c in range(a.chunks):  # chunks from spread-out offsets, each tokenized on its own
            start = (c + 1) * len(text) // (a.chunks + 2)
            ids = tok.encode(" ".join(text[start:start + 8 * T].split()))[: T - 1]
            seqs.append([tok.bos] + ids)
            names.append(f"{fn}@{start}")
    for g in range(a.generated):
        seqs.append(generate(model, tok, T - 1, rng))
        names.append(f"generated#{g}")
    if any(len(s) != T for s in seqs):
        sys.exit("a text chunk is shorter than T tokens")
    per_layer = [[[], [], []] for _ in range(model.n_layer)]
    for s in seqs:
        _, qkv = model.forward(np.array(s))
        for l, (q, k, v) in enumerate(qkv):
            for i, t in enumerate((q, k, v)):
                per_layer[l][i].append(t)
    os.makedirs(a.out, exist_ok=True)
    md = {"source": "stories260K.gguf, scripts/dump_kv_stories.py", "T": str(T), "sequences": json.dumps(names)}
    stacked = [[], [], []]
    for l in range(model.n_layer):
        q, k, v = (np.stack(x) for x in per_layer[l])
        save_safetensors(os.path.join(a.out, f"stories_L{l}.safetensors"), {"q": q, "k": k, "v": v}, {**md, "layer": str(l)})
        for i, t in enumerate((q, k, v)):
            stacked[i].append(t)
        print(f"layer {l}: q {q.shape} k {k.shape}  |k| mean {np.linalg.norm(k, axis=-1).mean():.2f}"
              f"  |v| mean {np.linalg.norm(v, axis=-1).mean():.2f}")
    q, k, v = (np.concatenate(x) for x in stacked)
    save_safetensors(os.path.join(a.out, "stories_all.safetensors"), {"q": q, "k": k, "v": v}, {**md, "layer": "all"})
    print(f"wrote {a.out}/stories_L*.safetensors and stories_all.safetensors ({len(seqs)} sequences x {T} tokens)")


if __name__ == "__main__":
    main()
