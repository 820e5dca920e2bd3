// src/model/cuda_kv_store.cpp — the GPU KV stores (turboquant/model/cuda_kv_store.h).
#include "turboquant/model/cuda_kv_store.h"

#include "turboquant/error.h"

#if defined(TQ_HAVE_CUDA)
#include <algorithm>
#include <map>
#include <vector>

#include "model/cuda_util.h"
#include "model/llama_kernels.h"
#include "turboquant/cuda/append.h"
#include "turboquant/cuda/decode.h"

namespace tq::model {
namespace {

constexpr int kPageTokens = 64;  // the decode kernel's chunk

// The host-pointer KvStore calls of both stores: stage the rows on the device, run the device call,
// check at once.
class StagedStore : public CudaKvStore {
 public:
  using CudaKvStore::CudaKvStore;
  void append(int layer, const float* k, const float* v, int n) override {
    check_layer(layer);
    TQ_CHECK_ARG(n >= 0, "cuda kv store: n < 0");
    if (n == 0) return;
    const size_t bytes = size_t(n) * shape_.n_kv_head * shape_.head_dim * 4;
    hk_.upload(k, bytes);
    hv_.upload(v, bytes);
    append_device(layer, hk_.as<float>(), hv_.as<float>(), n);
    check();
  }
  void attend(int layer, const float* q, int n, float* out) const override {
    check_layer(layer);
    TQ_CHECK_ARG(n >= 1 && n <= length(layer), "cuda kv store: {} queries over {} positions", n, length(layer));
    const size_t bytes = size_t(n) * shape_.n_head * shape_.head_dim * 4;
    hq_.upload(q, bytes);
    ho_.resize(bytes);
    attend_device(layer, hq_.as<float>(), n, ho_.as<float>());
    TQ_CUDA_OK(cudaMemcpy(out, ho_.p, bytes, cudaMemcpyDeviceToHost));
    check();
  }

 private:
  Dev hk_, hv_;
  mutable Dev hq_, ho_;
};

// Compressed pages: CUDA append + decode.
class PagedStore final : public StagedStore {
 public:
  PagedStore(const KvShape& s, const std::string& kv_codec, int capacity, bool v_quads)
      : StagedStore(s), spec_(parse_kv_codec(kv_codec)), pages_((capacity + kPageTokens - 1) / kPageTokens), v_quads_(v_quads) {
    TQ_CHECK(cuda::device_available(), kUnsupported, "cuda kv store: no CUDA device");
    TQ_CHECK_ARG(capacity >= 1, "cuda kv store: capacity must be >= 1");
    kapp_ = std::make_unique<cuda::AppendPlan>(spec_.k, s.n_kv_head, s.head_dim, kPageTokens, pages_, cuda::DType::kF32);
    vapp_ = std::make_unique<cuda::AppendPlan>(spec_.v, s.n_kv_head, s.head_dim, kPageTokens, pages_, cuda::DType::kF32,
                                               v_quads);
    plan(1);  // fails now, not mid-forward, for a codec pair without a decode kernel
    layers_.resize(size_t(s.n_layer));
    for (auto& L : layers_) {
      L.k.resize(size_t(pages_) * kapp_->layout().page_bytes());
      L.v.resize(size_t(pages_) * vapp_->layout().page_bytes());
    }
  }

  void append_device(int layer, const float* k, const float* v, int n) override {
    check_layer(layer);
    TQ_CHECK_ARG(n >= 0, "cuda kv store: n < 0");
    Layer& L = layers_[size_t(layer)];
    TQ_CHECK(L.len + n <= pages_ * kPageTokens, kOutOfMemory, "cuda kv store: {} + {} positions exceed the capacity {}",
             L.len, n, pages_ * kPageTokens);
    if (n == 0) return;
    slots_.resize(size_t(n) * 4);
    TQ_CUDA_OK(cudak::iota(slots_.as<int32_t>(), n, L.len));  // page p holds positions [64p, 64p + 64)
    kapp_->run(k, slots_.as<int32_t>(), n, L.k.as<uint8_t>(), nullptr);
    vapp_->run(v, slots_.as<int32_t>(), n, L.v.as<uint8_t>(), nullptr);
    L.len += n;
  }

  void attend_device(int layer, const float* q, int n, float* out) const override {
    check_layer(layer);
    const Layer& L = layers_[size_t(layer)];
    TQ_CHECK_ARG(n >= 1 && n <= L.len, "cuda kv store: {} queries over {} positions", n, L.len);
    const Plan& P = plan(n);
    TQ_CUDA_OK(cudak::iota(P.lens.as<int32_t>(), n, L.len - n + 1));
    cuda::DecodeArgs a;
    a.q = q;
    a.k_pool = L.k.as<uint8_t>();
    a.v_pool = L.v.as<uint8_t>();
    a.page_table = P.table.as<int32_t>();
    a.seq_lens = P.lens.as<int32_t>();
    a.out = out;
    a.workspace = P.ws.p;
    P.plan->run(a);
    P.ran = true;
  }

  void check() const override {
    int fk = kapp_->read_error_flag(), fv = vapp_->read_error_flag(), fd = 0;  // synchronous reads
    for (const auto& [n, P] : plans_)
      if (P.ran) fd |= P.plan->read_error_flag(P.ws.p);
    TQ_CHECK_ARG(fk == 0 && fv == 0, "cuda kv store: append flagged {} / {} (a norm beyond fp16?)", fk, fv);
    TQ_CHECK(fd == 0, kInternal, "cuda kv store: decode flagged a bad length or page ({})", fd);
  }

  int length(int layer) const override {
    check_layer(layer);
    return layers_[size_t(layer)].len;
  }
  void clear() override {
    for (auto& L : layers_) L.len = 0;
  }
  size_t bytes_per_token() const override {
    const auto& kl = kapp_->layout();
    const auto& vl = vapp_->layout();
    return size_t(shape_.n_layer) * shape_.n_kv_head * (kl.codes_bytes + kl.scalar_bytes + vl.codes_bytes + vl.scalar_bytes);
  }
  std::string name() const override { return spec_.name() + (v_quads_ ? " (cuda, V quads)" : " (cuda)"); }

 private:
  struct Layer {
    Dev k, v;
    int len = 0;
  };
  // Per batch size n: the decode plan, its own workspace (zeroed by its first run), the page table
  // [n, pages] (every query reads pages 0, 1, ...: uploaded once) and the lengths [n].
  struct Plan {
    std::unique_ptr<cuda::DecodePlan> plan;
    Dev ws, table, lens;
    mutable bool ran = false;  // check() reads the flags of the plans that ran
  };
  const Plan& plan(int n) const {
    auto it = plans_.find(n);
    if (it != plans_.end()) return it->second;
    cuda::DecodeShape d;
    d.batch = n;
    d.heads_q = shape_.n_head;
    d.heads_kv = shape_.n_kv_head;
    d.head_dim = shape_.head_dim;
    d.page_tokens = kPageTokens;
    d.max_pages_per_seq = pages_;
    d.max_seq_len = pages_ * kPageTokens;
    d.num_pages = pages_;
    d.q_dtype = d.out_dtype = cuda::DType::kF32;
    d.scale = shape_.scale;
    d.v_quads = v_quads_;
    Plan P;
    P.plan = std::make_unique<cuda::DecodePlan>(d, spec_.k, spec_.v);
    TQ_CHECK(P.plan->k_layout().codes_bytes == kapp_->layout().codes_bytes &&
                 P.plan->v_layout().codes_bytes == vapp_->layout().codes_bytes &&
                 P.plan->v_layout().quad_bits == vapp_->layout().quad_bits,
             kInternal, "cuda kv store: append and decode layouts differ");
    P.ws.resize(std::max<size_t>(P.plan->workspace_bytes(), 256));
    // Zeroed now, not only by the plan's first run: check() reads the error flag of every plan, and
    // a plan made but never run (the n = 1 plan of a perplexity run) would otherwise report whatever
    // the recycled allocation held (seen on the H200 after the fp16-weight staging buffers).
    TQ_CUDA_OK(cudaMemset(P.ws.p, 0, P.ws.n));
    std::vector<int32_t> table(size_t(n) * pages_);
    for (size_t i = 0; i < table.size(); ++i) table[i] = int32_t(i % size_t(pages_));
    P.table.upload(table.data(), table.size() * 4);
    P.lens.resize(size_t(n) * 4);
    return plans_.emplace(n, std::move(P)).first->second;
  }

  KvCodecSpec spec_;
  int pages_;
  bool v_quads_;
  std::unique_ptr<cuda::AppendPlan> kapp_, vapp_;
  std::vector<Layer> layers_;
  mutable std::map<int, Plan> plans_;
  Dev slots_;
};

// fp32 rows [capacity, Hkv, hd] per layer, exact attention (llama_kernels.h).
class ExactStore final : public StagedStore {
 public:
  ExactStore(const KvShape& s, int capacity) : StagedStore(s), cap_(capacity) {
    TQ_CHECK(cuda::device_available(), kUnsupported, "cuda kv store: no CUDA device");
    TQ_CHECK(capacity >= 1 && capacity <= cudak::kExactMaxLen, kUnsupported,
             "cuda kv store fp32: capacity {} (the exact attention kernel takes 1..{})", capacity, cudak::kExactMaxLen);
    layers_.resize(size_t(s.n_layer));
    for (auto& L : layers_) {
      L.k.resize(size_t(cap_) * row_bytes());
      L.v.resize(size_t(cap_) * row_bytes());
    }
  }
  void append_device(int layer, const float* k, const float* v, int n) override {
    check_layer(layer);
    TQ_CHECK_ARG(n >= 0, "cuda kv store: n < 0");
    Layer& L = layers_[size_t(layer)];
    TQ_CHECK(L.len + n <= cap_, kOutOfMemory, "cuda kv store: {} + {} positions exceed the capacity {}", L.len, n, cap_);
    if (n == 0) return;
    const size_t off = size_t(L.len) * row_bytes(), bytes = size_t(n) * row_bytes();
    TQ_CUDA_OK(cudaMemcpyAsync(L.k.as<char>() + off, k, bytes, cudaMemcpyDeviceToDevice, nullptr));
    TQ_CUDA_OK(cudaMemcpyAsync(L.v.as<char>() + off, v, bytes, cudaMemcpyDeviceToDevice, nullptr));
    L.len += n;
  }
  void attend_device(int layer, const float* q, int n, float* out) const override {
    check_layer(layer);
    const Layer& L = layers_[size_t(layer)];
    TQ_CHECK_ARG(n >= 1 && n <= L.len, "cuda kv store: {} queries over {} positions", n, L.len);
    TQ_CUDA_OK(cudak::attention_exact(q, L.k.as<float>(), L.v.as<float>(), out, n, L.len, shape_.n_head,
                                      shape_.n_kv_head, shape_.head_dim, shape_.scale));
  }
  void check() const override {
    TQ_CUDA_OK(cudaDeviceSynchronize());
    TQ_CUDA_OK(cudaGetLastError());
  }
  int length(int layer) const override {
    check_layer(layer);
    return layers_[size_t(layer)].len;
  }
  void clear() override {
    for (auto& L : layers_) L.len = 0;
  }
  size_t bytes_per_token() const override { return size_t(shape_.n_layer) * row_bytes() * 2; }
  std::string name() const override { return "fp32 (exact, cuda)"; }

 private:
  size_t row_bytes() const { return size_t(shape_.n_kv_head) * shape_.head_dim * 4; }
  struct Layer {
    Dev k, v;
    int len = 0;
  };
  int cap_;
  std::vector<Layer> layers_;
};

}  // namespace

std::unique_ptr<CudaKvStore> make_cuda_kv_store(const KvShape& s, const std::string& kv_codec, int capacity, bool v_quads) {
  s.validate();
  if (kv_codec == "fp32" || kv_codec == "exact") {
    TQ_CHECK_ARG(!v_quads, "cuda kv store fp32: no V quads (float rows)");
    return std::make_unique<ExactStore>(s, capacity);
  }
  return std::make_unique<PagedStore>(s, kv_codec, capacity, v_quads);
}

}  // namespace tq::model

#else  // no CUDA in this build

namespace tq::model {
std::unique_ptr<CudaKvStore> make_cuda_kv_store(const KvShape&, const std::string&, int, bool) {
  TQ_FAIL(kUnsupported, "cuda kv store: this build has no CUDA (configure with -DTQ_ENABLE_CUDA=ON)");
}
}  // namespace tq::model

#endif
