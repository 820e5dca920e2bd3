#!/usr/bin/env python3
"""Decode-attention benchmark on the GPU box, one process: our CUDA kernels through the C ABI
(ctypes on torch tensors' device pointers) against PyTorch scaled_dot_product_attention (fp16,
enable_gqa=True) on the same shapes. Every step is captured in a CUDA graph for both (launch
overhead out of the picture; SDPA without a graph is reported too). A reference check runs first:
our fp16 path vs SDPA on identical K/V. Prints a table, writes CSV (and an SVG plot if matplotlib
is there) to --out."""
import argparse, csv, ctypes, json, math, os, sys
import torch
import torch.nn.functional as F
from triton.testing import do_bench

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--batch", default="1,8,32")
ap.add_argument("--context", default="1024,4096,16384,65536,131072")
ap.add_argument("--codecs", default="fp16,k4v4,tq4,k4v3,tq3,tq2")
ap.add_argument("--out", default=".")
a = ap.parse_args()
Hq, Hkv, D, PT = 32, 8, 128, 64
dev = torch.device("cuda")
lib = ctypes.CDLL(a.lib)

class PageInfo(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("page_tokens", "codes_bytes", "scalar_bytes", "head_block_bytes", "page_bytes")]

lib.tq_last_error.restype = ctypes.c_char_p
def check(st):
    if st != 0:
        raise RuntimeError(lib.tq_last_error().decode())

def make_plan(codec, B, T, npages):
    p = ctypes.c_void_p()
    check(lib.tq_cuda_decode_plan_create(codec.encode(), B, Hq, Hkv, D, PT, T // PT, npages, T, 1, 1,
                                         ctypes.c_float(0.0), ctypes.byref(p)))
    ws, sp, ki, vi = ctypes.c_size_t(), ctypes.c_int(), PageInfo(), PageInfo()
    check(lib.tq_cuda_decode_plan_info(p, ctypes.byref(ws), ctypes.byref(sp), ctypes.byref(ki), ctypes.byref(vi)))
    return p, ws.value, sp.value, ki, vi

def random_pool(info, npages, fp16):
    if fp16:  # pass-through: random fp16 values
        return torch.randn(npages * info.page_bytes // 2, device=dev, dtype=torch.float16).view(torch.uint8)
    pool = torch.randint(0, 256, (npages * info.page_bytes,), device=dev, dtype=torch.uint8)
    hb = pool.view(npages, Hkv, info.head_block_bytes)
    s0 = PT * info.codes_bytes
    norms = hb[:, :, s0:s0 + PT * info.scalar_bytes].contiguous().view(torch.float16)
    norms.copy_(torch.rand_like(norms) * 4 + 8)  # norms ~ |k| of LLM keys; codes: any bits are valid
    hb[:, :, s0:s0 + PT * info.scalar_bytes] = norms.view(torch.uint8)
    return pool

def graph_of(fn):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g

def run_ours(p, ws, q, kp, vp, table, lens, out):
    return lambda: check(lib.tq_cuda_decode_run(p, ctypes.c_void_p(q.data_ptr()), ctypes.c_void_p(kp.data_ptr()),
        ctypes.c_void_p(vp.data_ptr()), ctypes.c_void_p(table.data_ptr()), ctypes.c_void_p(lens.data_ptr()),
        ctypes.c_void_p(out.data_ptr()), ctypes.c_void_p(ws.data_ptr()),
        ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)))

# ---- reference check: our fp16 path vs SDPA on identical K/V ----
B, T = 3, 4096
q = torch.randn(B, Hq, D, device=dev, dtype=torch.float16)
k = torch.randn(B, Hkv, T, D, device=dev, dtype=torch.float16)
v = torch.randn_like(k)
ref = F.scaled_dot_product_attention(q[:, :, None], k, v, enable_gqa=True)[:, :, 0].float()
npg = T // PT
p, wsb, _, ki, vi = make_plan("fp16", B, T, B * npg)
kp = k.view(B, Hkv, npg, PT, D).permute(0, 2, 1, 3, 4).contiguous().view(torch.uint8).flatten()
vp = v.view(B, Hkv, npg, PT, D).permute(0, 2, 1, 3, 4).contiguous().view(torch.uint8).flatten()
table = torch.arange(B * npg, device=dev, dtype=torch.int32).view(B, npg)
lens = torch.full((B,), T, device=dev, dtype=torch.int32)
out = torch.full((B, Hq, D), float("nan"), device=dev, dtype=torch.float16)
ws = torch.empty(wsb, device=dev, dtype=torch.uint8)
run_ours(p, ws, q, kp, vp, table, lens, out)()
torch.cuda.synchronize()
rel = ((out.float() - ref).norm() / ref.norm()).item()
print(f"reference check (ours fp16 vs SDPA, B=3 T=4096): rel L2 {rel:.2e}", flush=True)
assert rel < 2e-3, "our fp16 decode disagrees with SDPA"
lib.tq_cuda_decode_plan_destroy(p)

rows = []
for B in map(int, a.batch.split(",")):
    for T in map(int, a.context.split(",")):
        q = torch.randn(B, Hq, D, device=dev, dtype=torch.float16)
        k = torch.randn(B, Hkv, T, D, device=dev, dtype=torch.float16)
        v = torch.randn_like(k)
        sd = lambda: F.scaled_dot_product_attention(q[:, :, None], k, v, enable_gqa=True)
        sdpa_plain = do_bench(sd, warmup=25, rep=100, return_mode="median") * 1e3
        g = graph_of(sd)
        sdpa = do_bench(g.replay, warmup=25, rep=100, return_mode="median") * 1e3
        del g, k, v
        fp16_bytes = 2 * B * T * Hkv * D * 2
        print(f"B={B:3d} T={T:7d} SDPA {sdpa:9.1f} us (no graph {sdpa_plain:9.1f}) {fp16_bytes / sdpa / 1e6:5.2f} TB/s", flush=True)
        rows.append(dict(batch=B, context=T, codec="sdpa_fp16", us=sdpa, us_no_graph=sdpa_plain, speedup=1.0,
                         bytes=fp16_bytes, tbps=fp16_bytes / sdpa / 1e6))
        npg = T // PT
        table = torch.arange(B * npg, device=dev, dtype=torch.int32).view(B, npg)
        lens = torch.full((B,), T, device=dev, dtype=torch.int32)
        for codec in a.codecs.split(","):
            try:
                p, wsb, splits, ki, vi = make_plan(codec, B, T, B * npg)
            except RuntimeError as e:
                print(f"   {codec:6s} unsupported: {e}")
                continue
            kp = random_pool(ki, B * npg, codec == "fp16")
            vp = random_pool(vi, B * npg, codec == "fp16")
            ws = torch.empty(wsb, device=dev, dtype=torch.uint8)
            out = torch.empty(B, Hq, D, device=dev, dtype=torch.float16)
            fn = run_ours(p, ws, q, kp, vp, table, lens, out)
            g = graph_of(fn)
            us = do_bench(g.replay, warmup=25, rep=100, return_mode="median") * 1e3
            assert torch.isfinite(out).all(), codec
            flag = ctypes.c_int()
            check(lib.tq_cuda_decode_check(p, ctypes.c_void_p(ws.data_ptr()), ctypes.byref(flag)))
            assert flag.value == 0
            nbytes = B * T * Hkv * (ki.codes_bytes + ki.scalar_bytes + vi.codes_bytes + vi.scalar_bytes)
            rows.append(dict(batch=B, context=T, codec=codec, us=us, us_no_graph=None, speedup=sdpa / us,
                             bytes=nbytes, tbps=nbytes / us / 1e6, splits=splits))
            print(f"   {codec:6s} {us:9.1f} us  x{sdpa / us:5.2f} vs SDPA  {nbytes / us / 1e6:5.2f} TB/s on compressed bytes  splits {splits}", flush=True)
            del g, kp, vp, ws
            lib.tq_cuda_decode_plan_destroy(p)
        torch.cuda.empty_cache()

os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "bench_decode.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["batch", "context", "codec", "us", "us_no_graph", "speedup", "bytes", "tbps", "splits"])
    w.writeheader()
    for r in rows:
        w.writerow(r)
json.dump(dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, rows=rows),
          open(os.path.join(a.out, "bench_decode.json"), "w"), indent=1)
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    for ax, B in zip(axes, sorted({r["batch"] for r in rows})):
        for codec in [c for c in ["sdpa_fp16"] + a.codecs.split(",")]:
            pts = [(r["context"], r["speedup"]) for r in rows if r["batch"] == B and r["codec"] == codec]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=codec)
        ax.set_xscale("log", base=2); ax.set_title(f"B={B}"); ax.set_xlabel("context T"); ax.grid(alpha=.3)
    axes[0].set_ylabel("speedup over SDPA fp16 (higher is better)"); axes[0].legend()
    fig.suptitle(f"decode attention, Hq=32 Hkv=8 D=128, {torch.cuda.get_device_name()}")
    fig.tight_layout(); fig.savefig(os.path.join(a.out, "bench_decode.svg"))
except ImportError:
    print("matplotlib missing: no plot")
