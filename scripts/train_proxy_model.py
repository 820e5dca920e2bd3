#!/usr/bin/env python3
"""Train a small llama-architecture proxy model with head_dim 128 and GQA, write it as GGUF.

Why: stories260K (head_dim 8) is too small to say anything about KV compression at the head
dimensions real models use (128). This script trains, in a few minutes on one GPU, a model whose
attention has real-model geometry (head_dim 128, 4 query heads over 2 KV heads) on the texts in
../shared/data/text, and writes it in the form `tq perplexity` / `tq generate` read.

Architecture (what src/model/llama.cpp runs): token embedding, per layer RMSNorm -> Q/K/V
projections, RoPE on consecutive pairs (x[2i], x[2i+1]), theta 10000 (llama.cpp's rope type NORM,
so no weight permutation is needed), causal GQA attention (query head h reads KV head h // 2),
output projection, residual; RMSNorm -> SwiGLU FFN, residual; final RMSNorm; output tied to the
embedding (no output.weight tensor). No biases.

Vocabulary: SentencePiece-style byte fallback: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>
and "▁" (a space). tokenizer.ggml.add_space_prefix = false. Our tokenizer (SPM) then maps a text
exactly as encode() below does: each space to "▁", every other character to its UTF-8 bytes.

Data: every file of --text-dir; the last --heldout share of each file is held out, written to
OUT/heldout.txt, and never trained on. Training sequences are BOS + ctx-1 tokens from a random
offset, the same layout `tq perplexity` evaluates.

Outputs (in --out):
  proxy.gguf     the model (F16 matrices and F32 norms by default; --dtype f32 for all F32)
  heldout.txt    the held-out text
  proxy.json     config, training log summary, and the model's own held-out perplexity at
                 ctx 256 computed in PyTorch (fp32, same windows as `tq perplexity --ctx 256`):
                 `tq perplexity --kv fp32 --text OUT/heldout.txt` must reproduce it.

Usage (GPU box):   python3 scripts/train_proxy_model.py --out data/proxy --minutes 5
Without torch:     python3 scripts/train_proxy_model.py --out /tmp/p --random-weights
                   (numpy only: random weights, to check the GGUF writer and the C++ reader)
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np

SPACE = "\u2581"  # "▁"
N_SPECIAL = 3     # <unk>, <s>, </s>
BOS, EOS = 1, 2
SPACE_ID = N_SPECIAL + 256


# ---------------------------------------------------------------------------------------------
# Vocabulary and tokenizer (byte fallback + "▁")
# ---------------------------------------------------------------------------------------------
def vocab():
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [SPACE]
    types = [2, 3, 3] + [6] * 256 + [1]  # unknown, control, control, bytes, normal
    return toks, types


def encode(text):
    """The token ids our SPM tokenizer produces for `text` with this vocabulary (no BOS)."""
    out = []
    for ch in text.replace(" ", SPACE):
        if ch == SPACE:
            out.append(SPACE_ID)
        else:
            out.extend(N_SPECIAL + b for b in ch.encode("utf-8"))
    return out


# ---------------------------------------------------------------------------------------------
# GGUF v3 writer (format: include/turboquant/model/gguf.h)
# ---------------------------------------------------------------------------------------------
GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY = 4, 5, 6, 7, 8, 9
GGML_F32, GGML_F16 = 0, 1
ALIGN = 32


def _str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _value(v):
    """(type, bytes) for a Python value; lists become arrays of the first element's type."""
    if isinstance(v, bool):
        return GGUF_BOOL, struct.pack("<?", v)
    if isinstance(v, int):
        return GGUF_U32, struct.pack("<I", v)
    if isinstance(v, float):
        return GGUF_F32, struct.pack("<f", v)
    if isinstance(v, str):
        return GGUF_STRING, _str(v)
    if isinstance(v, tuple) and v[0] == "i32[]":
        return GGUF_ARRAY, struct.pack("<IQ", GGUF_I32, len(v[1])) + np.asarray(v[1], "<i4").tobytes()
    if isinstance(v, tuple) and v[0] == "f32[]":
        return GGUF_ARRAY, struct.pack("<IQ", GGUF_F32, len(v[1])) + np.asarray(v[1], "<f4").tobytes()
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return GGUF_ARRAY, struct.pack("<IQ", GGUF_STRING, len(v)) + b"".join(_str(x) for x in v)
    raise TypeError(f"no GGUF encoding for {type(v)}")


def write_gguf(path, meta, tensors):
    """meta: {key: value}; tensors: [(name, numpy array in PyTorch shape, ggml type)].
    A [out, in] row-major matrix is written with ne = (in, out): ggml lists the fastest axis first."""
    kv = b""
    for k, v in meta.items():
        t, b = _value(v)
        kv += _str(k) + struct.pack("<I", t) + b
    infos, blobs, off = b"", [], 0
    for name, a, gtype in tensors:
        a = np.ascontiguousarray(a, dtype="<f4" if gtype == GGML_F32 else "<f2")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"tensor {name} has non-finite values")
        ne = list(reversed(a.shape))
        infos += _str(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
        infos += struct.pack("<IQ", gtype, off)
        pad = (-a.nbytes) % ALIGN
        blobs.append(a.tobytes() + b"\0" * pad)
        off += a.nbytes + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta)) + kv + infos
    head += b"\0" * ((-len(head)) % ALIGN)
    with open(path, "wb") as f:
        f.write(head)
        for b in blobs:
            f.write(b)


def gguf_meta(cfg):
    toks, types = vocab()
    return {
        "general.architecture": "llama",
        "general.name": "tq-proxy",
        "general.alignment": ALIGN,
        "llama.context_length": cfg["ctx_train"],
        "llama.embedding_length": cfg["dim"],
        "llama.block_count": cfg["n_layer"],
        "llama.feed_forward_length": cfg["ffn"],
        "llama.attention.head_count": cfg["n_head"],
        "llama.attention.head_count_kv": cfg["n_kv_head"],
        "llama.attention.layer_norm_rms_epsilon": float(cfg["eps"]),
        "llama.rope.freq_base": float(cfg["theta"]),
        "llama.rope.dimension_count": cfg["dim"] // cfg["n_head"],
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": toks,
        "tokenizer.ggml.scores": ("f32[]", [0.0] * len(toks)),
        "tokenizer.ggml.token_type": ("i32[]", types),
        "tokenizer.ggml.bos_token_id": BOS,
        "tokenizer.ggml.eos_token_id": EOS,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.add_space_prefix": False,
    }


def gguf_tensors(w, cfg, dtype):
    """w: {llama.cpp tensor name: numpy array}; norms stay F32, matrices take `dtype`."""
    mat = GGML_F16 if dtype == "f16" else GGML_F32
    return [(name, a, GGML_F32 if a.ndim == 1 else mat) for name, a in sorted(w.items())]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def load_texts(text_dir, heldout):
    train, held = [], []
    for fn in sorted(os.listdir(text_dir)):
        if not fn.endswith(".txt"):
            continue
        text = open(os.path.join(text_dir, fn), encoding="utf-8").read()
        cut = int(len(text) * (1 - heldout))
        cut = text.rfind("\n", 0, cut) + 1 or cut  # cut at a line boundary
        train.append(text[:cut])
        held.append(text[cut:])
    return train, held


# ---------------------------------------------------------------------------------------------
# Model (PyTorch, imported only when training)
# ---------------------------------------------------------------------------------------------
def build_model(cfg):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    hd = cfg["dim"] // cfg["n_head"]

    class RMSNorm(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))

        def forward(self, x):
            xf = x.float()
            return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + cfg["eps"])).type_as(x) * self.weight

    def rope(x, cos, sin):  # x [B, H, T, hd]; consecutive pairs (2i, 2i+1)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            d, kvd = cfg["dim"], cfg["n_kv_head"] * hd
            self.attn_norm, self.ffn_norm = RMSNorm(d), RMSNorm(d)
            self.q = nn.Linear(d, d, bias=False)
            self.k = nn.Linear(d, kvd, bias=False)
            self.v = nn.Linear(d, kvd, bias=False)
            self.o = nn.Linear(d, d, bias=False)
            self.gate = nn.Linear(d, cfg["ffn"], bias=False)
            self.up = nn.Linear(d, cfg["ffn"], bias=False)
            self.down = nn.Linear(cfg["ffn"], d, bias=False)

        def forward(self, x, cos, sin):
            B, T, _ = x.shape
            h = self.attn_norm(x)
            q = self.q(h).view(B, T, cfg["n_head"], hd).transpose(1, 2)
            k = self.k(h).view(B, T, cfg["n_kv_head"], hd).transpose(1, 2)
            v = self.v(h).view(B, T, cfg["n_kv_head"], hd).transpose(1, 2)
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            g = cfg["n_head"] // cfg["n_kv_head"]
            k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)  # head h reads KV head h // g
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.o(a.transpose(1, 2).reshape(B, T, -1))
            h = self.ffn_norm(x)
            return x + self.down(F.silu(self.gate(h)) * self.up(h))

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            self.embd = nn.Embedding(cfg["vocab"], cfg["dim"])
            self.blocks = nn.ModuleList(Block() for _ in range(cfg["n_layer"]))
            self.norm = RMSNorm(cfg["dim"])
            inv = cfg["theta"] ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
            ang = torch.arange(cfg["ctx_train"], dtype=torch.float64)[:, None] * inv[None, :]
            self.register_buffer("cos", ang.cos().float(), persistent=False)
            self.register_buffer("sin", ang.sin().float(), persistent=False)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.02)
                elif isinstance(m, nn.Embedding):
                    nn.init.normal_(m.weight, std=0.02)
            for b in self.blocks:  # scaled residual projections (GPT-2)
                nn.init.normal_(b.o.weight, std=0.02 / math.sqrt(2 * cfg["n_layer"]))
                nn.init.normal_(b.down.weight, std=0.02 / math.sqrt(2 * cfg["n_layer"]))

        def forward(self, idx):
            T = idx.shape[1]
            x = self.embd(idx)
            cos, sin = self.cos[:T].to(x.dtype), self.sin[:T].to(x.dtype)
            for b in self.blocks:
                x = b(x, cos, sin)
            return self.norm(x) @ self.embd.weight.t()  # tied output

    return Llama()


def export_weights(model):
    """llama.cpp tensor names -> float32 numpy arrays in PyTorch [out, in] shape."""
    w = {"token_embd.weight": model.embd.weight, "output_norm.weight": model.norm.weight}
    for i, b in enumerate(model.blocks):
        p = f"blk.{i}."
        w.update({p + "attn_norm.weight": b.attn_norm.weight, p + "ffn_norm.weight": b.ffn_norm.weight,
                  p + "attn_q.weight": b.q.weight, p + "attn_k.weight": b.k.weight, p + "attn_v.weight": b.v.weight,
                  p + "attn_output.weight": b.o.weight, p + "ffn_gate.weight": b.gate.weight,
                  p + "ffn_up.weight": b.up.weight, p + "ffn_down.weight": b.down.weight})
    return {k: v.detach().float().cpu().numpy() for k, v in w.items()}


def random_weights(cfg, seed):
    """Numpy-only stand-in for a trained model (for checking the writer and reader without torch)."""
    rng = np.random.default_rng(seed)
    d, hd = cfg["dim"], cfg["dim"] // cfg["n_head"]
    kvd, ff, L = cfg["n_kv_head"] * hd, cfg["ffn"], cfg["n_layer"]
    w = {"token_embd.weight": rng.normal(0, d ** -0.5, (cfg["vocab"], d)),
         "output_norm.weight": 1 + 0.1 * rng.normal(size=d)}
    for i in range(L):
        p = f"blk.{i}."
        w.update({p + "attn_norm.weight": 1 + 0.1 * rng.normal(size=d), p + "ffn_norm.weight": 1 + 0.1 * rng.normal(size=d),
                  p + "attn_q.weight": rng.normal(0, d ** -0.5, (d, d)), p + "attn_k.weight": rng.normal(0, d ** -0.5, (kvd, d)),
                  p + "attn_v.weight": rng.normal(0, d ** -0.5, (kvd, d)),
                  p + "attn_output.weight": rng.normal(0, d ** -0.5 / L, (d, d)),
                  p + "ffn_gate.weight": rng.normal(0, d ** -0.5, (ff, d)), p + "ffn_up.weight": rng.normal(0, d ** -0.5, (ff, d)),
                  p + "ffn_down.weight": rng.normal(0, ff ** -0.5 / L, (d, ff))})
    return {k: v.astype(np.float32) for k, v in w.items()}


def windowed_ppl(logits_fn, ids, ctx, max_windows):
    """Perplexity exactly as `tq perplexity` computes it: windows of BOS + ctx-1 tokens, score 1..ctx-1."""
    per = ctx - 1
    n = min(len(ids) // per, max_windows)
    nll, count = 0.0, 0
    for w in range(n):
        win = [BOS] + ids[w * per:(w + 1) * per]
        lp = logits_fn(win)  # [ctx, vocab] float64 log-probabilities
        nll -= sum(lp[i, win[i + 1]] for i in range(ctx - 1))
        count += ctx - 1
    return math.exp(nll / count), n, count


# ---------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--text-dir", default=os.path.join(here, "../../shared/data/text"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--n-layer", type=int, default=6)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-kv-head", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=1408)
    ap.add_argument("--ctx", type=int, default=512, help="training sequence length (BOS included)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--steps", type=int, default=1500, help="training steps (~11 passes over the 3.5M training tokens)")
    ap.add_argument("--minutes", type=float, default=5.0, help="time budget: stops early when it runs out")
    ap.add_argument("--heldout", type=float, default=0.05, help="share of each text held out")
    ap.add_argument("--dtype", choices=["f16", "f32"], default="f16", help="GGUF matrix type")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--random-weights", action="store_true", help="no training (numpy only): check the writer")
    a = ap.parse_args()

    cfg = {"dim": a.dim, "n_layer": a.n_layer, "n_head": a.n_head, "n_kv_head": a.n_kv_head, "ffn": a.ffn,
           "vocab": len(vocab()[0]), "eps": 1e-5, "theta": 10000.0, "ctx_train": max(a.ctx, 2048)}
    if a.dim % a.n_head or a.n_head % a.n_kv_head or (a.dim // a.n_head) % 2:
        sys.exit("dim must split into an even head_dim and n_head must be a multiple of n_kv_head")
    os.makedirs(a.out, exist_ok=True)
    train_texts, held_texts = load_texts(a.text_dir, a.heldout)
    held = "".join(held_texts)
    with open(os.path.join(a.out, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write(held)
    held_ids = encode(held)
    info = {"config": cfg, "head_dim": a.dim // a.n_head, "seed": a.seed, "gguf_dtype": a.dtype,
            "train_chars": sum(map(len, train_texts)), "heldout_tokens": len(held_ids)}

    if a.random_weights:
        w = random_weights(cfg, a.seed)
        info["trained"] = False
    else:
        import torch
        import torch.nn.functional as F
        torch.manual_seed(a.seed)
        np.random.seed(a.seed)
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        data = torch.tensor(np.concatenate([np.asarray(encode(t), np.int64) for t in train_texts]))
        model = build_model(cfg).to(dev)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{n_params / 1e6:.1f}M parameters, {len(data) / 1e6:.2f}M training tokens, device {dev}", flush=True)
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
        gen = torch.Generator().manual_seed(a.seed)
        t0, step, log = time.time(), 0, []
        budget = a.minutes * 60
        warm = 100
        while step < a.steps and time.time() - t0 < budget:
            # cosine schedule over the expected number of steps (re-estimated from the elapsed time)
            frac = max(step / a.steps, (time.time() - t0) / budget)
            lr = a.lr * min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
            for g in opt.param_groups:
                g["lr"] = lr
            off = torch.randint(0, len(data) - a.ctx, (a.batch,), generator=gen)
            x = torch.stack([torch.cat([torch.tensor([BOS]), data[o:o + a.ctx - 1]]) for o in off.tolist()]).to(dev)
            with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
                logits = model(x[:, :-1])
            loss = F.cross_entropy(logits.float().reshape(-1, cfg["vocab"]), x[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step % 100 == 0:
                log.append((step, round(time.time() - t0, 1), round(loss.item(), 4)))
                print(f"step {step}  {time.time() - t0:.0f}s  loss {loss.item():.4f}  lr {lr:.2e}", flush=True)
        model.eval()
        w = export_weights(model)
        info.update({"trained": True, "steps": step, "seconds": round(time.time() - t0, 1), "params": n_params,
                     "train_tokens": len(data), "loss_log": log})

        # The reference number for the C++ runner: fp32 forward of the exported weights (rounded
        # to the GGUF dtype), same windows as `tq perplexity --ctx 256`.
        with torch.no_grad():
            if a.dtype == "f16":  # evaluate exactly what the file holds
                for m in model.modules():
                    if isinstance(m, torch.nn.Linear):
                        m.weight.copy_(m.weight.half().float())
                model.embd.weight.copy_(model.embd.weight.half().float())
            model.float()

            def logits_fn(win):
                lg = model(torch.tensor([win], device=dev))[0].double()
                return torch.log_softmax(lg, -1).cpu().numpy()

            ppl, n_win, n_tok = windowed_ppl(logits_fn, held_ids, 256, 40)
            info["heldout_ppl_ctx256_fp32"] = {"ppl": ppl, "windows": n_win, "tokens": n_tok}
            print(f"held-out perplexity (ctx 256, {n_win} windows, fp32 torch): {ppl:.4f}", flush=True)
            ids = [BOS]
            for _ in range(200):
                ids.append(int(model(torch.tensor([ids], device=dev))[0, -1].argmax()))
            toks = vocab()[0]
            text = b"".join(bytes([i - N_SPECIAL]) if N_SPECIAL <= i < SPACE_ID else (b" " if i == SPACE_ID else b"")
                            for i in ids[1:]).decode("utf-8", errors="replace")
            info["greedy_from_bos"] = text
            print("greedy from BOS:", repr(text[:200]), flush=True)

    path = os.path.join(a.out, "proxy.gguf")
    write_gguf(path, gguf_meta(cfg), gguf_tensors(w, cfg, a.dtype))
    with open(os.path.join(a.out, "proxy.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB), {a.out}/heldout.txt, {a.out}/proxy.json")


if __name__ == "__main__":
    main()
