// src/cuda/decode_plan.cpp — DecodePlan (validation, the persistent v3 schedule from occupancy, the
// kernel constants; v1 split-KV on request) and the C ABI of turboquant_cuda.h. Compiled by the host
// compiler; kernels live in decode_v3_d*.cu (v3) and decode_launch.cu (v1).
#if defined(TQ_HAVE_CUDA)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/decode_frac64.h"
#include "cuda/decode_frag.h"
#include "cuda/decode_launch.h"
#include "cuda/decode_qjl_mats.h"
#include "cuda/decode_v3_params.h"
#include "turboquant/capi_common.h"
#include "turboquant/cuda/decode.h"
#include "turboquant/error.h"
#include "turboquant/half.h"
#include "turboquant/rotation.h"
#include "turboquant/tq_codec.h"
#include "turboquant/turboquant_cuda.h"

namespace tq::cuda {

#define TQ_CUDA_CHECK(expr)                                                                   \
  do {                                                                                        \
    const cudaError_t e_ = (expr);                                                            \
    TQ_CHECK(e_ == cudaSuccess, kInternal, "CUDA error {} ({}) in {}", int(e_), cudaGetErrorString(e_), #expr); \
  } while (0)

bool device_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

namespace {

// Kernel bit width for a codec: 0 = fp16 pass-through, 1..8 = single-part TurboQuant-mse, for
// fractional tq1.5 .. tq7.5 the bits of part 1 (part 0 has one more) with *frac set, for
// TurboQuant-prod tq2p .. tq8p the mse bits (1 .. 7) with *prod set, and for the fractional prod
// tq1.5p .. tq7.5p part 1's mse bits (0 .. 6; 0: tq1.5p's part 1 has QJL signs only) with both set.
// Why a fractional codec whose parts are not whole 32-code groups has no v3 kernel: every k32-chunk
// of the int8 K mma, every 32-group of selector words and every Hadamard / dense rotation of the
// kernel lies inside one part (docs/CUDA.md "Fractional codecs"). tq2.5 / tq2.5p at head_dim 64
// (16 + 48 dims) have a CUDA-core kernel of their own (decode_frac64.cu) instead.
constexpr const char* kPartsNote = " (the v3 kernel keeps every 32-code group, k32-chunk and rotation inside one part)";

int kernel_bits(const CodecSpec& s, int d, const char* which, int* frac, int* prod) {
  *frac = 0;
  *prod = 0;
  if (s.id == CodecId::kFp16) return 0;
  if (s.id == CodecId::kTqProd && s.fractional) {
    // tq1.5p's part 1 has no mse stage (QJL only); tq5.5p .. tq7.5p take the fractional wide
    // (fp16-table) mse paths.
    TQ_CHECK(s.bits >= 1 && s.bits <= 7, kUnsupported,
             "CUDA decode: {} codec '{}' has no kernel (fractional prod: tq1.5p .. tq7.5p)", which, s.name());
    TQ_CHECK(s.norm == NormType::kFp16, kUnsupported, "CUDA decode: {} codec '{}': only fp16 norms", which, s.name());
    TQ_CHECK(s.rotation == RotationKind::kAuto, kUnsupported,
             "CUDA decode: {} codec '{}': fractional codecs need the automatic rotation (Hadamard or dense per part)",
             which, s.name());
    const int hi = int(std::lround(d * s.hi_fraction));
    if (d == 64 && s.bits == 2) {  // tq2.5p at 64 (16 + 48 dims): the CUDA-core kernel of decode_frac64.cu
      *frac = 1;
      *prod = 1;
      return 1;
    }
    TQ_CHECK(hi % 32 == 0 && hi == 32 * v3::hi_groups(d, s.bits - 1, 1, 1), kUnsupported,
             "CUDA decode: {} codec '{}' at head_dim {}: its parts ({} + {} dims) are not multiples of 32{}", which,
             s.name(), d, hi, d - hi, kPartsNote);
    *frac = 1;
    *prod = 1;
    return s.bits - 1;
  }
  if (s.id == CodecId::kTqProd) {
    TQ_CHECK(s.bits >= 2 && s.bits <= 8, kUnsupported,
             "CUDA decode: {} codec '{}' has no kernel (prod codecs: tq2p .. tq8p, tq1.5p .. tq7.5p)", which, s.name());
    TQ_CHECK(s.norm == NormType::kFp16, kUnsupported, "CUDA decode: {} codec '{}': only fp16 norms", which, s.name());
    TQ_CHECK(s.rotation == RotationKind::kAuto || s.rotation == RotationKind::kHadamard, kUnsupported,
             "CUDA decode: {} codec '{}': only the Hadamard rotation (head_dim {} is a power of two)", which, s.name(), d);
    *prod = 1;
    return s.bits - 1;
  }
  TQ_CHECK(s.id == CodecId::kTqMse && (s.fractional ? (s.bits >= 1 && s.bits <= 7) : (s.bits >= 1 && s.bits <= 8)),
           kUnsupported,
           "CUDA decode: {} codec '{}' has no kernel (supported: fp16, tq1 .. tq8, tq1.5 .. tq7.5, tq2p .. tq8p, "
           "tq1.5p .. tq7.5p)", which,
           s.name());
  TQ_CHECK(s.norm == NormType::kFp16, kUnsupported, "CUDA decode: {} codec '{}': only fp16 norms", which, s.name());
  if (s.fractional) {
    // The kernel keeps every 32-coordinate group inside one part (one norm and scale per part).
    const int hi = int(std::lround(d * s.hi_fraction));
    TQ_CHECK((d == 64 && s.bits == 2) || (hi % 32 == 0 && hi == 32 * v3::hi_groups(d, s.bits, 1)), kUnsupported,
             "CUDA decode: {} codec '{}' at head_dim {}: its parts ({} + {} dims) are not multiples of 32{}", which,
             s.name(), d, hi, d - hi, kPartsNote);
    TQ_CHECK(s.rotation == RotationKind::kAuto, kUnsupported,
             "CUDA decode: {} codec '{}': fractional codecs need the automatic rotation (Hadamard or dense per part)",
             which, s.name());
    *frac = 1;
  } else {
    TQ_CHECK(s.rotation == RotationKind::kAuto || s.rotation == RotationKind::kHadamard, kUnsupported,
             "CUDA decode: {} codec '{}': only the Hadamard rotation (head_dim {} is a power of two)", which, s.name(), d);
  }
  return s.bits;
}

struct DeviceBuffer {
  void* p = nullptr;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { if (p) cudaFree(p); }
  template <class T>
  void upload(const std::vector<T>& v) {
    TQ_CUDA_CHECK(cudaMalloc(&p, v.size() * sizeof(T)));
    TQ_CUDA_CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  const float* f() const { return static_cast<const float*>(p); }
};

size_t align256(size_t x) { return (x + 255) & ~size_t(255); }
constexpr float kLog2e = 1.4426950408889634f;

}  // namespace

struct DecodePlan::Impl {
  DecodeShape shape;
  std::shared_ptr<const Codec> kc, vc;
  int kb = 0, vb = 0, frac = 0, prod = 0, version = 3;  // prod: bit 0 = K, bit 1 = V
  int qv = 0;  // V pages in token quads, PV on int8 (DecodeShape::v_quads)
  KvPageLayout kl{}, vl{};
  size_t ws_bytes = 0, off_err = 0;
  // v3: one persistent launch
  const void* fn = nullptr;
  int grid = 0;
  size_t smem = 0;
  v3::Params params{};  // everything but the per-run pointers
  size_t off_po = 0, off_pml = 0, off_cnt = 0;
  mutable const void* initialized_ws = nullptr;  // workspace zeroed by the last first use
  // v1 (TQ_CUDA_DECODE_V1=1): rotate / split / merge launches
  int max_group = 4, splits = 1, chunk = 0;
  DeviceBuffer k_signs, v_signs, k_cent, v_cent;
  DeviceBuffer k_proj, v_proj;  // v3, fractional codecs: dense part rotations (Params::kproj / vproj)
  DeviceBuffer k_sketch, v_fold;  // v3, prod codecs: Params::ksk / vfold
  DeviceBuffer wide_tab;          // v3, tq5..tq8: Params::wtab
  size_t v1_off_po = 0, v1_off_pml = 0;
  // tq2.5 / tq2.5p at head_dim 64: the CUDA-core kernels of decode_frac64.cu (version 1 too)
  int f64 = 0;
  DeviceBuffer f64_kt, f64_vt;  // frac64::Tables of K and V
  // Debug timeline (TQ_CUDA_DECODE_TRACE=file with kernels built with -DTQ_DECODE_TRACE): the last
  // run's per-CTA stamps are written to the file when the plan is destroyed.
  DeviceBuffer trace;
  std::string trace_path;
  ~Impl() {
    if (!trace.p) return;
    std::vector<unsigned long long> h(size_t(grid) * v3::kTraceSlots);
    if (cudaDeviceSynchronize() != cudaSuccess ||
        cudaMemcpy(h.data(), trace.p, h.size() * sizeof(h[0]), cudaMemcpyDeviceToHost) != cudaSuccess)
      return;
    if (FILE* f = std::fopen(trace_path.c_str(), "w")) {
      for (int c = 0; c < grid; ++c) {
        for (int i = 0; i < v3::kTraceSlots; ++i) std::fprintf(f, "%s%llu", i ? " " : "", h[size_t(c) * v3::kTraceSlots + i]);
        std::fprintf(f, "\n");
      }
      std::fclose(f);
    }
  }
};

namespace {

void plan_v3(DecodePlan::Impl& I) {
  const DecodeShape& s = I.shape;
  const int G = s.heads_q / s.heads_kv;
  I.fn = v3::find_kernel(s.head_dim, I.kb, I.vb, I.frac, I.prod, I.qv);
  TQ_CHECK(I.fn, kUnsupported,
           "CUDA decode: no kernel for K bits {} with V bits {} (pairs: fp16/fp16, tqB/tqB, tq(B+1)/tqB, fp16/tq3, fp16/tq4)", I.kb,
           I.vb);
  TQ_CHECK_ARG(s.batch <= 4096, "CUDA decode: batch {} > 4096", s.batch);
  const int fr = I.frac, kp = I.prod & 1, vp = I.prod & 2;
  TQ_CHECK(int(I.kl.codes_bytes) == v3::codes_bytes(s.head_dim, I.kb, fr, kp) &&
               int(I.kl.scalar_bytes) == v3::norm_bytes(I.kb, fr, kp) &&
               int(I.vl.codes_bytes) == v3::codes_bytes(s.head_dim, I.vb, fr, vp) &&
               int(I.vl.scalar_bytes) == v3::norm_bytes(I.vb, fr, vp),
           kInternal, "CUDA decode: codec layout does not match the kernel's");
  const int sb = v3::stage_bytes(s.head_dim, I.kb, I.vb, fr, I.prod);
  // Ring depth: ~40 KB of chunks in flight per CTA (several CTAs per SM), at least double buffering.
  // (TQ_CUDA_DECODE_STAGES overrides it: ring-depth experiments.)
  int stages = std::clamp(40960 / sb, 2, v3::kMaxStages);
  if (const char* e = std::getenv("TQ_CUDA_DECODE_STAGES")) stages = std::clamp(std::atoi(e), 2, v3::kMaxStages);
  const v3::Smem L = v3::smem_layout(s.head_dim, sb, stages, s.batch, G, fr && I.prod ? v3::kQxFloats : 0);
  I.smem = L.total;
  TQ_CUDA_CHECK(cudaFuncSetAttribute(I.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, int(I.smem)));
  int per_sm = 0;
  TQ_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, I.fn, v3::kThreads, I.smem));
  const int sms = launch::sm_count();
  TQ_CHECK(per_sm > 0 && sms > 0, kInternal, "CUDA decode: occupancy query failed ({} CTAs/SM, {} SMs)", per_sm, sms);
  I.grid = per_sm * sms;  // one persistent wave; the kernel splits the work evenly over it

  v3::Params& P = I.params;
  P.kl = I.kl; P.vl = I.vl;
  P.q_dtype = int(s.q_dtype); P.out_dtype = int(s.out_dtype);
  P.B = s.batch; P.Hq = s.heads_q; P.Hkv = s.heads_kv; P.G = G;
  P.max_pages = s.max_pages_per_seq; P.num_pages = s.num_pages; P.max_seq_len = s.max_seq_len; P.stages = stages;
  // Split policy: the kernel spreads the work evenly over the wave (occupancy x SMs), but gives a CTA
  // at least two chunks: at small B a chunk costs one warp step (~1-2 us of dependent latency), and
  // halving the partials to merge measured 1-3 us faster at B = 1-4, T <= 4K and equal beyond
  // (bench/cuda/sweep_split.py, docs/CUDA.md). From 512 chunks of work on, four: 128-256 CTAs whose
  // segments tile the heads, a quarter of the partials (session 7, H200: B = 1 T = 4K, B = 2 T = 2K-4K,
  // B = 4 T = 1K-2K, B = 8 T = 1K 0.4-5.7 us faster, every codec; below 512 chunks four was 0.3-1.0
  // us slower, from 2048 on equal; three splits block pairs and was worst everywhere).
  // TQ_CUDA_MIN_CHUNKS overrides it for that sweep.
  const long long max_chunks = (long long)s.batch * s.heads_kv * std::max(1, (s.max_seq_len + v3::kChunk - 1) / v3::kChunk);
  P.min_chunks = max_chunks >= 512 ? 4 : 2;
  if (const char* e = std::getenv("TQ_CUDA_MIN_CHUNKS")) P.min_chunks = std::max(1, std::atoi(e));
  // No more CTAs than the largest possible work needs at that floor (every sequence at
  // max_seq_len): the schedule is the same, the CTAs that would exit at once are not launched.
  I.grid = int(std::min<long long>(I.grid, (max_chunks + P.min_chunks - 1) / P.min_chunks));
  if (const char* e = std::getenv("TQ_CUDA_DECODE_DROP")) P.drop = std::atoi(e);  // debug builds only
  if (const char* e = std::getenv("TQ_CUDA_DECODE_TRACE")) {
    const size_t n = size_t(I.grid) * v3::kTraceSlots * sizeof(unsigned long long);
    TQ_CUDA_CHECK(cudaMalloc(&I.trace.p, n));
    TQ_CUDA_CHECK(cudaMemset(I.trace.p, 0, n));
    I.trace_path = e;
    I.params.trace = static_cast<unsigned long long*>(I.trace.p);
  }
  const float scale = s.scale > 0 ? s.scale : 1.0f / std::sqrt(float(s.head_dim));
  const float rs = 1.0f / std::sqrt(float(s.head_dim));
  // Single-part: 1/sqrt(D) folded into q and the output; fractional: into the dense rotations.
  P.q_scale = scale * kLog2e * (I.kb && !fr ? rs : 1.0f);
  P.out_scale = I.vb && !fr ? rs : 1.0f;
  // Hadamard sign bits: coordinate i of part p at bit first_p + i (fractional codecs: the kernel
  // rotates power-of-two parts by butterflies, a 96 / 192-dim part by its dense matrix).
  auto signs = [&](const Codec& c, uint32_t (*sign)[8]) -> const TqCodec* {
    const auto* t = dynamic_cast<const TqCodec*>(&c);
    if (!t) return t;
    int first = 0;
    for (const TqPart& part : t->parts()) {
      const int m = part.rot->dim();
      const bool pow2 = (m & (m - 1)) == 0;
      TQ_CHECK(part.rot->kind() == (pow2 ? RotationKind::kHadamard : RotationKind::kDense), kInternal,
               "CUDA decode: part of dim {} with an unexpected rotation kind", m);
      if (pow2)
        for (int r = 0; r < v3::kRounds; ++r)
          for (int i = 0; i < m; ++i)
            if (part.rot->signs(r)[i] < 0) sign[r][(first + i) / 32] |= 1u << ((first + i) % 32);
      first += m;
    }
    return t;
  };
  // Tables hold the centroids of part p times sqrt(m_p) (m_p = D for single-part codecs).
  auto k_table = [&](const TqPart& part, uint32_t tab8[4]) {  // K: int8 (QK^T in int8)
    std::vector<double> c;
    for (double x : part.cb->centroids()) c.push_back(x * std::sqrt(double(part.rot->dim())));
    return frag::make_table_i8(c.data(), int(c.size()), tab8);
  };
  auto v_table = [&](const TqPart& part, uint32_t tab[8]) {  // V: fp16
    std::vector<uint16_t> h;
    for (double x : part.cb->centroids()) h.push_back(float_to_half(float(x * std::sqrt(double(part.rot->dim())))));
    // The 4-bit lookup keeps 8 entries and negates (the Lloyd-Max codebook of a symmetric law is
    // symmetric; checked here rather than assumed).
    if (h.size() == 16)
      for (int i = 0; i < 8; ++i)
        TQ_CHECK(h[15 - i] == uint16_t(h[i] ^ 0x8000u), kInternal,
                 "CUDA decode: {}-bit codebook of dim {} is not symmetric in fp16 at entry {}", 4, part.rot->dim(), i);
    frag::make_table(h.data(), int(h.size()), tab);
  };
  // Fractional: each part's rotation R_p as a dense matrix scaled by 1/sqrt(m_p), blocks one after
  // the other: transposed for q (kproj), as is for the output (vproj). Channels must be the
  // uncalibrated split (part 0 = channels [0, m_0)), which Codec::create makes.
  auto proj = [&](const TqCodec& t, bool transpose, DeviceBuffer& buf) {
    std::vector<float> a;
    int first = 0;
    for (const TqPart& part : t.parts()) {
      const int m = part.rot->dim();
      for (int i = 0; i < m; ++i)
        TQ_CHECK(part.channels[i] == first + i, kInternal, "CUDA decode: fractional codec with calibrated channels");
      const size_t off = a.size();
      a.resize(off + size_t(m) * m);
      std::vector<double> e(m), y(m);
      for (int j = 0; j < m; ++j) {  // column j of R_p
        std::fill(e.begin(), e.end(), 0.0);
        e[j] = 1.0;
        part.rot->forward(e.data(), y.data());
        for (int i = 0; i < m; ++i)
          a[off + (transpose ? size_t(j) * m + i : size_t(i) * m + j)] = float(y[i] / std::sqrt(double(m)));
      }
      first += m;
    }
    buf.upload(a);
    return buf.f();
  };
  // Wide codecs (tq5..tq8, K and V the same bits; the mse codes of tq6p .. tq8p): both codebooks as
  // fp16 c * sqrt(D), K's then V's.
  // Fractional wide (tq4.5 .. tq7.5): per codec, part 0's then part 1's, c * sqrt(D/2).
  const bool wide = I.kb >= 5 || (fr && I.kb >= 4);
  if (wide) {
    std::vector<uint16_t> h;
    for (const Codec* c : {I.kc.get(), I.vc.get()})
      for (const TqPart& part : dynamic_cast<const TqCodec&>(*c).parts())
        for (double x : part.cb->centroids()) h.push_back(float_to_half(float(x * std::sqrt(double(part.rot->dim())))));
    TQ_CHECK(h.size() == (fr ? size_t(6) : size_t(2)) << I.kb, kInternal, "CUDA decode: wide tables of {} entries", h.size());
    I.wide_tab.upload(h);
    P.wtab = static_cast<const uint16_t*>(I.wide_tab.p);
  }
  if (const TqCodec* t = signs(*I.kc, P.ksign); t && !wide) {
    P.kdeq = k_table(t->parts()[0], P.ktab8);
    if (fr) {
      P.kdeqb = k_table(t->parts()[1], P.ktab8b);
      P.kproj = proj(*t, true, I.k_proj);
    }
  }
  if (const TqCodec* t = signs(*I.vc, P.vsign); t && !wide) {
    v_table(t->parts()[0], P.vtab);
    if (I.qv) P.vdeq = k_table(t->parts()[0], P.vtab8);  // int8 centroids, as K's
    if (fr) {
      v_table(t->parts()[1], P.vtabb);
      P.vproj = proj(*t, false, I.v_proj);
    }
  }
  // Prod: K's sketch transposed for the query's S·Rq (fractional: per part, κ_p√m_p folded in); V's
  // κ√D·S^T (fractional: block-diagonal) in the fragment order of the per-warp fold (decode_qjl_mats.h).
  const int D = s.head_dim;
  if (kp) {
    const auto& t = dynamic_cast<const TqCodec&>(*I.kc);
    I.k_sketch.upload(v3::qjl_k_sketch(t, D));
    P.ksk = I.k_sketch.f();
    P.kqjl = fr ? 1.f : float(t.parts()[0].qjl_scale * std::sqrt(double(D)));
  }
  if (vp) {
    I.v_fold.upload(v3::qjl_v_fold(dynamic_cast<const TqCodec&>(*I.vc), D, I.vb, wide));
    P.vfold = I.v_fold.f();
  }

  const size_t slots = size_t(I.grid) + size_t(s.batch) * s.heads_kv;  // slot = CTA + segment: unique
  I.off_po = 0;
  I.off_pml = align256(slots * G * s.head_dim * 4);
  I.off_cnt = I.off_pml + align256(slots * G * 2 * 4);
  // Counters: one per segment, then one per (group's first CTA + segment) for two-level merges.
  I.off_err = I.off_cnt + align256((size_t(s.batch) * s.heads_kv + slots) * 4);
  I.ws_bytes = I.off_err + 256;
}

void plan_v1(DecodePlan::Impl& I) {
  const DecodeShape& s = I.shape;
  const int G = s.heads_q / s.heads_kv;
  I.max_group = G <= 4 ? 4 : 8;
  TQ_CHECK(launch::has_kernel(s.head_dim, I.kb, I.vb, I.max_group), kUnsupported,
           "CUDA decode v1: no kernel for K bits {} with V bits {}", I.kb, I.vb);
  auto upload_codec = [&](const Codec& c, DeviceBuffer& signs, DeviceBuffer& cent) {
    std::vector<float> sg(size_t(Rotation::kHadamardRounds) * s.head_dim, 1.f), ce(1, 0.f);
    if (const auto* t = dynamic_cast<const TqCodec*>(&c)) {
      const auto& part = t->parts()[0];
      for (int r = 0; r < Rotation::kHadamardRounds; ++r)
        std::copy(part.rot->signs(r).begin(), part.rot->signs(r).end(), sg.begin() + size_t(r) * s.head_dim);
      ce = part.cb->centroids_f32();
    }
    signs.upload(sg);
    cent.upload(ce);
  };
  upload_codec(*I.kc, I.k_signs, I.k_cent);
  upload_codec(*I.vc, I.v_signs, I.v_cent);
  // Split-KV schedule from occupancy: two full waves, no split shorter than one tile.
  const int per_sm = launch::blocks_per_sm(s.head_dim, I.kb, I.vb, I.max_group);
  const int sms = launch::sm_count();
  TQ_CHECK(per_sm > 0 && sms > 0, kInternal, "CUDA decode: occupancy query failed");
  const int tile = launch::tile_tokens();
  const int max_tiles = (s.max_seq_len + tile - 1) / tile;
  const int want = (2 * per_sm * sms + s.batch * s.heads_kv - 1) / (s.batch * s.heads_kv);
  const int splits = std::clamp(want, 1, max_tiles);
  I.chunk = ((max_tiles + splits - 1) / splits) * tile;
  I.splits = (s.max_seq_len + I.chunk - 1) / I.chunk;
  const size_t rows = size_t(s.batch) * s.heads_q;
  I.v1_off_po = align256(rows * s.head_dim * 4);
  I.v1_off_pml = I.v1_off_po + align256(rows * I.splits * s.head_dim * 4);
  I.off_err = I.v1_off_pml + align256(rows * I.splits * 2 * 4);
  I.ws_bytes = I.off_err + 256;
}

// tq2.5 / tq2.5p at head_dim 64: the codec tables (centroids, part 0 signs, the dense part 1,
// prod: sketches and kappas) and the split-KV schedule of v1 for the kernels of decode_frac64.cu.
void plan_frac64(DecodePlan::Impl& I) {
  const DecodeShape& s = I.shape;
  const int G = s.heads_q / s.heads_kv;
  I.max_group = G <= 4 ? 4 : 8;
  const bool prod = I.prod != 0;
  auto upload = [&](const Codec& c, DeviceBuffer& buf) {
    const auto* t = dynamic_cast<const TqCodec*>(&c);
    TQ_CHECK(t, kInternal, "CUDA decode: codec '{}' is not a TqCodec", c.spec().name());
    const char* why = append::frac64_check(*t, prod);
    TQ_CHECK(!*why, kInternal, "CUDA decode: codec '{}' at head_dim 64: {}", c.spec().name(), why);
    std::vector<frac64::Tables> tab(1);
    frac64::make_tables(*t, prod, tab[0]);
    buf.upload(tab);
  };
  upload(*I.kc, I.f64_kt);
  upload(*I.vc, I.f64_vt);
  // Split-KV schedule from occupancy: two full waves, no split shorter than one tile (as v1).
  const int per_sm = frac64::blocks_per_sm(prod, I.max_group);
  const int sms = launch::sm_count();
  TQ_CHECK(per_sm > 0 && sms > 0, kInternal, "CUDA decode: occupancy query failed");
  const int tile = frac64::kTile;
  const int max_tiles = (s.max_seq_len + tile - 1) / tile;
  const int want = (2 * per_sm * sms + s.batch * s.heads_kv - 1) / (s.batch * s.heads_kv);
  const int splits = std::clamp(want, 1, max_tiles);
  I.chunk = ((max_tiles + splits - 1) / splits) * tile;
  I.splits = (s.max_seq_len + I.chunk - 1) / I.chunk;
  const size_t rows = size_t(s.batch) * s.heads_q, rf = size_t(frac64::row_floats(prod));
  I.v1_off_po = align256(rows * rf * 4);
  I.v1_off_pml = I.v1_off_po + align256(rows * I.splits * rf * 4);
  I.off_err = I.v1_off_pml + align256(rows * I.splits * 2 * 4);
  I.ws_bytes = I.off_err + 256;
}

}  // namespace

DecodePlan::DecodePlan(const DecodeShape& s, const CodecSpec& kspec, const CodecSpec& vspec)
    : impl_(std::make_unique<Impl>()) {
  Impl& I = *impl_;
  I.shape = s;
  TQ_CHECK_ARG(s.batch >= 1 && s.heads_kv >= 1 && s.heads_q >= 1, "CUDA decode: batch and heads must be >= 1");
  TQ_CHECK_ARG(s.heads_q % s.heads_kv == 0, "CUDA decode: heads_q {} is not a multiple of heads_kv {}", s.heads_q, s.heads_kv);
  const int G = s.heads_q / s.heads_kv;
  TQ_CHECK(G <= 8, kUnsupported, "CUDA decode: GQA group {} > 8 has no kernel", G);
  TQ_CHECK(s.head_dim == 64 || s.head_dim == 128 || s.head_dim == 256, kUnsupported,
           "CUDA decode: head_dim {} has no kernel (64, 128, 256)", s.head_dim);
  TQ_CHECK_ARG(s.page_tokens > 0 && s.page_tokens % v3::kChunk == 0,
               "CUDA decode: page_tokens {} must be a positive multiple of {}", s.page_tokens, v3::kChunk);
  TQ_CHECK_ARG(s.max_pages_per_seq >= 1 && s.num_pages >= 1, "CUDA decode: page table / pool sizes must be >= 1");
  TQ_CHECK_ARG(s.max_seq_len >= 1 && s.max_seq_len <= s.max_pages_per_seq * s.page_tokens,
               "CUDA decode: max_seq_len {} must be in [1, max_pages_per_seq * page_tokens]", s.max_seq_len);
  TQ_CHECK_ARG(int(s.q_dtype) >= 0 && int(s.q_dtype) <= 2 && int(s.out_dtype) >= 0 && int(s.out_dtype) <= 2,
               "CUDA decode: dtype must be 0 (f32), 1 (f16) or 2 (bf16)");
  int kfrac = 0, vfrac = 0, kprod = 0, vprod = 0;
  I.kb = kernel_bits(kspec, s.head_dim, "K", &kfrac, &kprod);
  I.vb = kernel_bits(vspec, s.head_dim, "V", &vfrac, &vprod);
  TQ_CHECK(kfrac == vfrac, kUnsupported, "CUDA decode: K '{}' with V '{}': fractional codecs need both K and V fractional",
           kspec.name(), vspec.name());
  // Prod: compiled for K and V both tqBp of the same B only (a prod K with an mse V, or the
  // reverse, would be more instantiations of the same code: not built).
  TQ_CHECK(kprod == vprod && (!kprod || I.kb == I.vb), kUnsupported,
           "CUDA decode: K '{}' with V '{}': prod (QJL) codecs need K and V the same tqBp (tq2p .. tq8p, tq1.5p .. tq7.5p)",
           kspec.name(),
           vspec.name());
  I.frac = kfrac;
  I.prod = kprod | (vprod << 1);
  // tq2.5 / tq2.5p at head_dim 64 (parts of 16 + 48 dims): K and V both, the CUDA-core kernels of
  // decode_frac64.cu (the v3 kernel keeps 32-code groups inside one part).
  const bool k64 = kfrac && s.head_dim == 64 && kspec.bits == 2, v64 = vfrac && s.head_dim == 64 && vspec.bits == 2;
  TQ_CHECK(k64 == v64, kUnsupported,
           "CUDA decode: K '{}' with V '{}' at head_dim 64: tq2.5 / tq2.5p pair only with themselves (K and V the same codec)",
           kspec.name(), vspec.name());
  I.f64 = k64;
  I.qv = s.v_quads;
  TQ_CHECK(!I.qv || (I.kb == I.vb && I.kb >= 2 && I.kb <= 4 && !I.frac && !I.prod), kUnsupported,
           "CUDA decode: V in token quads (v_quads) is built for tqB/tqB, B = 2..4, not K '{}' with V '{}'",
           kspec.name(), vspec.name());
  TQ_CHECK(I.f64 || v3::find_kernel(s.head_dim, I.kb, I.vb, I.frac, I.prod) != nullptr, kUnsupported,
           "CUDA decode: no kernel for K '{}' with V '{}' (pairs: fp16/fp16, tqB/tqB for B = 1..8, tq(B+1)/tqB for B = 2, 3, "
           "fp16/tq3, fp16/tq4, tqB.5/tqB.5 for B = 1..7, tqBp/tqBp for tq2p .. tq8p, "
           "tqB.5p/tqB.5p for tq1.5p .. tq7.5p)",
           kspec.name(), vspec.name());
  TQ_CHECK(device_available(), kUnsupported, "CUDA decode: no CUDA device");
  I.kc = Codec::create(kspec, s.head_dim);
  I.vc = Codec::create(vspec, s.head_dim);
  I.kl = KvPageLayout{uint32_t(s.page_tokens), uint32_t(s.heads_kv), uint32_t(I.kc->codes_bytes()), uint32_t(I.kc->scalar_bytes())};
  I.vl = KvPageLayout{uint32_t(s.page_tokens), uint32_t(s.heads_kv), uint32_t(I.vc->codes_bytes()), uint32_t(I.vc->scalar_bytes()),
                      I.qv ? uint32_t(I.vb) : 0u};
  if (I.f64) {
    I.version = 1;  // CUDA cores (no v3 kernel), whatever TQ_CUDA_DECODE_V1 says
    plan_frac64(I);
    return;
  }
  I.version = std::getenv("TQ_CUDA_DECODE_V1") != nullptr ? 1 : 3;
  TQ_CHECK(I.version == 3 || !I.frac, kUnsupported, "CUDA decode v1 (TQ_CUDA_DECODE_V1): no kernel for fractional codecs");
  TQ_CHECK(I.version == 3 || !I.prod, kUnsupported, "CUDA decode v1 (TQ_CUDA_DECODE_V1): no kernel for prod codecs ('{}')",
           kspec.name());
  TQ_CHECK(I.version == 3 || !I.qv, kUnsupported, "CUDA decode v1 (TQ_CUDA_DECODE_V1): no quad-V kernel");
  if (I.version == 3) plan_v3(I); else plan_v1(I);
}

DecodePlan::~DecodePlan() = default;
size_t DecodePlan::workspace_bytes() const { return impl_->ws_bytes; }
int DecodePlan::splits() const { return impl_->version == 3 ? impl_->grid : impl_->splits; }
bool DecodePlan::uses_tensor_cores() const { return impl_->version == 3; }
bool DecodePlan::int8_scores() const {  // fp16 scores: fp16 K and the wide codecs (tq5..tq8, tq4.5 .. tq7.5(p))
  // (kb 0 with frac: tq1.5p, whose part 0 is scored on int8)
  return impl_->version == 3 && (impl_->kb != 0 || impl_->frac) && impl_->kb < 5 && !(impl_->frac && impl_->kb >= 4);
}
int DecodePlan::version() const { return impl_->version; }
KvPageLayout DecodePlan::k_layout() const { return impl_->kl; }
KvPageLayout DecodePlan::v_layout() const { return impl_->vl; }
const Codec& DecodePlan::k_codec() const { return *impl_->kc; }
const Codec& DecodePlan::v_codec() const { return *impl_->vc; }

namespace {
// The arguments the CUDA-core split-KV launches share (v1, launch::DecodeLaunch; tq2.5 / tq2.5p at
// D = 64, frac64::Launch): tensors, the v1 workspace layout, shape, split and scale.
template <class Launch>
void fill_cuda_core_launch(Launch& x, const DecodePlan::Impl& I, const DecodeArgs& a, char* ws) {
  x.q_dtype = int(I.shape.q_dtype); x.out_dtype = int(I.shape.out_dtype);
  x.q = a.q; x.out = a.out; x.k_pool = a.k_pool; x.v_pool = a.v_pool;
  x.page_table = a.page_table; x.seq_lens = a.seq_lens;
  x.q_rot = reinterpret_cast<float*>(ws);
  x.part_o = reinterpret_cast<float*>(ws + I.v1_off_po);
  x.part_ml = reinterpret_cast<float*>(ws + I.v1_off_pml);
  x.error_flag = reinterpret_cast<int*>(ws + I.off_err);
  x.kl = I.kl; x.vl = I.vl;
  x.B = I.shape.batch; x.Hq = I.shape.heads_q; x.Hkv = I.shape.heads_kv;
  x.max_pages = I.shape.max_pages_per_seq; x.num_pages = I.shape.num_pages;
  x.splits = I.splits; x.chunk = I.chunk;
  x.scale = I.shape.scale > 0 ? I.shape.scale : 1.0f / std::sqrt(float(I.shape.head_dim));
  x.stream = a.stream;
}
}  // namespace

void DecodePlan::run(const DecodeArgs& a) const {
  const Impl& I = *impl_;
  TQ_CHECK_ARG(a.q && a.k_pool && a.v_pool && a.page_table && a.seq_lens && a.out && a.workspace,
               "CUDA decode: null pointer argument");
  // Bulk copies need 16-byte aligned sources (page and head-block sizes are multiples of 16).
  TQ_CHECK_ARG((reinterpret_cast<uintptr_t>(a.k_pool) | reinterpret_cast<uintptr_t>(a.v_pool)) % 16 == 0,
               "CUDA decode: K and V pools must be 16-byte aligned");
  TQ_CHECK_ARG(reinterpret_cast<uintptr_t>(a.workspace) % 256 == 0, "CUDA decode: workspace must be 256-byte aligned");
  cudaStream_t st = static_cast<cudaStream_t>(a.stream);
  char* ws = static_cast<char*>(a.workspace);
  if (I.version == 3) {
    // The kernel leaves its segment counters at zero; a workspace seen for the first time is zeroed
    // once (stream-ordered, no host sync; inside a graph capture it becomes a memset node).
    if (I.initialized_ws != a.workspace) {
      TQ_CUDA_CHECK(cudaMemsetAsync(ws, 0, I.ws_bytes, st));
      I.initialized_ws = a.workspace;
    }
    if (I.trace.p)  // debug timeline: this run's stamps only
      TQ_CUDA_CHECK(cudaMemsetAsync(I.trace.p, 0, size_t(I.grid) * v3::kTraceSlots * sizeof(unsigned long long), st));
    v3::Params P = I.params;
    P.q = a.q; P.out = a.out; P.k_pool = a.k_pool; P.v_pool = a.v_pool;
    P.page_table = a.page_table; P.seq_lens = a.seq_lens;
    P.part_o = reinterpret_cast<float*>(ws + I.off_po);
    P.part_ml = reinterpret_cast<float*>(ws + I.off_pml);
    P.counters = reinterpret_cast<int*>(ws + I.off_cnt);
    P.error_flag = reinterpret_cast<int*>(ws + I.off_err);
    void* args[] = {&P};
    const cudaError_t e = cudaLaunchKernel(I.fn, dim3(I.grid), dim3(v3::kThreads), args, I.smem, st);
    TQ_CHECK(e == cudaSuccess, kInternal, "CUDA decode: launch failed: {}", cudaGetErrorString(e));
    return;
  }
  if (I.f64) {
    if (I.initialized_ws != a.workspace) {  // the error flag of a workspace seen for the first time
      TQ_CUDA_CHECK(cudaMemsetAsync(ws + I.off_err, 0, 256, st));
      I.initialized_ws = a.workspace;
    }
    frac64::Launch F{};
    fill_cuda_core_launch(F, I, a, ws);
    F.prod = I.prod != 0; F.max_group = I.max_group;
    F.kt = static_cast<const frac64::Tables*>(I.f64_kt.p); F.vt = static_cast<const frac64::Tables*>(I.f64_vt.p);
    F.max_seq_len = I.shape.max_seq_len;
    const int e = frac64::run(F);
    TQ_CHECK(e == 0, kInternal, "CUDA decode: launch failed: {}", cudaGetErrorString(cudaError_t(e)));
    return;
  }
  launch::DecodeLaunch L{};
  fill_cuda_core_launch(L, I, a, ws);
  L.head_dim = I.shape.head_dim; L.k_bits = I.kb; L.v_bits = I.vb; L.max_group = I.max_group;
  L.k_signs = I.k_signs.f(); L.v_signs = I.v_signs.f(); L.k_centroids = I.k_cent.f(); L.v_centroids = I.v_cent.f();
  const int e = launch::run_decode(L);
  TQ_CHECK(e == 0, kInternal, "CUDA decode: launch failed: {}", cudaGetErrorString(cudaError_t(e)));
}

int DecodePlan::read_error_flag(const void* workspace) const {
  int flag = 0;
  char* p = static_cast<char*>(const_cast<void*>(workspace)) + impl_->off_err;
  TQ_CUDA_CHECK(cudaMemcpy(&flag, p, sizeof(int), cudaMemcpyDeviceToHost));
  TQ_CUDA_CHECK(cudaMemset(p, 0, sizeof(int)));  // read and clear: the next read reports later runs
  return flag;
}

}  // namespace tq::cuda

// ---- C ABI --------------------------------------------------------------------------------------
struct tq_cuda_decode_plan {
  std::unique_ptr<tq::cuda::DecodePlan> plan;
};

extern "C" {

tq_status tq_cuda_decode_plan_create(const char* kv_codec, int batch, int heads_q, int heads_kv, int head_dim,
                                     int page_tokens, int max_pages_per_seq, int num_pages, int max_seq_len,
                                     int q_dtype, int out_dtype, float scale, tq_cuda_decode_plan** out) {
  return tq_cuda_decode_plan_create_ex(kv_codec, batch, heads_q, heads_kv, head_dim, page_tokens, max_pages_per_seq,
                                       num_pages, max_seq_len, q_dtype, out_dtype, scale, 0u, out);
}

tq_status tq_cuda_decode_plan_create_ex(const char* kv_codec, int batch, int heads_q, int heads_kv, int head_dim,
                                        int page_tokens, int max_pages_per_seq, int num_pages, int max_seq_len,
                                        int q_dtype, int out_dtype, float scale, unsigned flags, tq_cuda_decode_plan** out) {
  return tq::capi::guard([&] {
    TQ_CHECK_ARG(kv_codec && out, "null argument");
    TQ_CHECK_ARG((flags & ~TQ_CUDA_TOKEN_QUADS) == 0, "unknown plan flags {:#x}", flags);
    TQ_CHECK_ARG(q_dtype >= 0 && q_dtype <= 2 && out_dtype >= 0 && out_dtype <= 2, "dtype must be 0 (f32), 1 (f16) or 2 (bf16)");
    const tq::KvCodecSpec kv = tq::parse_kv_codec(kv_codec);
    tq::cuda::DecodeShape s;
    s.batch = batch; s.heads_q = heads_q; s.heads_kv = heads_kv; s.head_dim = head_dim;
    s.page_tokens = page_tokens; s.max_pages_per_seq = max_pages_per_seq; s.num_pages = num_pages;
    s.max_seq_len = max_seq_len; s.q_dtype = tq::cuda::DType(q_dtype); s.out_dtype = tq::cuda::DType(out_dtype);
    s.scale = scale;
    s.v_quads = (flags & TQ_CUDA_TOKEN_QUADS) != 0;
    auto p = std::make_unique<tq_cuda_decode_plan>();
    p->plan = std::make_unique<tq::cuda::DecodePlan>(s, kv.k, kv.v);
    *out = p.release();
  });
}

tq_status tq_cuda_decode_plan_info(const tq_cuda_decode_plan* p, size_t* workspace_bytes, int* splits,
                                   tq_kv_page_info* k, tq_kv_page_info* v) {
  return tq::capi::guard([&] {
    TQ_CHECK_ARG(p && p->plan, "null plan");
    if (workspace_bytes) *workspace_bytes = p->plan->workspace_bytes();
    if (splits) *splits = p->plan->splits();
    auto fill = [](tq_kv_page_info* o, const tq::KvPageLayout& l) {
      if (!o) return;
      o->page_tokens = l.page_tokens; o->codes_bytes = l.codes_bytes; o->scalar_bytes = l.scalar_bytes;
      o->head_block_bytes = l.head_block_bytes(); o->page_bytes = l.page_bytes(); o->quad_bits = l.quad_bits;
    };
    fill(k, p->plan->k_layout());
    fill(v, p->plan->v_layout());
  });
}

tq_status tq_cuda_decode_run(const tq_cuda_decode_plan* p, const void* q, const void* k_pool, const void* v_pool,
                             const int32_t* page_table, const int32_t* seq_lens, void* out, void* workspace,
                             void* stream) {
  return tq::capi::guard([&] {
    TQ_CHECK_ARG(p && p->plan, "null plan");
    tq::cuda::DecodeArgs a;
    a.q = q; a.k_pool = static_cast<const uint8_t*>(k_pool); a.v_pool = static_cast<const uint8_t*>(v_pool);
    a.page_table = page_table; a.seq_lens = seq_lens; a.out = out; a.workspace = workspace; a.stream = stream;
    p->plan->run(a);
  });
}

tq_status tq_cuda_decode_check(const tq_cuda_decode_plan* p, const void* workspace, int* flag) {
  return tq::capi::guard([&] {
    TQ_CHECK_ARG(p && p->plan && flag, "null argument");
    *flag = p->plan->read_error_flag(workspace);
  });
}

void tq_cuda_decode_plan_destroy(tq_cuda_decode_plan* p) { delete p; }

}  // extern "C"
#endif  // TQ_HAVE_CUDA
