#!/usr/bin/python3
"""ctypes smoke test of the C ABI (turboquant/turboquant.h) from Python with numpy.

Checks, from outside the C++ code:
  * codec: encode/decode round trip; the relative error of tq4 on Gaussian vectors is near the
    Lloyd-Max optimum for d=128 (0.0093, ANCHORS.md) and far below tq2's;
  * KV cache: float32 and float16 appends, fused attention equal to a numpy float64 attention over
    the vectors decoded with a codec of the same spec (what the cache stores), GQA, two sequences of
    different lengths, a causal block of new tokens;
  * errors: bad codec string, unknown sequence, exhausted page pool -> status + message, cache
    unchanged.
Exit status 0 = pass, 1 = fail, 77 = numpy missing (skip).
Usage: capi_smoke.py path/to/libturboquant.so
"""
import ctypes as C
import sys

try:
    import numpy as np
except ImportError:
    print("numpy not available")
    sys.exit(77)

TQ_OK, TQ_INVALID_ARGUMENT, TQ_OUT_OF_RANGE, TQ_OUT_OF_MEMORY = 0, 1, 2, 3
TQ_F32, TQ_F16 = 0, 1


class KvConfig(C.Structure):
    _fields_ = [("n_layers", C.c_int), ("n_kv_heads", C.c_int), ("head_dim", C.c_int), ("codec", C.c_char_p),
                ("edge_codec", C.c_char_p), ("edge_layers", C.c_int), ("contiguous", C.c_int),
                ("page_tokens", C.c_int), ("num_pages", C.c_int), ("max_seqs", C.c_int),
                ("max_seq_len", C.c_int), ("window", C.c_int)]


class AttendArgs(C.Structure):
    _fields_ = [("seqs", C.POINTER(C.c_int)), ("q_lens", C.POINTER(C.c_int)), ("batch", C.c_int),
                ("heads_q", C.c_int), ("q", C.c_void_p), ("q_dtype", C.c_int), ("q_token_stride", C.c_int64),
                ("q_head_stride", C.c_int64), ("out", C.c_void_p), ("out_dtype", C.c_int),
                ("out_token_stride", C.c_int64), ("out_head_stride", C.c_int64), ("scale", C.c_float),
                ("threads", C.c_int), ("fp32_scores", C.c_int)]


class Memory(C.Structure):
    _fields_ = [("bytes_used", C.c_uint64), ("bytes_reserved", C.c_uint64), ("pages_used", C.c_uint64),
                ("pages_total", C.c_uint64), ("window_bytes", C.c_uint64), ("bytes_per_token", C.c_double)]


failures = []


def expect(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def ptr(a):
    return a.ctypes.data_as(C.c_void_p)


def main(lib_path):
    L = C.CDLL(lib_path)
    L.tq_last_error.restype = C.c_char_p
    L.tq_codec_create.argtypes = [C.c_char_p, C.c_int, C.POINTER(C.c_void_p)]
    L.tq_codec_destroy.argtypes = [C.c_void_p]
    L.tq_codec_code_size.argtypes = [C.c_void_p, C.POINTER(C.c_size_t)]
    L.tq_codec_encode.argtypes = [C.c_void_p, C.c_void_p, C.c_size_t, C.c_size_t, C.c_void_p]
    L.tq_codec_decode.argtypes = [C.c_void_p, C.c_void_p, C.c_size_t, C.c_void_p, C.c_size_t]
    L.tq_kv_cache_config_init.argtypes = [C.POINTER(KvConfig)]
    L.tq_kv_cache_create.argtypes = [C.POINTER(KvConfig), C.POINTER(C.c_void_p)]
    L.tq_kv_cache_destroy.argtypes = [C.c_void_p]
    L.tq_kv_cache_add_sequence.argtypes = [C.c_void_p, C.POINTER(C.c_int)]
    L.tq_kv_cache_seq_len.argtypes = [C.c_void_p, C.c_int, C.c_int, C.POINTER(C.c_int)]
    L.tq_kv_cache_append.argtypes = [C.c_void_p, C.c_int, C.c_int, C.c_int, C.c_void_p, C.c_void_p, C.c_int,
                                     C.c_int64, C.c_int64]
    L.tq_kv_cache_memory.argtypes = [C.c_void_p, C.POINTER(Memory)]
    L.tq_attend_args_init.argtypes = [C.POINTER(AttendArgs)]
    L.tq_kv_cache_attend.argtypes = [C.c_void_p, C.c_int, C.POINTER(AttendArgs)]

    rng = np.random.default_rng(7)
    D = 128

    def codec(spec):
        h = C.c_void_p()
        st = L.tq_codec_create(spec.encode(), D, C.byref(h))
        return st, h

    def roundtrip(spec, x):
        st, h = codec(spec)
        assert st == TQ_OK, L.tq_last_error()
        cs = C.c_size_t()
        L.tq_codec_code_size(h, C.byref(cs))
        codes = np.zeros(x.shape[0] * cs.value, np.uint8)
        y = np.zeros_like(x)
        expect(L.tq_codec_encode(h, ptr(x), x.shape[0], 0, ptr(codes)) == TQ_OK, "encode " + spec)
        expect(L.tq_codec_decode(h, ptr(codes), x.shape[0], ptr(y), 0) == TQ_OK, "decode " + spec)
        L.tq_codec_destroy(h)
        return y, cs.value

    # ---- codecs ----
    x = rng.standard_normal((2000, D)).astype(np.float32)
    rel = {}
    for spec in ("tq2", "tq4"):
        y, cs = roundtrip(spec, x)
        rel[spec] = float(np.mean(np.sum((x - y) ** 2, 1) / np.sum(x ** 2, 1)))
    print("codec rel MSE: tq2 %.4f (optimum 0.1160), tq4 %.5f (optimum 0.00931)" % (rel["tq2"], rel["tq4"]))
    expect(0.0085 < rel["tq4"] < 0.0105, "tq4 distortion near the Lloyd-Max optimum")
    expect(0.105 < rel["tq2"] < 0.13, "tq2 distortion near the Lloyd-Max optimum")
    st, h = codec("tq9")
    expect(st == TQ_INVALID_ARGUMENT and b"tq9" in L.tq_last_error(), "bad codec string -> status + message")

    # ---- KV cache + attention ----
    Hkv, G = 2, 4
    Hq = Hkv * G
    cfg = KvConfig()
    L.tq_kv_cache_config_init(C.byref(cfg))
    cfg.n_kv_heads, cfg.head_dim, cfg.codec, cfg.num_pages, cfg.page_tokens = Hkv, D, b"k=tq4,v=tq3", 40, 16
    cache = C.c_void_p()
    expect(L.tq_kv_cache_create(C.byref(cfg), C.byref(cache)) == TQ_OK, "cache create")
    lens, qlens = [300, 37], [1, 3]
    seqs, K, V = [], [], []
    for b, T in enumerate(lens):
        s = C.c_int()
        L.tq_kv_cache_add_sequence(cache, C.byref(s))
        seqs.append(s.value)
        k = rng.standard_normal((T, Hkv, D)).astype(np.float32)
        v = (rng.standard_normal((T, Hkv, D)) + 0.5).astype(np.float32)
        if b == 1:  # float16 input: the cache stores the encoding of the rounded values
            k16, v16 = k.astype(np.float16), v.astype(np.float16)
            st = L.tq_kv_cache_append(cache, 0, s.value, T, ptr(k16), ptr(v16), TQ_F16, 0, 0)
            k, v = k16.astype(np.float32), v16.astype(np.float32)
        else:
            st = L.tq_kv_cache_append(cache, 0, s.value, T, ptr(k), ptr(v), TQ_F32, 0, 0)
        expect(st == TQ_OK, "append seq %d: %s" % (b, L.tq_last_error()))
        K.append(k)
        V.append(v)
    rows = sum(qlens)
    q = rng.standard_normal((rows, Hq, D)).astype(np.float32)
    out = np.full((rows, Hq, D), np.nan, np.float32)
    a = AttendArgs()
    L.tq_attend_args_init(C.byref(a))
    seq_arr, ql_arr = (C.c_int * 2)(*seqs), (C.c_int * 2)(*qlens)
    a.seqs, a.q_lens, a.batch, a.heads_q = seq_arr, ql_arr, 2, Hq
    a.q, a.out = ptr(q), ptr(out)
    a.fp32_scores = 1  # the int8 score path rounds at ~3e-3; this check is for the fp32 path
    expect(L.tq_kv_cache_attend(cache, 0, C.byref(a)) == TQ_OK, "attend: %s" % L.tq_last_error())

    # numpy float64 attention over what the cache stores (decoded with the same codec specs).
    err_num = err_den = 0.0
    row = 0
    for b, T in enumerate(lens):
        kd, _ = roundtrip("tq4", K[b].reshape(-1, D))
        vd, _ = roundtrip("tq3", V[b].reshape(-1, D))
        kd, vd = kd.reshape(T, Hkv, D).astype(np.float64), vd.reshape(T, Hkv, D).astype(np.float64)
        for i in range(qlens[b]):
            last = T - qlens[b] + i
            for h in range(Hq):
                g = h // G
                s = kd[: last + 1, g] @ q[row + i, h].astype(np.float64) / np.sqrt(D)
                p = np.exp(s - s.max())
                want = (p / p.sum()) @ vd[: last + 1, g]
                err_num += float(np.sum((out[row + i, h] - want) ** 2))
                err_den += float(np.sum(want ** 2))
        row += qlens[b]
    err = (err_num / err_den) ** 0.5
    print("fused attention vs numpy float64 on the stored vectors: rel L2 %.2e" % err)
    expect(err < 2e-5, "fused attention matches numpy")

    # ---- errors leave the cache unchanged ----
    n = C.c_int()
    st = L.tq_kv_cache_append(cache, 0, 99, 1, ptr(K[0]), ptr(V[0]), TQ_F32, 0, 0)
    expect(st == TQ_OUT_OF_RANGE and b"sequence 99" in L.tq_last_error(), "unknown sequence")
    big = rng.standard_normal((1000, Hkv, D)).astype(np.float32)
    st = L.tq_kv_cache_append(cache, 0, seqs[1], 1000, ptr(big), ptr(big), TQ_F32, 0, 0)
    expect(st == TQ_OUT_OF_MEMORY, "exhausted pool -> TQ_OUT_OF_MEMORY (%d)" % st)
    L.tq_kv_cache_seq_len(cache, 0, seqs[1], C.byref(n))
    expect(n.value == lens[1], "failed append changed nothing")
    m = Memory()
    L.tq_kv_cache_memory(cache, C.byref(m))
    expect(m.pages_used == (300 + 15) // 16 + (37 + 15) // 16, "pages used")
    expect(abs(m.bytes_per_token - Hkv * (66 + 50)) < 1e-9, "bytes per token (k4 66 B + v3 50 B per head)")
    L.tq_kv_cache_destroy(cache)
    print("PASS" if not failures else "FAILED: %d check(s)" % len(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
