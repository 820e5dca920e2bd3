#!/usr/bin/env python3
"""Timeline of one decode step per CTA (library built with -DTQ_DECODE_TRACE; see decode_v3.cuh's
TQ_TRACE slots): where a small-batch step spends its microseconds.
  python3 trace_decode.py --lib build/trace/libturboquant.so --codec tq3 --shapes 1x1024 1x16384
(or: bash bench/cuda/debug_on_box.sh trace tq3 1x1024 1x16384)
Prints per slot the median / max over CTAs of the stamp (µs since the CTA's entry), the spread of
CTA entries (globaltimer), and the merging CTAs' epilogue; graph-replay µs of the same plan."""
import argparse, ctypes, os, statistics, sys, tempfile
import torch
from triton.testing import do_bench

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--codec", default="tq3")
ap.add_argument("--shapes", nargs="+", default=["1x1024", "1x4096", "1x16384"])
ap.add_argument("--ghz", type=float, default=1.98, help="SM clock for cycles -> µs")
a = ap.parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tqcuda
from tqcuda import Hq, Hkv, D, PT, dev, check, make_plan, random_pool, graph_of, run_ours
lib = tqcuda.load(a.lib)

SLOTS = {12: "warp 0 starts", 13: "lengths loaded", 14: "producer at barrier", 1: "lengths+prefix", 2: "page id (producer)", 3: "copies issued",
         16: "q row loaded (warp 0)", 17: "q row rotated (warp 0)", 18: "q rows in smem (sync)", 4: "q ready (consumers)",
         5: "first stage landed", 6: "chunks done", 0: "4 warps in smem", 7: "partial written+fence", 8: "atomic done",
         9: "merge folded (tid 0)", 10: "merge done", 11: "row written"}
for shape in a.shapes:
    B, T = map(int, shape.split("x"))
    path = os.path.join(tempfile.gettempdir(), f"trace_{B}_{T}.txt")
    os.environ["TQ_CUDA_DECODE_TRACE"] = path
    npg = B * (T // PT)
    p, ws_b, ctas, ki, vi = make_plan(a.codec, B, T, npg)
    del os.environ["TQ_CUDA_DECODE_TRACE"]
    kp, vp = random_pool(ki, npg, a.codec == "fp16"), random_pool(vi, npg, a.codec == "fp16")
    q = torch.randn(B, Hq, D, device=dev, dtype=torch.float16)
    out = torch.empty(B, Hq, D, device=dev, dtype=torch.float16)
    ws = torch.empty(ws_b, device=dev, dtype=torch.uint8)
    table = torch.arange(npg, device=dev, dtype=torch.int32).view(B, T // PT)
    lens = torch.full((B,), T, device=dev, dtype=torch.int32)
    g = graph_of(run_ours(p, ws, q, kp, vp, table, lens, out))
    us = do_bench(g.replay, warmup=25, rep=100, return_mode="median") * 1e3
    g.replay()
    torch.cuda.synchronize()
    lib.tq_cuda_decode_plan_destroy(p)  # writes the last replay's stamps
    rows = [list(map(int, l.split())) for l in open(path)]
    rows = [r for r in rows if r[15]]  # CTAs that ran
    cyc = 1e-3 / a.ghz
    t0 = min(r[15] for r in rows)
    print(f"== {a.codec} B={B} T={T}: {len(rows)} CTAs, graph replay {us:.1f} µs; CTA entries spread "
          f"{(max(r[15] for r in rows) - t0) / 1e3:.2f} µs (globaltimer)")
    for i, name in SLOTS.items():
        v = [r[i] * cyc for r in rows if r[i]]
        if v:
            print(f"  {i:2d} {name:24s} median {statistics.median(v):6.2f}  max {max(v):6.2f} µs  ({len(v)} CTAs)")
    merg = [r for r in rows if r[9]]
    if merg:
        r = max(merg, key=lambda r: r[15] / 1e3 + r[11] * cyc)
        print("  last merging CTA: entry +%.2f µs; " % ((r[15] - t0) / 1e3) +
              ", ".join(f"{i}:{r[i] * cyc:.2f}" for i in SLOTS if r[i]))
    end = max(r[15] / 1e3 + max(r[i] for i in SLOTS) * cyc for r in rows) - t0 / 1e3
    print(f"  first CTA entry -> last stamp: {end:.2f} µs")
