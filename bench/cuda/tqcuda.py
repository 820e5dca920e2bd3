"""ctypes helpers shared by the CUDA benchmarks (bench_decode.py, sweep_split.py, profile_one.py):
the library's decode/append C ABI on torch tensors' device pointers, random compressed pools, CUDA
graph capture. Shapes: Hq=32, Hkv=8, D=128, 64-token pages unless a caller says otherwise."""
import ctypes
import torch

Hq, Hkv, D, PT = 32, 8, 128, 64
dev = torch.device("cuda")
lib = None


class PageInfo(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32)
                for n in ("page_tokens", "codes_bytes", "scalar_bytes", "head_block_bytes", "page_bytes", "quad_bits")]


QUADS = 1  # TQ_CUDA_TOKEN_QUADS


def split_codec(codec):
    """'tq3+q' -> ('tq3', TQ_CUDA_TOKEN_QUADS): V pages in token quads; 'tq3' -> ('tq3', 0)."""
    return (codec[:-2], QUADS) if codec.endswith("+q") else (codec, 0)


def load(path):
    global lib
    lib = ctypes.CDLL(path)
    lib.tq_last_error.restype = ctypes.c_char_p
    return lib


def check(st):
    if st != 0:
        raise RuntimeError(lib.tq_last_error().decode())


def make_plan(codec, B, T, npages):
    """Decode plan for B sequences of up to T tokens (fp16 q/out); (plan, workspace bytes, CTAs, K info, V info).
    codec 'tq3+q': V in token quads (split_codec)."""
    name, flags = split_codec(codec)
    p = ctypes.c_void_p()
    check(lib.tq_cuda_decode_plan_create_ex(name.encode(), B, Hq, Hkv, D, PT, T // PT, npages, T, 1, 1,
                                            ctypes.c_float(0.0), ctypes.c_uint(flags), ctypes.byref(p)))
    ws, sp, ki, vi = ctypes.c_size_t(), ctypes.c_int(), PageInfo(), PageInfo()
    check(lib.tq_cuda_decode_plan_info(p, ctypes.byref(ws), ctypes.byref(sp), ctypes.byref(ki), ctypes.byref(vi)))
    return p, ws.value, sp.value, ki, vi


def random_pool(info, npages, fp16):
    """A pool of random pages: fp16 values for pass-through, otherwise random code bytes with norms ~ |k|."""
    if fp16:
        return torch.randn(npages * info.page_bytes // 2, device=dev, dtype=torch.float16).view(torch.uint8)
    pool = torch.randint(0, 256, (npages * info.page_bytes,), device=dev, dtype=torch.uint8)
    hb = pool.view(npages, Hkv, info.head_block_bytes)
    s0 = PT * info.codes_bytes
    norms = hb[:, :, s0:s0 + PT * info.scalar_bytes].contiguous().view(torch.float16)
    norms.copy_(torch.rand_like(norms) * 4 + 8)  # any code bits are valid; norms like LLM keys'
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
    """A callable running one decode step on the current stream."""
    return lambda: check(lib.tq_cuda_decode_run(p, ctypes.c_void_p(q.data_ptr()), ctypes.c_void_p(kp.data_ptr()),
        ctypes.c_void_p(vp.data_ptr()), ctypes.c_void_p(table.data_ptr()), ctypes.c_void_p(lens.data_ptr()),
        ctypes.c_void_p(out.data_ptr()), ctypes.c_void_p(ws.data_ptr()),
        ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)))


def error_flag(p, ws):
    flag = ctypes.c_int()
    check(lib.tq_cuda_decode_check(p, ctypes.c_void_p(ws.data_ptr()), ctypes.byref(flag)))
    return flag.value
