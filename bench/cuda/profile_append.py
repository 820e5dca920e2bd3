#!/usr/bin/env python3
"""Append (encode into pages) throughput against the device copy bandwidth, in one process.
  python3 profile_append.py --lib build/box/libturboquant.so                 # table: v2 and v1
  python3 profile_append.py --lib ... --ncu --codec tq3 --tokens 65536       # a few plain runs, for ncu
x fp16 [tokens, Hkv=8, D=128] (torch.randn), random distinct slots in 64-token pages (--slots
contiguous: slots 0 .. tokens-1, a prefill). Bytes moved =
input read + codes and norms written + slot ids. µs: median of triton do_bench over CUDA-graph
replays. Before timing, the v2 pools are compared byte for byte with the v1 pool on the same input
(two independent GPU encoders; the GPU tests compare both with the CPU encoder). The fractional
codecs (tq2.5, tq3.5) have one kernel ("frac"): no second GPU encoder to compare with here."""
import argparse, ctypes, os, sys
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tqcuda
from tqcuda import Hkv, D, PT, dev, PageInfo, check, graph_of

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--codec", default="tq3")
ap.add_argument("--tokens", type=int, default=65536)
ap.add_argument("--iters", type=int, default=4)
ap.add_argument("--ncu", action="store_true", help="only run one plan --iters times (profiler target)")
ap.add_argument("--kernel", default="v2", help="v2, v1 or frac (tq2.5 / tq3.5)")
ap.add_argument("--codecs", default="tq2,tq3,tq4,fp16,tq2.5,tq3.5", help="table: codecs, comma-separated (tq3+q: token quads)")
ap.add_argument("--slots", default="random", help="random (distinct, shuffled) or contiguous (a prefill from slot 0)")
a = ap.parse_args()
lib = tqcuda.load(a.lib)
stream = lambda: ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)


KERNELS = {"v2": {}, "v1": {"TQ_CUDA_APPEND_V1": "1"}, "frac": {}}  # environment read at plan creation


def plan(codec, npages, kern):
    os.environ.update(KERNELS[kern])
    p = ctypes.c_void_p()
    name, flags = tqcuda.split_codec(codec)
    check(lib.tq_cuda_append_plan_create_ex(name.encode(), Hkv, D, PT, npages, 1, ctypes.c_uint(flags), ctypes.byref(p)))
    for k in KERNELS[kern]: os.environ.pop(k)
    info = PageInfo()
    check(lib.tq_cuda_append_plan_info(p, ctypes.byref(info)))
    return p, info


def inputs(n):
    npages = (n + PT - 1) // PT + 1
    x = torch.randn(n, Hkv, D, device=dev, dtype=torch.float16)
    slots = (torch.randperm(npages * PT, device=dev)[:n] if a.slots == "random" else torch.arange(n, device=dev)).to(torch.int32)
    return npages, x, slots


def run(p, x, slots, n, pool):
    check(lib.tq_cuda_append_run(p, ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(slots.data_ptr()), n,
                                 ctypes.c_void_p(pool.data_ptr()), stream()))


if a.ncu:
    npages, x, slots = inputs(a.tokens)
    p, info = plan(a.codec, npages, a.kernel)
    pool = torch.empty(npages * info.page_bytes, device=dev, dtype=torch.uint8)
    for _ in range(a.iters):
        run(p, x, slots, a.tokens, pool)
    torch.cuda.synchronize()
    print(f"append {a.codec} ({a.kernel}): {a.tokens} tokens x {Hkv} heads")
    sys.exit(0)

from triton.testing import do_bench

src = torch.randn(1 << 28, device=dev, dtype=torch.float16)
dst = torch.empty_like(src)
copy_ms = do_bench(lambda: dst.copy_(src), warmup=25, rep=100, return_mode="median")
copy_tbps = 2 * src.numel() * 2 / (copy_ms * 1e-3) / 1e12
del src, dst
torch.cuda.empty_cache()
print(f"device copy: {copy_tbps:.2f} TB/s (read + write), {torch.cuda.get_device_name()}", flush=True)
rows = []
for codec in a.codecs.split(","):
    kerns = ("v1",) if codec == "fp16" else ("frac",) if "." in codec else ("v2", "v1")  # fp16, tqB.5: one kernel
    for n in (32, 65536):
        npages, x, slots = inputs(n)
        res = {}
        pools = {}
        for kern in kerns:
            p, info = plan(codec, npages, kern)
            pool = torch.full((npages * info.page_bytes,), 0xAB, device=dev, dtype=torch.uint8)
            run(p, x, slots, n, pool)
            torch.cuda.synchronize()
            pools[kern] = pool.clone()
            g = graph_of(lambda: run(p, x, slots, n, pool))
            us = do_bench(g.replay, warmup=25, rep=100, return_mode="median") * 1e3
            flag = ctypes.c_int()
            check(lib.tq_cuda_append_check(p, ctypes.byref(flag)))
            assert flag.value == 0, f"device flag {flag.value}"
            nbytes = x.numel() * 2 + n * Hkv * (info.codes_bytes + info.scalar_bytes) + n * 4
            res[kern] = (us, nbytes / us / 1e6)
            del g, pool
            lib.tq_cuda_append_plan_destroy(p)
        same = "-" if len(pools) < 2 else \
            ("identical" if all(torch.equal(pools["v1"], v) for v in pools.values()) else "DIFFERENT")
        for kern, (us, tbps) in res.items():
            rows.append((codec, n, kern, us, tbps))
            print(f"append {codec:5s} {kern} {n:6d} tokens x {Hkv} heads: {us:8.1f} us  {tbps:5.2f} TB/s = "
                  f"{100 * tbps / copy_tbps:5.1f}% of copy  (v2 pools vs v1: {same})", flush=True)
        del pools, x, slots
        torch.cuda.empty_cache()

print(f"\n| codec | kernel | tokens x {Hkv} heads | µs | TB/s | % of copy ({copy_tbps:.2f} TB/s) |")
print("|---|---|---|---|---|---|")
for codec, n, kern, us, tbps in rows:
    print(f"| {codec} | {kern} | {n} | {us:.1f} | {tbps:.2f} | {100 * tbps / copy_tbps:.1f} |")
