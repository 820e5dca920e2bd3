// src/cuda/append_plan.cpp — AppendPlan (validation, kernel constants) and its C ABI.
#if defined(TQ_HAVE_CUDA)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "cuda/append_frac64.h"
#include "cuda/append_params.h"
#include "turboquant/capi_common.h"
#include "turboquant/cuda/append.h"
#include "turboquant/error.h"
#include "turboquant/rotation.h"
#include "turboquant/tq_codec.h"
#include "turboquant/turboquant_cuda.h"

namespace tq::cuda {

#define TQ_CUDA_CHECK_A(expr)                                                                 \
  do {                                                                                        \
    const cudaError_t e_ = (expr);                                                            \
    TQ_CHECK(e_ == cudaSuccess, kInternal, "CUDA error {} ({}) in {}", int(e_), cudaGetErrorString(e_), #expr); \
  } while (0)

// v2 coordinates per lane: 32 (one code group, log2(D/32) shuffle stages per round); 64 halves
// the shuffles but needs 127 registers and ran 6-12% slower (docs/CUDA.md).
constexpr int kLaneCoords = 32;

struct AppendPlan::Impl {
  std::shared_ptr<const Codec> codec;
  const void* fn = nullptr;       // v1: fp16 pass-through, or every codec with TQ_CUDA_APPEND_V1=1
  const void* fn_tile = nullptr;  // v2: tiled TurboQuant encoder (append.cuh), the default for tq2/3/4
  const void* fn_frac = nullptr;  // tq1.5 .. tq7.5 (append_frac.cuh), their only kernel
  const void* fn_prod = nullptr;  // tq2p .. tq8p (append_prod.cuh), their only kernel
  const void* fn_fprod = nullptr;  // tq1.5p .. tq7.5p (append_fprod.cuh), their only kernel
  const void* fn_frac64 = nullptr;  // tq2.5 and tq2.5p at head_dim 64 (append_frac64.cu), their only kernel
  int head_dim = 0, in_bytes = 0, bits = 0;
  int frac_vpw = 0;   // fractional, prod: vectors per warp forced by TQ_CUDA_APPEND_FRAC_VPW (tests), 0 = auto
  int small_bps = 1;  // v2: resident blocks per SM with tiles of one pass
  append::Params params{};
  append::FracParams frac{};
  append::ProdParams prod{};
  append::FprodParams fprod{};
  append::Frac64Params frac64{};
  float* dense = nullptr;  // fractional (prod too): part 1's dense rotation on the device (transposed)
  float* sketch = nullptr;  // prod: the QJL sketch on the device (transposed; fractional: per part)
  float* wbound = nullptr;  // tq5..tq8, tq4.5 .. tq7.5, tq6p .. tq8p, tq5.5p .. tq7.5p: the boundaries (prod: and centroids) on the device
  void* tables = nullptr;   // tq2.5 / tq2.5p at 64: Frac64MseTables / Frac64ProdTables on the device
  int* flag = nullptr;
  int sms = 132;
  ~Impl() {
    if (flag) cudaFree(flag);
    if (dense) cudaFree(dense);
    if (sketch) cudaFree(sketch);
    if (wbound) cudaFree(wbound);
    if (tables) cudaFree(tables);
  }
};

namespace {

bool is_pow2(uint32_t d) { return d && !(d & (d - 1)); }

// A device copy of v (freed by Impl's destructor through *dst).
float* upload(const std::vector<float>& v, float** dst) {
  TQ_CUDA_CHECK_A(cudaMalloc(reinterpret_cast<void**>(dst), v.size() * sizeof(float)));
  TQ_CUDA_CHECK_A(cudaMemcpy(*dst, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
  return *dst;
}

// The m x m row-major matrix a transposed (out[j * m + i] = a[i * m + j]), appended to out: the
// column-per-lane order the kernels read (the CPU batched encoder's table order).
void append_transposed(const float* a, uint32_t m, std::vector<float>& out) {
  for (uint32_t j = 0; j < m; ++j)
    for (uint32_t i = 0; i < m; ++i) out.push_back(a[size_t(i) * m + j]);
}

// The Hadamard rotation's sign bits (bit set = -1) of the first m coordinates.
void sign_bits(const Rotation& rot, uint32_t m, uint32_t (&sign)[append::kRounds][8]) {
  for (int r = 0; r < append::kRounds; ++r)
    for (uint32_t i = 0; i < m; ++i)
      if (rot.signs(r)[i] < 0) sign[r][i / 32] |= 1u << (i % 32);
}

// Part p of a fractional (prod too) codec: contiguous channels, and the rotation the kernel has for
// it (Hadamard for a power-of-two dimension, dense only for part 1 where frac_dense says so).
RotationKind check_frac_part(const TqCodec& t, const TqLayout& L, int p, int d, int bits) {
  const TqPart& part = t.parts()[p];
  const uint32_t m = L.part[p].dim;
  for (uint32_t j = 0; j < m; ++j)
    TQ_CHECK(part.channels[j] == int(L.part[p].first + j), kInternal, "CUDA append: fractional part {} is not contiguous", p);
  const RotationKind want = is_pow2(m) ? RotationKind::kHadamard : RotationKind::kDense;
  TQ_CHECK(part.rot->kind() == want && (want == RotationKind::kDense) == (p == 1 && append::frac_dense(d, bits)),
           kUnsupported, "CUDA append: codec '{}' part {} has a rotation without a kernel", t.spec().name(), p);
  return want;
}

// Fractional codecs: the kernel's compile-time split (append_params.h) against the codec's own
// layout and rotations, then the kernel constants (boundaries, signs, the dense matrix; parts of
// 5..8 bits: all their boundaries on the device).
void setup_frac(const TqCodec& t, int d, int bits, append::FracParams& F, float** dense, float** wbound) {
  const TqLayout& L = *t.tq_layout();
  const uint32_t hi = uint32_t(append::frac_hi(d, bits)), lo = uint32_t(d) - hi;
  TQ_CHECK(L.n_parts == 2 && !L.prod && L.part[0].dim == hi && L.part[1].dim == lo && L.part[0].mse_bits == uint32_t(bits + 1) &&
               L.part[1].mse_bits == uint32_t(bits) && L.part[0].mse_offset == 0 &&
               L.part[1].mse_offset == packed_bytes(hi, bits + 1) && L.part[0].norm_offset == 0 &&
               L.part[1].norm_offset == 2 && L.scalar_bytes == 4 && L.codes_bytes % 4 == 0,
           kInternal, "CUDA append: codec '{}' at head_dim {}: layout is not the kernel's split", t.spec().name(), d);
  std::vector<float> wb;  // boundaries of the 5..8-bit parts, part 0's then part 1's
  for (int p = 0; p < 2; ++p) {
    const TqPart& part = t.parts()[p];
    const uint32_t m = L.part[p].dim;
    const RotationKind want = check_frac_part(t, L, p, d, bits);
    const auto& b = part.cb->boundaries();
    for (size_t i = 0; i < b.size() && i < 15; ++i) F.bound[p][i] = float(b[i]);  // = Codebook's float boundaries
    if (L.part[p].mse_bits >= 5) {
      TQ_CHECK(b.size() == (size_t(1) << L.part[p].mse_bits) - 1, kInternal, "CUDA append: {} boundaries for {} bits",
               b.size(), L.part[p].mse_bits);
      wb.insert(wb.end(), b.begin(), b.end());
    }
    if (want == RotationKind::kHadamard) {
      sign_bits(*part.rot, m, F.sign[p]);
    } else {
      std::vector<float> mt;  // fp32 entries
      append_transposed(part.rot->matrix().data(), m, mt);
      F.dense = upload(mt, dense);
    }
  }
  if (!wb.empty()) F.wbound = upload(wb, wbound);
}

// Prod codecs: one part, Hadamard, mse codes then QJL signs, scalars (norm, gamma) in fp16; the
// kernel constants (boundaries, centroids, signs) and the sketch, transposed, on the device (5..7-bit
// mse codes: all boundaries and centroids there too).
void setup_prod(const TqCodec& t, int d, append::ProdParams& Q, float** sketch, float** wtab) {
  const TqLayout& L = *t.tq_layout();
  const uint32_t mb = uint32_t(t.spec().bits - 1);
  TQ_CHECK(L.n_parts == 1 && L.prod && L.part[0].dim == uint32_t(d) && L.part[0].mse_bits == mb && L.part[0].mse_offset == 0 &&
               L.part[0].qjl_offset == packed_bytes(d, mb) && L.part[0].norm_offset == 0 && L.part[0].gamma_offset == 2 &&
               L.scalar_bytes == 4 && L.codes_bytes % 4 == 0,
           kInternal, "CUDA append: codec '{}' at head_dim {}: layout is not the prod kernel's", t.spec().name(), d);
  const TqPart& part = t.parts()[0];
  TQ_CHECK(part.rot->kind() == RotationKind::kHadamard, kUnsupported, "CUDA append: codec '{}' needs the Hadamard rotation",
           t.spec().name());
  const auto& b = part.cb->boundaries();
  for (size_t i = 0; i < b.size() && i < 15; ++i) Q.bound[i] = float(b[i]);  // = Codebook's float boundaries
  const auto& c = part.cb->centroids_f32();
  for (size_t i = 0; i < c.size() && i < 16; ++i) Q.cent[i] = c[i];
  if (mb >= 5) {
    std::vector<float> w(b.begin(), b.end());
    w.insert(w.end(), c.begin(), c.end());
    TQ_CHECK(w.size() == (size_t(2) << mb) - 1, kInternal, "CUDA append: {} boundaries and centroids for {} bits", w.size(), mb);
    Q.wtab = upload(w, wtab);
  }
  sign_bits(*part.rot, uint32_t(d), Q.sign);
  std::vector<float> st;
  append_transposed(part.sketch.data(), uint32_t(d), st);
  Q.sketch_t = upload(st, sketch);
}

// Fractional prod codecs: the codec's layout against layout.h's for the kernel's split (fprod_layout),
// contiguous parts, Hadamard parts (tq2.5p: a dense part 1), then the kernel constants per part
// (boundaries, centroids, signs), the dense matrix and the sketches, transposed, on the device; 5..7-bit
// mse parts (tq5.5p .. tq7.5p): all their boundaries and centroids there too.
void setup_fprod(const TqCodec& t, int d, int bits, append::FprodParams& F, float** dense, float** sketch, float** wtab) {
  const TqLayout& L = *t.tq_layout();
  const TqLayout K = append::fprod_layout(d, bits);
  bool same = L.n_parts == 2 && L.prod && L.codes_bytes == K.codes_bytes && L.scalar_bytes == K.scalar_bytes;
  for (int p = 0; p < 2 && same; ++p) {
    const TqPartLayout &a = L.part[p], &b = K.part[p];
    same = a.dim == b.dim && a.first == b.first && a.mse_bits == b.mse_bits && a.mse_offset == b.mse_offset &&
           a.qjl_offset == b.qjl_offset && a.norm_offset == b.norm_offset && a.gamma_offset == b.gamma_offset;
  }
  TQ_CHECK(same, kInternal, "CUDA append: codec '{}' at head_dim {}: layout is not the kernel's split", t.spec().name(), d);
  std::vector<float> sk;  // S_p transposed, part 0's block then part 1's
  std::vector<float> wt;  // 5..7-bit parts: boundaries then centroids, part 0's then part 1's
  for (int p = 0; p < 2; ++p) {
    const TqPart& part = t.parts()[p];
    const uint32_t m = L.part[p].dim;
    const RotationKind want = check_frac_part(t, L, p, d, bits);
    const auto& b = part.cb->boundaries();
    for (size_t i = 0; i < b.size() && i < 15; ++i) F.bound[p][i] = float(b[i]);  // = Codebook's float boundaries
    const auto& c = part.cb->centroids_f32();
    for (size_t i = 0; i < c.size() && i < 16; ++i) F.cent[p][i] = c[i];
    const uint32_t mb = L.part[p].mse_bits;
    TQ_CHECK(b.size() + 1 == c.size() && c.size() == (size_t(1) << mb), kInternal,
             "CUDA append: {} boundaries and {} centroids for {} bits", b.size(), c.size(), mb);
    if (mb >= 5) {
      wt.insert(wt.end(), b.begin(), b.end());  // = Codebook's float boundaries
      wt.insert(wt.end(), c.begin(), c.end());
    }
    if (want == RotationKind::kHadamard) {
      sign_bits(*part.rot, m, F.sign[p]);
    } else {
      std::vector<float> mt;  // the fp32 entries apply_dense reads
      append_transposed(part.rot->matrix().data(), m, mt);
      F.dense = upload(mt, dense);
    }
    append_transposed(part.sketch.data(), m, sk);
  }
  F.sketch_t = upload(sk, sketch);
  if (!wt.empty()) F.wtab = upload(wt, wtab);
}

}  // namespace

AppendPlan::AppendPlan(const CodecSpec& s, int heads_kv, int head_dim, int page_tokens, int num_pages, DType in_dtype,
                       bool token_quads)
    : impl_(std::make_unique<Impl>()) {
  Impl& I = *impl_;
  TQ_CHECK_ARG(heads_kv >= 1 && page_tokens >= 1 && num_pages >= 1, "CUDA append: heads, page_tokens, pages must be >= 1");
  TQ_CHECK_ARG(int(in_dtype) >= 0 && int(in_dtype) <= 2, "CUDA append: dtype must be 0 (f32), 1 (f16) or 2 (bf16)");
  int bits = 0;
  const bool frac = s.id == CodecId::kTqMse && s.fractional;
  const bool prod = s.id == CodecId::kTqProd && !s.fractional;
  const bool fprod = s.id == CodecId::kTqProd && s.fractional;
  if (s.id != CodecId::kFp16) {
    TQ_CHECK(((s.id == CodecId::kTqMse && (frac ? s.bits >= 1 && s.bits <= 7 : s.bits >= 1 && s.bits <= 8)) ||
              (prod && s.bits >= 2 && s.bits <= 8) || (fprod && s.bits >= 1 && s.bits <= 7)) &&
                 s.norm == NormType::kFp16 && (s.rotation == RotationKind::kAuto || s.rotation == RotationKind::kHadamard),
             kUnsupported,
             "CUDA append: codec '{}' has no kernel (supported: fp16, tq1 .. tq8, tq1.5 .. tq7.5, tq2p .. tq8p, tq1.5p .. "
             "tq7.5p; fp16 norms, Hadamard rotation)", s.name());
    bits = s.bits;
  }
  TQ_CHECK(!token_quads || (bits >= 1 && !frac && !prod && !fprod && quad_fits(uint32_t(head_dim), bits)), kUnsupported,
           "CUDA append: token quads are for tq1..tq4 at head_dim % 64 == 0, not '{}' at {}", s.name(), head_dim);
  TQ_CHECK_ARG(!token_quads || page_tokens % 16 == 0, "CUDA append: token quads need page_tokens % 16 == 0, not {}",
               page_tokens);
  I.head_dim = head_dim;
  I.bits = bits;
  I.in_bytes = in_dtype == DType::kF32 ? 4 : 2;
  // tq2.5 and tq2.5p at 64: parts of 16 and 48 dims (tail-packed, an 18-byte codes section): one
  // thread per vector (append_frac64.cu), their only kernel (TQ_CUDA_APPEND_V1 does not apply).
  const bool frac64 = (frac || fprod) && bits == 2 && head_dim == 64;
  if (frac64) {
    I.fn_frac64 = append::append_frac64_kernel_for(fprod);
  } else if (fprod) {
    // One kernel (TQ_CUDA_APPEND_V1 does not apply).
    I.fn_fprod = append::append_fprod_kernel_for(head_dim, bits, int(in_dtype));
    TQ_CHECK(I.fn_fprod, kUnsupported, "CUDA append: codec '{}' at head_dim {} has no kernel (64, 128, 256)", s.name(),
             head_dim);
  } else if (prod) {
    // One kernel (TQ_CUDA_APPEND_V1 does not apply).
    I.fn_prod = append::append_prod_kernel_for(head_dim, bits - 1, int(in_dtype));
    TQ_CHECK(I.fn_prod, kUnsupported, "CUDA append: codec '{}' at head_dim {} has no kernel (64, 128, 256)",
             s.name(), head_dim);
  } else if (frac) {
    // One kernel (TQ_CUDA_APPEND_V1 does not apply).
    I.fn_frac = append::append_frac_kernel_for(head_dim, bits, int(in_dtype));
    TQ_CHECK(I.fn_frac, kUnsupported, "CUDA append: codec '{}' at head_dim {} has no kernel (64, 128, 256)", s.name(),
             head_dim);
  } else if (bits <= 4) {
    I.fn = token_quads ? append::append_quad_kernel_for(head_dim, bits) : append::append_kernel_for(head_dim, bits);
    TQ_CHECK(I.fn, kUnsupported, "CUDA append: codec '{}' at head_dim {} has no kernel (64, 128, 256)", s.name(), head_dim);
  }
  const char* v1 = std::getenv("TQ_CUDA_APPEND_V1");  // the previous kernel, for comparisons
  // tq5..tq8: the tiled kernel only (v1 counts at most 15 boundaries; fractional and prod have one kernel).
  TQ_CHECK(bits <= 4 || frac || prod || fprod || !(v1 && v1[0] == '1'), kUnsupported, "CUDA append v1 (TQ_CUDA_APPEND_V1): no kernel for '{}'",
           s.name());
  if (bits != 0 && !frac && !prod && !fprod && !(v1 && v1[0] == '1')) {
    I.fn_tile = token_quads ? append::append_quad_tile_kernel_for(head_dim, kLaneCoords, bits, int(in_dtype))
                            : append::append_tile_kernel_for(head_dim, kLaneCoords, bits, int(in_dtype));
    TQ_CHECK(I.fn_tile || bits <= 4, kUnsupported, "CUDA append: codec '{}' at head_dim {} has no kernel (64, 128, 256)",
             s.name(), head_dim);
    TQ_CHECK(I.fn_tile, kInternal, "CUDA append: no tiled kernel for head_dim {} bits {}", head_dim, bits);
    constexpr int lc = kLaneCoords;
    TQ_CHECK(append::tile_smem_bytes(head_dim, lc, I.in_bytes, append::tile_max_vpw(head_dim, lc, I.in_bytes)) <= 48 * 1024,
             kInternal, "CUDA append: tile beyond 48 KB of shared memory");
  }
  TQ_CHECK(device_available(), kUnsupported, "CUDA append: no CUDA device");
  I.codec = Codec::create(s, head_dim);
  append::Params& P = I.params;
  P.layout = KvPageLayout{uint32_t(page_tokens), uint32_t(heads_kv), uint32_t(I.codec->codes_bytes()),
                          uint32_t(I.codec->scalar_bytes()), token_quads ? uint32_t(bits) : 0u};
  if (I.fn_tile) {
    const int vpp = append::tile_vpp(head_dim, kLaneCoords);
    TQ_CUDA_CHECK_A(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &I.small_bps, I.fn_tile, append::kTileWarps * 32,
        size_t(append::tile_smem_bytes(head_dim, kLaneCoords, I.in_bytes, vpp))));
    TQ_CHECK(I.small_bps >= 1, kInternal, "CUDA append: the tiled kernel does not fit on an SM");
  }
  P.Hkv = heads_kv; P.num_pages = num_pages; P.in_dtype = int(in_dtype);
  if (frac64) {
    const auto* t = dynamic_cast<const TqCodec*>(I.codec.get());
    TQ_CHECK(t, kInternal, "CUDA append: codec '{}' is not a TqCodec", s.name());
    const char* why = append::frac64_check(*t, fprod);
    TQ_CHECK(!*why, kInternal, "CUDA append: codec '{}' at head_dim 64: {}", s.name(), why);
    append::Frac64Params& F = I.frac64;
    F.layout = P.layout;
    F.Hkv = heads_kv; F.num_pages = num_pages; F.in_dtype = int(in_dtype);
    auto upload = [&](const auto& tab) {
      TQ_CUDA_CHECK_A(cudaMalloc(&I.tables, sizeof tab));
      TQ_CUDA_CHECK_A(cudaMemcpy(I.tables, &tab, sizeof tab, cudaMemcpyHostToDevice));
    };
    if (fprod) {
      auto tab = std::make_unique<append::Frac64ProdTables>();
      append::frac64_tables(*t, *tab);
      upload(*tab);
    } else {
      auto tab = std::make_unique<append::Frac64MseTables>();
      append::frac64_tables(*t, *tab);
      upload(*tab);
    }
    F.tables = I.tables;
  } else if (fprod) {
    const auto* t = dynamic_cast<const TqCodec*>(I.codec.get());
    TQ_CHECK(t, kInternal, "CUDA append: codec '{}' is not a TqCodec", s.name());
    append::FprodParams& F = I.fprod;
    F.layout = P.layout;
    F.Hkv = heads_kv; F.num_pages = num_pages; F.in_dtype = int(in_dtype);
    setup_fprod(*t, head_dim, bits, F, &I.dense, &I.sketch, &I.wbound);
    const int smem = append::prod_smem_bytes(head_dim, I.in_bytes, append::tile_max_vpw(head_dim, kLaneCoords, I.in_bytes));
    if (smem > 48 * 1024)
      TQ_CUDA_CHECK_A(cudaFuncSetAttribute(I.fn_fprod, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    if (const char* fv = std::getenv("TQ_CUDA_APPEND_FRAC_VPW")) I.frac_vpw = std::atoi(fv);
  } else if (prod) {
    const auto* t = dynamic_cast<const TqCodec*>(I.codec.get());
    TQ_CHECK(t, kInternal, "CUDA append: codec '{}' is not a TqCodec", s.name());
    append::ProdParams& Q = I.prod;
    Q.layout = P.layout;
    Q.Hkv = heads_kv; Q.num_pages = num_pages; Q.in_dtype = int(in_dtype);
    setup_prod(*t, head_dim, Q, &I.sketch, &I.wbound);
    const int smem = append::prod_smem_bytes(head_dim, I.in_bytes, append::tile_max_vpw(head_dim, kLaneCoords, I.in_bytes));
    if (smem > 48 * 1024)
      TQ_CUDA_CHECK_A(cudaFuncSetAttribute(I.fn_prod, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    if (const char* fv = std::getenv("TQ_CUDA_APPEND_FRAC_VPW")) I.frac_vpw = std::atoi(fv);
  } else if (frac) {
    const auto* t = dynamic_cast<const TqCodec*>(I.codec.get());
    TQ_CHECK(t, kInternal, "CUDA append: codec '{}' is not a TqCodec", s.name());
    append::FracParams& F = I.frac;
    F.layout = P.layout;
    F.Hkv = heads_kv; F.num_pages = num_pages; F.in_dtype = int(in_dtype);
    setup_frac(*t, head_dim, bits, F, &I.dense, &I.wbound);
    const int smem = append::frac_smem_bytes(head_dim, bits, I.in_bytes, append::tile_max_vpw(head_dim, kLaneCoords, I.in_bytes));
    if (smem > 48 * 1024)
      TQ_CUDA_CHECK_A(cudaFuncSetAttribute(I.fn_frac, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    if (const char* fv = std::getenv("TQ_CUDA_APPEND_FRAC_VPW")) I.frac_vpw = std::atoi(fv);  // large tiles on small appends
  } else if (const auto* t = dynamic_cast<const TqCodec*>(I.codec.get())) {
    const auto& part = t->parts()[0];
    const auto& b = part.cb->boundaries();
    for (size_t i = 0; i < b.size() && i < 15; ++i) P.bound[i] = float(b[i]);  // = Codebook's float boundaries
    if (bits >= 5) {  // all 2^B - 1 of them, for the kernel's shared memory
      const std::vector<float> wb(b.begin(), b.end());
      TQ_CHECK(wb.size() == (size_t(1) << bits) - 1, kInternal, "CUDA append: {} boundaries for {} bits", wb.size(), bits);
      P.wbound = upload(wb, &I.wbound);
    }
    sign_bits(*part.rot, uint32_t(head_dim), P.sign);
  }
  int dev = 0;
  TQ_CUDA_CHECK_A(cudaGetDevice(&dev));
  TQ_CUDA_CHECK_A(cudaDeviceGetAttribute(&I.sms, cudaDevAttrMultiProcessorCount, dev));
  TQ_CUDA_CHECK_A(cudaMalloc(reinterpret_cast<void**>(&I.flag), sizeof(int)));
  TQ_CUDA_CHECK_A(cudaMemset(I.flag, 0, sizeof(int)));
}

AppendPlan::~AppendPlan() = default;
KvPageLayout AppendPlan::layout() const { return impl_->params.layout; }
const Codec& AppendPlan::codec() const { return *impl_->codec; }

void AppendPlan::run(const void* x, const int32_t* slot_mapping, int n_tokens, uint8_t* pool, void* stream) const {
  TQ_CHECK_ARG(n_tokens >= 0, "CUDA append: n_tokens {} < 0", n_tokens);
  if (n_tokens == 0) return;
  TQ_CHECK_ARG(x && slot_mapping && pool, "CUDA append: null pointer argument");
  append::Params P = impl_->params;
  P.x = x; P.slot_mapping = slot_mapping; P.pool = pool; P.error_flag = impl_->flag; P.n_tokens = n_tokens;
  TQ_CHECK_ARG(reinterpret_cast<uintptr_t>(x) % 16 == 0, "CUDA append: x must be 16-byte aligned");
  const long long vectors = (long long)n_tokens * P.Hkv;
  if (impl_->fn_frac64) {  // one thread per vector
    append::Frac64Params F = impl_->frac64;
    F.x = x; F.slot_mapping = slot_mapping; F.pool = pool; F.error_flag = impl_->flag; F.n_tokens = n_tokens;
    const long long blocks = (vectors + append::kF64Threads - 1) / append::kF64Threads;
    TQ_CHECK_ARG(blocks < (1ll << 31), "CUDA append: too many vectors ({})", vectors);
    void* args[] = {&F};
    const cudaError_t e = cudaLaunchKernel(impl_->fn_frac64, dim3(unsigned(blocks)), dim3(append::kF64Threads), args, 0,
                                           static_cast<cudaStream_t>(stream));
    TQ_CHECK(e == cudaSuccess, kInternal, "CUDA append: launch failed: {}", cudaGetErrorString(e));
    return;
  }
  if (impl_->fn_frac || impl_->fn_prod || impl_->fn_fprod) {
    // Warp w encodes vectors [w·vpw, w·vpw + vpw): ~16 warps per SM worth of tiles, at most the
    // v2 tile size (~8 KB of input per warp), at least one vector.
    append::FracParams F = impl_->frac;
    append::ProdParams Q = impl_->prod;
    append::FprodParams FP = impl_->fprod;
    const int d = impl_->head_dim, vmax = append::tile_max_vpw(d, kLaneCoords, impl_->in_bytes);
    const long long per_sm = (long long)impl_->sms * 16;
    const long long want = impl_->frac_vpw > 0 ? impl_->frac_vpw : (vectors + per_sm - 1) / per_sm;
    const int vpw = int(std::clamp<long long>(want, 1, vmax));
    const long long warps = (vectors + vpw - 1) / vpw;
    const long long blocks = (warps + append::kTileWarps - 1) / append::kTileWarps;
    TQ_CHECK_ARG(blocks < (1ll << 31), "CUDA append: too many vectors ({})", vectors);
    F.x = Q.x = FP.x = x; F.slot_mapping = Q.slot_mapping = FP.slot_mapping = slot_mapping; F.pool = Q.pool = FP.pool = pool;
    F.error_flag = Q.error_flag = FP.error_flag = impl_->flag; F.n_tokens = Q.n_tokens = FP.n_tokens = n_tokens;
    F.vpw = Q.vpw = FP.vpw = vpw;
    void* args[] = {impl_->fn_fprod  ? static_cast<void*>(&FP)
                    : impl_->fn_prod ? static_cast<void*>(&Q)
                                     : static_cast<void*>(&F)};
    const bool qjl = impl_->fn_prod || impl_->fn_fprod;  // both: the tile and the pass's residuals
    const size_t smem = size_t(qjl ? append::prod_smem_bytes(d, impl_->in_bytes, vpw)
                                   : append::frac_smem_bytes(d, impl_->bits, impl_->in_bytes, vpw));
    const void* fn = impl_->fn_fprod ? impl_->fn_fprod : impl_->fn_prod ? impl_->fn_prod : impl_->fn_frac;
    const cudaError_t e = cudaLaunchKernel(fn, dim3(unsigned(blocks)), dim3(append::kTileWarps * 32), args, smem,
                                           static_cast<cudaStream_t>(stream));
    TQ_CHECK(e == cudaSuccess, kInternal, "CUDA append: launch failed: {}", cudaGetErrorString(e));
    return;
  }
  if (impl_->fn_tile) {
    // v2: W warps, warp w encoding vectors [V·w/W, V·(w+1)/W) (at most vpw) in passes of vpp.
    // Small appends (a decode step, up to one wave of one-pass tiles): one pass per warp. Large:
    // tiles of up to vmax vectors, ~24 warps per SM worth of them. (Launching whole waves of
    // equal shares instead, to avoid the tail wave, issued 16% more instructions for the extra
    // tiles and ran 5-12% slower: docs/CUDA.md.)
    const int d = impl_->head_dim;
    constexpr int lc = kLaneCoords;
    const int vpp = append::tile_vpp(d, lc), vmax = append::tile_max_vpw(d, lc, impl_->in_bytes);
    // Token quads: vectors in quads of 4 tokens of one head, the last quad padded (append.cuh).
    const long long tile_vectors = P.layout.quad_bits ? ((long long)n_tokens + 3) / 4 * 4 * P.Hkv : vectors;
    static_assert(append::tile_vpp(64, lc) % 4 == 0 && append::tile_vpp(256, lc) % 4 == 0, "passes of whole quads");
    if (tile_vectors <= (long long)impl_->sms * impl_->small_bps * append::kTileWarps * vpp) {
      P.vpw = vpp;
    } else {
      const long long want = (tile_vectors + (long long)impl_->sms * 24 - 1) / ((long long)impl_->sms * 24);
      P.vpw = int(std::clamp<long long>((want + vpp - 1) / vpp * vpp, vpp, vmax));
    }
    const long long per_block = (long long)P.vpw * append::kTileWarps;
    const long long blocks = (tile_vectors + per_block - 1) / per_block;
    TQ_CHECK_ARG(blocks < (1ll << 31), "CUDA append: too many vectors ({})", tile_vectors);
    void* args[] = {&P};
    const cudaError_t e = cudaLaunchKernel(impl_->fn_tile, dim3(unsigned(blocks)), dim3(append::kTileWarps * 32), args,
                                           size_t(append::tile_smem_bytes(d, lc, impl_->in_bytes, P.vpw)),
                                           static_cast<cudaStream_t>(stream));
    TQ_CHECK(e == cudaSuccess, kInternal, "CUDA append: launch failed: {}", cudaGetErrorString(e));
    return;
  }
  // v1: vectors per warp: one per lane once every SM has ~64 warps of work, fewer for small appends
  // (a decode step's few tokens: one vector per warp, spread over the SMs).
  const long long warps_full = (long long)impl_->sms * 64;
  P.vpw = int(std::clamp<long long>((vectors + warps_full - 1) / warps_full, 1, 32));
  const int per_block = append::kThreads / 32;
  const long long warps = (vectors + P.vpw - 1) / P.vpw;
  const long long blocks = (warps + per_block - 1) / per_block;
  TQ_CHECK_ARG(blocks < (1ll << 31), "CUDA append: too many vectors ({})", vectors);
  void* args[] = {&P};
  const cudaError_t e = cudaLaunchKernel(impl_->fn, dim3(unsigned(blocks)), dim3(append::kThreads), args, 0,
                                         static_cast<cudaStream_t>(stream));
  TQ_CHECK(e == cudaSuccess, kInternal, "CUDA append: launch failed: {}", cudaGetErrorString(e));
}

int AppendPlan::read_error_flag() const {
  int f = 0;
  TQ_CUDA_CHECK_A(cudaMemcpy(&f, impl_->flag, sizeof(int), cudaMemcpyDeviceToHost));
  TQ_CUDA_CHECK_A(cudaMemset(impl_->flag, 0, sizeof(int)));
  return f;
}

}  // namespace tq::cuda

struct tq_cuda_append_plan {
  std::unique_ptr<tq::cuda::AppendPlan> plan;
};

extern "C" {

tq_status tq_cuda_append_plan_create(const char* codec, int heads_kv, int head_dim, int page_tokens, int num_pages,
                                     int in_dtype, tq_cuda_append_plan** out) {
  return tq_cuda_append_plan_create_ex(codec, heads_kv, head_dim, page_tokens, num_pages, in_dtype, 0u, out);
}

tq_status tq_cuda_append_plan_create_ex(const char* codec, int heads_kv, int head_dim, int page_tokens, int num_pages,
                                        int in_dtype, unsigned flags, tq_cuda_append_plan** out) {
  return tq::capi::guard([&] {
    TQ_CHECK_ARG(codec && out, "null argument");
    TQ_CHECK_ARG((flags & ~TQ_CUDA_TOKEN_QUADS) == 0, "unknown plan flags {:#x}", flags);
    auto p = std::make_unique<tq_cuda_append_plan>();
    p->plan = std::make_unique<tq::cuda::AppendPlan>(tq::parse_codec(codec), heads_kv, head_dim, page_tokens, num_pages,
                                                     tq::cuda::DType(in_dtype), (flags & TQ_CUDA_TOKEN_QUADS) != 0);
    *out = p.release();
  });
}

tq_status tq_cuda_append_plan_info(const tq_cuda_append_plan* p, tq_kv_page_info* info) {
  return tq::capi::guard([&] {
    TQ_CHECK_ARG(p && p->plan && info, "null argument");
    const tq::KvPageLayout l = p->plan->layout();
    info->page_tokens = l.page_tokens; info->codes_bytes = l.codes_bytes; info->scalar_bytes = l.scalar_bytes;
    info->head_block_bytes = l.head_block_bytes(); info->page_bytes = l.page_bytes(); info->quad_bits = l.quad_bits;
  });
}

tq_status tq_cuda_append_run(const tq_cuda_append_plan* p, const void* x, const int32_t* slot_mapping, int n_tokens,
                             void* pool, void* stream) {
  return tq::capi::guard([&] {
    TQ_CHECK_ARG(p && p->plan, "null plan");
    p->plan->run(x, slot_mapping, n_tokens, static_cast<uint8_t*>(pool), stream);
  });
}

tq_status tq_cuda_append_check(const tq_cuda_append_plan* p, int* flag) {
  return tq::capi::guard([&] {
    TQ_CHECK_ARG(p && p->plan && flag, "null argument");
    *flag = p->plan->read_error_flag();
  });
}

void tq_cuda_append_plan_destroy(tq_cuda_append_plan* p) { delete p; }

}  // extern "C"
#endif  // TQ_HAVE_CUDA
