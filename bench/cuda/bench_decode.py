#!/usr/bin/env python3
"""Decode-attention benchmark on the GPU box, one process: our CUDA kernels through the C ABI
(ctypes on torch tensors' device pointers) against PyTorch scaled_dot_product_attention (fp16,
enable_gqa=True) on the same shapes. Every step is captured in a CUDA graph for both (launch
overhead out of the picture; SDPA without a graph is reported too). Reference checks run first:
our fp16 path vs SDPA on identical K/V, and for every codec the v3 kernel vs the v1 CUDA-core
kernels (TQ_CUDA_DECODE_V1) on identical random pools, unequal lengths and shuffled pages. Prints
a table, writes CSV, JSON and an SVG plot (matplotlib) to --out."""
import argparse, csv, ctypes, json, math, os, sys
import torch
import torch.nn.functional as F
from triton.testing import do_bench

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--batch", default="1,8,32")
ap.add_argument("--context", default="1024,4096,16384,65536,131072")
ap.add_argument("--codecs", default="fp16,k4v4,k4v3,tq4,tq3.5,tq3,tq3+q,tq2.5,tq2")  # +q: V in token quads
ap.add_argument("--append-codecs", default="tq2,tq3,tq3+q,tq3+q prefill,tq4,fp16")  # " prefill": slots 0 .. n-1
ap.add_argument("--out", default=".")
a = ap.parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tqcuda import Hq, Hkv, D, PT, dev, PageInfo, check, make_plan, random_pool, graph_of, run_ours, error_flag, split_codec
import tqcuda
lib = tqcuda.load(a.lib)

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

# ---- v3 vs v1 (independent CUDA-core kernels) on identical compressed pools ----
def cross_check(codec, B=4, T=8192):
    npg = T // PT
    try:
        p3, wb3, _, ki, vi = make_plan(codec, B, T, B * npg)
    except RuntimeError as e:
        return None
    os.environ["TQ_CUDA_DECODE_V1"] = "1"
    try:
        p1, wb1, _, _, _ = make_plan(codec, B, T, B * npg)
    except RuntimeError:  # no v1 kernel (fractional codecs): the GPU tests check v3 against the CPU
        lib.tq_cuda_decode_plan_destroy(p3)
        return "no v1"
    finally:
        del os.environ["TQ_CUDA_DECODE_V1"]
    kp = random_pool(ki, B * npg, codec == "fp16")
    vp = random_pool(vi, B * npg, codec == "fp16")
    q = torch.randn(B, Hq, D, device=dev, dtype=torch.float16)
    table = torch.randperm(B * npg, device=dev).to(torch.int32).view(B, npg)
    lens = torch.tensor([T, T // 3 + 5, 1, 777][:B], device=dev, dtype=torch.int32)
    outs = []
    for p, wb in ((p3, wb3), (p1, wb1)):
        ws = torch.empty(wb, device=dev, dtype=torch.uint8)
        out = torch.full((B, Hq, D), float("nan"), device=dev, dtype=torch.float16)
        for _ in range(2):  # twice on one workspace: the second run must not differ
            run_ours(p, ws, q, kp, vp, table, lens, out)()
        torch.cuda.synchronize()
        assert error_flag(p, ws) == 0, codec
        outs.append(out.float())
        lib.tq_cuda_decode_plan_destroy(p)
    return ((outs[0] - outs[1]).norm() / outs[1].norm()).item()

xcheck = {}
for codec in a.codecs.split(","):
    r = cross_check(codec)
    if r is None or isinstance(r, str):
        print(f"cross-check {codec:6s}: {r or 'unsupported'}")
        continue
    xcheck[codec] = r
    print(f"cross-check {codec:6s}: v3 vs v1 rel L2 {r:.2e} {'ok' if r < 5e-3 else 'MISMATCH'}", flush=True)

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
            assert error_flag(p, ws) == 0
            nbytes = B * T * Hkv * (ki.codes_bytes + ki.scalar_bytes + vi.codes_bytes + vi.scalar_bytes)
            rows.append(dict(batch=B, context=T, codec=codec, us=us, us_no_graph=None, speedup=sdpa / us,
                             bytes=nbytes, tbps=nbytes / us / 1e6, splits=splits))
            print(f"   {codec:6s} {us:9.1f} us  x{sdpa / us:5.2f} vs SDPA  {nbytes / us / 1e6:5.2f} TB/s on compressed bytes  ctas {splits}", flush=True)
            del g, kp, vp, ws
            lib.tq_cuda_decode_plan_destroy(p)
        torch.cuda.empty_cache()

# ---- append (encode into pages) throughput vs device copy bandwidth, same run ----
src = torch.randn(1 << 28, device=dev, dtype=torch.float16)
dst = torch.empty_like(src)
copy_ms = do_bench(lambda: dst.copy_(src), warmup=25, rep=100, return_mode="median")
copy_tbps = 2 * src.numel() * 2 / (copy_ms * 1e-3) / 1e12
del src, dst
print(f"\ndevice copy: {copy_tbps:.2f} TB/s (read + write)", flush=True)
append_rows = []
for codec in filter(None, a.append_codecs.split(",")):  # "" skips the append rows
    prefill = codec.endswith(" prefill")  # slots 0 .. n-1 (whole token quads) instead of random ones
    codec = codec.split()[0]
    for n in (32, 65536):
        ap_ = ctypes.c_void_p()
        npages = (n + PT - 1) // PT + 1
        name, flags = split_codec(codec)
        check(lib.tq_cuda_append_plan_create_ex(name.encode(), Hkv, D, PT, npages, 1, ctypes.c_uint(flags), ctypes.byref(ap_)))
        info = PageInfo()
        check(lib.tq_cuda_append_plan_info(ap_, ctypes.byref(info)))
        pool = torch.empty(npages * info.page_bytes, device=dev, dtype=torch.uint8)
        xin = torch.randn(n, Hkv, D, device=dev, dtype=torch.float16)
        slots = (torch.arange(n, device=dev) if prefill else torch.randperm(npages * PT, device=dev)[:n]).to(torch.int32)
        fn = lambda: check(lib.tq_cuda_append_run(ap_, ctypes.c_void_p(xin.data_ptr()), ctypes.c_void_p(slots.data_ptr()),
                                                  n, ctypes.c_void_p(pool.data_ptr()),
                                                  ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)))
        g = graph_of(fn)
        us = do_bench(g.replay, warmup=25, rep=100, return_mode="median") * 1e3
        flag = ctypes.c_int()
        check(lib.tq_cuda_append_check(ap_, ctypes.byref(flag)))
        assert flag.value == 0
        nbytes = xin.numel() * 2 + n * Hkv * (info.codes_bytes + info.scalar_bytes) + n * 4
        tbps = nbytes / us / 1e6
        label = codec + (" prefill" if prefill else "")
        append_rows.append(dict(codec=label, tokens=n, us=us, bytes=nbytes, tbps=tbps, of_copy=tbps / copy_tbps))
        print(f"append {label:13s} {n:6d} tokens x {Hkv} heads: {us:8.1f} us  {tbps:5.2f} TB/s = {100 * tbps / copy_tbps:5.1f}% of copy",
              flush=True)
        del g, pool, xin
        lib.tq_cuda_append_plan_destroy(ap_)

os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "bench_decode.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["batch", "context", "codec", "us", "us_no_graph", "speedup", "bytes", "tbps", "splits"])
    w.writeheader()
    for r in rows:
        w.writerow(r)
json.dump(dict(gpu=torch.cuda.get_device_name(), torch=torch.__version__, rows=rows, cross_check=xcheck,
               copy_tbps=copy_tbps, append=append_rows),
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

# ---- short table last (µs, speedup over SDPA in parentheses) ----
codecs = [c for c in a.codecs.split(",") if any(r["codec"] == c for r in rows)]
print("\n| B | T | SDPA fp16 µs | " + " | ".join(f"{c} µs (x)" for c in codecs) + " |")
for B in map(int, a.batch.split(",")):
    for T in map(int, a.context.split(",")):
        cell = {r["codec"]: r for r in rows if r["batch"] == B and r["context"] == T}
        if "sdpa_fp16" not in cell:
            continue
        line = f"| {B} | {T // 1024}K | {cell['sdpa_fp16']['us']:.1f} | "
        line += " | ".join(f"{cell[c]['us']:.1f} ({cell[c]['speedup']:.2f})" if c in cell else "-" for c in codecs)
        print(line + " |")
print("cross-check v3 vs v1:", ", ".join(f"{k} {v:.1e}" for k, v in xcheck.items()))
print("append (65536 tokens):", ", ".join(f"{r['codec']} {r['tbps']:.2f} TB/s ({100 * r['of_copy']:.0f}% of copy)"
                                          for r in append_rows if r["tokens"] == 65536),
      "| 32 tokens:", ", ".join(f"{r['codec']} {r['us']:.1f} us" for r in append_rows if r["tokens"] == 32))
