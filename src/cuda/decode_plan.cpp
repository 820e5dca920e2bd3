// src/cuda/decode_plan.cpp — DecodePlan (validation, occupancy-driven split-KV schedule, device
// constants) and the C ABI of turboquant_cuda.h. Compiled by the host compiler; kernels live in
// decode_launch.cu.
#if defined(TQ_HAVE_CUDA)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <vector>

#include "cuda/decode_launch.h"
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

// Kernel bit width for a codec: 0 = fp16 pass-through, 2..4 = single-part TurboQuant-mse.
int kernel_bits(const CodecSpec& s, int d, const char* which) {
  if (s.id == CodecId::kFp16) return 0;
  TQ_CHECK(s.id == CodecId::kTqMse && !s.fractional && s.bits >= 2 && s.bits <= 4, kUnsupported,
           "CUDA decode: {} codec '{}' has no kernel (supported: fp16, tq2, tq3, tq4)", which, s.name());
  TQ_CHECK(s.norm == NormType::kFp16, kUnsupported, "CUDA decode: {} codec '{}': only fp16 norms", which, s.name());
  TQ_CHECK(s.rotation == RotationKind::kAuto || s.rotation == RotationKind::kHadamard, kUnsupported,
           "CUDA decode: {} codec '{}': only the Hadamard rotation (head_dim {} is a power of two)", which, s.name(), d);
  return s.bits;
}

struct DeviceBuffer {
  void* p = nullptr;
  ~DeviceBuffer() { if (p) cudaFree(p); }
  void upload(const std::vector<float>& v) {
    TQ_CUDA_CHECK(cudaMalloc(&p, v.size() * sizeof(float)));
    TQ_CUDA_CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
  }
  const float* f() const { return static_cast<const float*>(p); }
};

}  // namespace

struct DecodePlan::Impl {
  DecodeShape shape;
  std::shared_ptr<const Codec> kc, vc;
  int kb = 0, vb = 0, max_group = 4, splits = 1, chunk = 0;
  bool use_mma = false;
  uint32_t tab[16] = {};
  KvPageLayout kl{}, vl{};
  DeviceBuffer k_signs, v_signs, k_cent, v_cent;
  size_t off_q = 0, off_po = 0, off_pml = 0, off_err = 0, ws_bytes = 0;
};

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
  TQ_CHECK_ARG(s.page_tokens > 0 && s.page_tokens % launch::tile_tokens() == 0,
               "CUDA decode: page_tokens {} must be a positive multiple of {}", s.page_tokens, launch::tile_tokens());
  TQ_CHECK_ARG(s.max_pages_per_seq >= 1 && s.num_pages >= 1, "CUDA decode: page table / pool sizes must be >= 1");
  TQ_CHECK_ARG(s.max_seq_len >= 1 && s.max_seq_len <= s.max_pages_per_seq * s.page_tokens,
               "CUDA decode: max_seq_len {} must be in [1, max_pages_per_seq * page_tokens]", s.max_seq_len);
  I.kb = kernel_bits(kspec, s.head_dim, "K");
  I.vb = kernel_bits(vspec, s.head_dim, "V");
  I.max_group = G <= 4 ? 4 : 8;
  TQ_CHECK(launch::has_kernel(s.head_dim, I.kb, I.vb, I.max_group), kUnsupported,
           "CUDA decode: no kernel for K '{}' with V '{}' (pairs: fp16/fp16, tqB/tqB, tq(B+1)/tqB)", kspec.name(), vspec.name());
  TQ_CHECK(device_available(), kUnsupported, "CUDA decode: no CUDA device");
  I.kc = Codec::create(kspec, s.head_dim);
  I.vc = Codec::create(vspec, s.head_dim);
  I.kl = KvPageLayout{uint32_t(s.page_tokens), uint32_t(s.heads_kv), uint32_t(I.kc->codes_bytes()), uint32_t(I.kc->scalar_bytes())};
  I.vl = KvPageLayout{uint32_t(s.page_tokens), uint32_t(s.heads_kv), uint32_t(I.vc->codes_bytes()), uint32_t(I.vc->scalar_bytes())};

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

  // The tensor-core kernel (v2) serves head_dim 128 with TurboQuant K and V; v1 the rest.
  I.use_mma = launch::has_mma_kernel(s.head_dim, I.kb, I.vb) && std::getenv("TQ_CUDA_DECODE_V1") == nullptr;
  if (I.use_mma) {  // fp16 centroid bytes for the prmt lookups: K lo, K hi, V lo, V hi
    auto bytes = [&](const Codec& c, uint32_t* lo, uint32_t* hi) {
      const auto& ce = dynamic_cast<const TqCodec&>(c).parts()[0].cb->centroids_f32();
      for (size_t i = 0; i < ce.size() && i < 16; ++i) {
        const uint16_t h = float_to_half(ce[i]);
        lo[i / 4] |= uint32_t(h & 0xff) << (8 * (i % 4));
        hi[i / 4] |= uint32_t(h >> 8) << (8 * (i % 4));
      }
    };
    bytes(*I.kc, I.tab, I.tab + 4);
    bytes(*I.vc, I.tab + 8, I.tab + 12);
  }
  // Split-KV schedule from occupancy: enough blocks for two full waves of the device, but no split
  // shorter than one tile.
  const int per_sm = I.use_mma ? launch::mma_units_per_sm(I.kb, I.vb)
                               : launch::blocks_per_sm(s.head_dim, I.kb, I.vb, I.max_group);
  const int sms = launch::sm_count();
  TQ_CHECK(per_sm > 0 && sms > 0, kInternal, "CUDA decode: occupancy query failed");
  const int tile = launch::tile_tokens();
  const int max_tiles = (s.max_seq_len + tile - 1) / tile;
  const int want = (2 * per_sm * sms + s.batch * s.heads_kv - 1) / (s.batch * s.heads_kv);
  int splits = std::clamp(want, 1, max_tiles);
  I.chunk = ((max_tiles + splits - 1) / splits) * tile;
  I.splits = (s.max_seq_len + I.chunk - 1) / I.chunk;

  const size_t rows = size_t(s.batch) * s.heads_q;
  auto align = [](size_t x) { return (x + 255) & ~size_t(255); };
  I.off_q = 0;
  I.off_po = align(rows * s.head_dim * 4);
  I.off_pml = I.off_po + align(rows * I.splits * s.head_dim * 4);
  I.off_err = I.off_pml + align(rows * I.splits * 2 * 4);
  I.ws_bytes = I.off_err + 256;
}

DecodePlan::~DecodePlan() = default;
size_t DecodePlan::workspace_bytes() const { return impl_->ws_bytes; }
int DecodePlan::splits() const { return impl_->splits; }
bool DecodePlan::uses_tensor_cores() const { return impl_->use_mma; }
KvPageLayout DecodePlan::k_layout() const { return impl_->kl; }
KvPageLayout DecodePlan::v_layout() const { return impl_->vl; }
const Codec& DecodePlan::k_codec() const { return *impl_->kc; }
const Codec& DecodePlan::v_codec() const { return *impl_->vc; }

void DecodePlan::run(const DecodeArgs& a) const {
  const Impl& I = *impl_;
  TQ_CHECK_ARG(a.q && a.k_pool && a.v_pool && a.page_table && a.seq_lens && a.out && a.workspace,
               "CUDA decode: null pointer argument");
  launch::DecodeLaunch L{};
  L.head_dim = I.shape.head_dim; L.k_bits = I.kb; L.v_bits = I.vb; L.max_group = I.max_group;
  L.q_dtype = int(I.shape.q_dtype); L.out_dtype = int(I.shape.out_dtype);
  L.q = a.q; L.out = a.out; L.k_pool = a.k_pool; L.v_pool = a.v_pool;
  L.page_table = a.page_table; L.seq_lens = a.seq_lens;
  L.k_signs = I.k_signs.f(); L.v_signs = I.v_signs.f(); L.k_centroids = I.k_cent.f(); L.v_centroids = I.v_cent.f();
  char* ws = static_cast<char*>(a.workspace);
  L.q_rot = reinterpret_cast<float*>(ws + I.off_q);
  L.part_o = reinterpret_cast<float*>(ws + I.off_po);
  L.part_ml = reinterpret_cast<float*>(ws + I.off_pml);
  L.error_flag = reinterpret_cast<int*>(ws + I.off_err);
  L.kl = I.kl; L.vl = I.vl;
  L.B = I.shape.batch; L.Hq = I.shape.heads_q; L.Hkv = I.shape.heads_kv;
  L.max_pages = I.shape.max_pages_per_seq; L.num_pages = I.shape.num_pages;
  L.splits = I.splits; L.chunk = I.chunk;
  L.scale = I.shape.scale > 0 ? I.shape.scale : 1.0f / std::sqrt(float(I.shape.head_dim));
  L.stream = a.stream;
  L.use_mma = I.use_mma ? 1 : 0;
  std::copy(I.tab, I.tab + 16, L.tab);
  const int e = launch::run_decode(L);
  TQ_CHECK(e == 0, kInternal, "CUDA decode: launch failed: {}", cudaGetErrorString(cudaError_t(e)));
}

int DecodePlan::read_error_flag(const void* workspace) const {
  int flag = 0;
  TQ_CUDA_CHECK(cudaMemcpy(&flag, static_cast<const char*>(workspace) + impl_->off_err, sizeof(int), cudaMemcpyDeviceToHost));
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
  return tq::capi::guard([&] {
    TQ_CHECK_ARG(kv_codec && out, "null argument");
    TQ_CHECK_ARG(q_dtype >= 0 && q_dtype <= 2 && out_dtype >= 0 && out_dtype <= 2, "dtype must be 0 (f32), 1 (f16) or 2 (bf16)");
    const tq::KvCodecSpec kv = tq::parse_kv_codec(kv_codec);
    tq::cuda::DecodeShape s;
    s.batch = batch; s.heads_q = heads_q; s.heads_kv = heads_kv; s.head_dim = head_dim;
    s.page_tokens = page_tokens; s.max_pages_per_seq = max_pages_per_seq; s.num_pages = num_pages;
    s.max_seq_len = max_seq_len; s.q_dtype = tq::cuda::DType(q_dtype); s.out_dtype = tq::cuda::DType(out_dtype);
    s.scale = scale;
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
      o->head_block_bytes = l.head_block_bytes(); o->page_bytes = l.page_bytes();
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
