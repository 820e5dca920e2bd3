#!/usr/bin/env python3
"""One large append (encode into pages), run a few times without graphs: the target for ncu.
  python3 profile_append.py --lib build/box/libturboquant.so --codec tq3 --tokens 65536"""
import argparse, ctypes, os, sys
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tqcuda
from tqcuda import Hkv, D, PT, dev, PageInfo, check

ap = argparse.ArgumentParser()
ap.add_argument("--lib", required=True)
ap.add_argument("--codec", default="tq3")
ap.add_argument("--tokens", type=int, default=65536)
ap.add_argument("--iters", type=int, default=4)
a = ap.parse_args()
lib = tqcuda.load(a.lib)
n = a.tokens
npages = (n + PT - 1) // PT + 1
p = ctypes.c_void_p()
check(lib.tq_cuda_append_plan_create(a.codec.encode(), Hkv, D, PT, npages, 1, ctypes.byref(p)))
info = PageInfo()
check(lib.tq_cuda_append_plan_info(p, ctypes.byref(info)))
pool = torch.empty(npages * info.page_bytes, device=dev, dtype=torch.uint8)
x = torch.randn(n, Hkv, D, device=dev, dtype=torch.float16)
slots = torch.randperm(npages * PT, device=dev)[:n].to(torch.int32)
for _ in range(a.iters):
    check(lib.tq_cuda_append_run(p, ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(slots.data_ptr()), n,
                                 ctypes.c_void_p(pool.data_ptr()), None))
torch.cuda.synchronize()
print(f"append {a.codec}: {n} tokens x {Hkv} heads")
