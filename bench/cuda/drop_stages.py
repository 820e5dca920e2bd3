#!/usr/bin/env python3
"""Where a large-batch decode step's time goes: the same step with one stage dropped (library built
with -DTQ_DECODE_DROP; TQ_CUDA_DECODE_DROP bits, see decode_v3.cuh): 1 = K lookups, 2 = V lookups,
4 = softmax, 8 = PV, 16 = scoring, 32 = all compute (loads and barriers only). Results are wrong
by design. µs = median of CUDA-graph replays. Also times the -DTQ_DECODE_PROBE libraries (PV of
other designs, src/cuda/decode_probe.cuh) with --drops 0: bench/cuda/probe_on_box.sh.
  python3 drop_stages.py --lib build/drop/libturboquant.so --codec tq3 --shapes 32x16384 32x131072"""
import argparse, os, sys
import torch
from triton.testing import do_bench

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--codec", default="tq3")
ap.add_argument("--shapes", nargs="+", default=["32x16384", "32x131072"])
ap.add_argument("--drops", default="0,1,2,4,3,7")
a = ap.parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tqcuda
from tqcuda import Hq, D, PT, dev, make_plan, random_pool, graph_of, run_ours
lib = tqcuda.load(a.lib)
names = {0: "all stages", 1: "no K lookup", 2: "no V lookup", 4: "no softmax", 3: "no K, V lookups",
         7: "no lookups, no softmax", 8: "no PV", 16: "no scoring", 24: "no scoring, no PV",
         32: "loads only"}
drops = [int(x) for x in a.drops.split(",")]
print(f"| {a.codec} B x T | " + " | ".join(names.get(d, str(d)) for d in drops) + " |")
print("|---|" + "---|" * len(drops))
for shape in a.shapes:
    B, T = map(int, shape.split("x"))
    npg = B * (T // PT)
    cells = []
    pools = None
    for d in drops:
        os.environ["TQ_CUDA_DECODE_DROP"] = str(d)
        p, ws_b, ctas, ki, vi = make_plan(a.codec, B, T, npg)
        if pools is None:
            pools = (random_pool(ki, npg, False), random_pool(vi, npg, False))
        q = torch.randn(B, Hq, D, device=dev, dtype=torch.float16)
        out = torch.empty(B, Hq, D, device=dev, dtype=torch.float16)
        ws = torch.empty(ws_b, device=dev, dtype=torch.uint8)
        table = torch.arange(npg, device=dev, dtype=torch.int32).view(B, T // PT)
        lens = torch.full((B,), T, device=dev, dtype=torch.int32)
        g = graph_of(run_ours(p, ws, q, pools[0], pools[1], table, lens, out))
        cells.append(do_bench(g.replay, warmup=25, rep=100, return_mode="median") * 1e3)
        lib.tq_cuda_decode_plan_destroy(p)
    del os.environ["TQ_CUDA_DECODE_DROP"]
    print(f"| {B} x {T} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
