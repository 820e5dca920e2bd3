#!/usr/bin/env python3
"""One decode shape, run a few times without graphs: the target for ncu (bench/cuda/run_on_box.sh).
  python3 profile_one.py --lib build/box/libturboquant.so --codec tq3 --batch 32 --context 16384"""
import argparse, ctypes, os, sys
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--codec", default="tq3")
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--context", type=int, default=16384)
ap.add_argument("--iters", type=int, default=8)
a = ap.parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tqcuda
from tqcuda import Hq, Hkv, D, PT, dev, PageInfo, check
lib = tqcuda.load(a.lib)

B, T = a.batch, a.context
npg = T // PT
p = ctypes.c_void_p()
name, flags = tqcuda.split_codec(a.codec)  # tq3+q: V in token quads
check(lib.tq_cuda_decode_plan_create_ex(name.encode(), B, Hq, Hkv, D, PT, npg, B * npg, T, 1, 1, ctypes.c_float(0.0),
                                        ctypes.c_uint(flags), ctypes.byref(p)))
ws_b, ctas, ki, vi = ctypes.c_size_t(), ctypes.c_int(), PageInfo(), PageInfo()
check(lib.tq_cuda_decode_plan_info(p, ctypes.byref(ws_b), ctypes.byref(ctas), ctypes.byref(ki), ctypes.byref(vi)))
kp = torch.randint(0, 256, (B * npg * ki.page_bytes,), device=dev, dtype=torch.uint8)
vp = torch.randint(0, 256, (B * npg * vi.page_bytes,), device=dev, dtype=torch.uint8)
if a.codec == "fp16":  # finite fp16 values
    kp = torch.randn(kp.numel() // 2, device=dev, dtype=torch.float16).view(torch.uint8)
    vp = torch.randn(vp.numel() // 2, device=dev, dtype=torch.float16).view(torch.uint8)
q = torch.randn(B, Hq, D, device=dev, dtype=torch.float16)
out = torch.empty(B, Hq, D, device=dev, dtype=torch.float16)
ws = torch.empty(ws_b.value, device=dev, dtype=torch.uint8)
table = torch.arange(B * npg, device=dev, dtype=torch.int32).view(B, npg)
lens = torch.full((B,), T, device=dev, dtype=torch.int32)
for _ in range(a.iters):
    check(lib.tq_cuda_decode_run(p, ctypes.c_void_p(q.data_ptr()), ctypes.c_void_p(kp.data_ptr()), ctypes.c_void_p(vp.data_ptr()),
                                 ctypes.c_void_p(table.data_ptr()), ctypes.c_void_p(lens.data_ptr()), ctypes.c_void_p(out.data_ptr()),
                                 ctypes.c_void_p(ws.data_ptr()), None))
torch.cuda.synchronize()
print(f"{a.codec} B={B} T={T}: {ctas.value} CTAs, workspace {ws_b.value} B")
