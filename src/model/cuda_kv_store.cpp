// src/model/cuda_kv_store.cpp — CudaKvStore (turboquant/model/cuda_kv_store.h).
#include "turboquant/model/cuda_kv_store.h"

#include "turboquant/error.h"

#if defined(TQ_HAVE_CUDA)
#include <cuda_runtime_api.h>

#include <map>
#include <vector>

#include "turboquant/cuda/append.h"
#include "turboquant/cuda/decode.h"

namespace tq::model {
namespace {

#define TQ_CUDA_OK(expr)                                                                                     \
  do {                                                                                                       \
    const cudaError_t e_ = (expr);                                                                           \
    TQ_CHECK(e_ == cudaSuccess, kInternal, "cuda kv store: {} failed: {}", #expr, cudaGetErrorString(e_)); \
  } while (0)

// Device buffer of bytes, freed with the owner.
struct Dev {
  void* p = nullptr;
  size_t n = 0;
  Dev() = default;
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  Dev(Dev&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr, o.n = 0; }
  void resize(size_t bytes) {
    if (bytes <= n) return;
    if (p) cudaFree(p);
    p = nullptr;
    n = 0;
    TQ_CUDA_OK(cudaMalloc(&p, bytes));
    n = bytes;
  }
  ~Dev() {
    if (p) cudaFree(p);
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

constexpr int kPageTokens = 64;  // the decode kernel's chunk

class CudaKvStore final : public KvStore {
 public:
  CudaKvStore(const KvShape& s, const std::string& kv_codec, int capacity)
      : KvStore(s), spec_(parse_kv_codec(kv_codec)), pages_((capacity + kPageTokens - 1) / kPageTokens) {
    TQ_CHECK(cuda::device_available(), kUnsupported, "cuda kv store: no CUDA device");
    TQ_CHECK_ARG(capacity >= 1, "cuda kv store: capacity must be >= 1");
    kapp_ = std::make_unique<cuda::AppendPlan>(spec_.k, s.n_kv_head, s.head_dim, kPageTokens, pages_, cuda::DType::kF32);
    vapp_ = std::make_unique<cuda::AppendPlan>(spec_.v, s.n_kv_head, s.head_dim, kPageTokens, pages_, cuda::DType::kF32);
    plan(1);  // fails now, not mid-forward, for a codec pair without a decode kernel
    layers_.resize(size_t(s.n_layer));
    for (auto& L : layers_) {
      L.k.resize(size_t(pages_) * kapp_->layout().page_bytes());
      L.v.resize(size_t(pages_) * vapp_->layout().page_bytes());
    }
  }

  void append(int layer, const float* k, const float* v, int n) override {
    check_layer(layer);
    TQ_CHECK_ARG(n >= 0, "cuda kv store: n < 0");
    Layer& L = layers_[size_t(layer)];
    TQ_CHECK(L.len + n <= pages_ * kPageTokens, kOutOfMemory, "cuda kv store: {} + {} positions exceed the capacity {}",
             L.len, n, pages_ * kPageTokens);
    if (n == 0) return;
    const size_t row = size_t(shape_.n_kv_head) * shape_.head_dim;
    x_.resize(size_t(n) * row * 4);
    slots_.resize(size_t(n) * 4);
    std::vector<int32_t> slots(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) slots[size_t(i)] = L.len + i;  // page p holds positions [64p, 64p + 64)
    TQ_CUDA_OK(cudaMemcpy(slots_.p, slots.data(), size_t(n) * 4, cudaMemcpyHostToDevice));
    TQ_CUDA_OK(cudaMemcpy(x_.p, k, size_t(n) * row * 4, cudaMemcpyHostToDevice));
    kapp_->run(x_.p, slots_.as<int32_t>(), n, L.k.as<uint8_t>(), nullptr);
    TQ_CUDA_OK(cudaMemcpy(x_.p, v, size_t(n) * row * 4, cudaMemcpyHostToDevice));  // stream-ordered after K
    vapp_->run(x_.p, slots_.as<int32_t>(), n, L.v.as<uint8_t>(), nullptr);
    const int fk = kapp_->read_error_flag(), fv = vapp_->read_error_flag();
    TQ_CHECK_ARG(fk == 0 && fv == 0, "cuda kv store: append flagged {} / {} (a norm beyond fp16?)", fk, fv);
    L.len += n;
  }

  void attend(int layer, const float* q, int n, float* out) const override {
    check_layer(layer);
    const Layer& L = layers_[size_t(layer)];
    TQ_CHECK_ARG(n >= 1 && n <= L.len, "cuda kv store: {} queries over {} positions", n, L.len);
    const cuda::DecodePlan& P = plan(n);
    const size_t row = size_t(shape_.n_head) * shape_.head_dim;
    const int maxp = pages_;
    std::vector<int32_t> table(static_cast<size_t>(n) * maxp), lens(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      lens[size_t(i)] = L.len - n + 1 + i;
      for (int p = 0; p < maxp; ++p) table[size_t(i) * maxp + p] = p;
    }
    q_.resize(size_t(n) * row * 4);
    out_.resize(size_t(n) * row * 4);
    table_.resize(table.size() * 4);
    lens_.resize(lens.size() * 4);
    ws_.resize(std::max<size_t>(P.workspace_bytes(), 256));
    TQ_CUDA_OK(cudaMemcpy(q_.p, q, size_t(n) * row * 4, cudaMemcpyHostToDevice));
    TQ_CUDA_OK(cudaMemcpy(table_.p, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
    TQ_CUDA_OK(cudaMemcpy(lens_.p, lens.data(), lens.size() * 4, cudaMemcpyHostToDevice));
    cuda::DecodeArgs a;
    a.q = q_.p;
    a.k_pool = L.k.as<uint8_t>();
    a.v_pool = L.v.as<uint8_t>();
    a.page_table = table_.as<int32_t>();
    a.seq_lens = lens_.as<int32_t>();
    a.out = out_.p;
    a.workspace = ws_.p;
    P.run(a);
    TQ_CUDA_OK(cudaMemcpy(out, out_.p, size_t(n) * row * 4, cudaMemcpyDeviceToHost));
    TQ_CHECK(P.read_error_flag(ws_.p) == 0, kInternal, "cuda kv store: decode flagged a bad length or page");
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
  std::string name() const override { return spec_.name() + " (cuda)"; }

 private:
  struct Layer {
    Dev k, v;
    int len = 0;
  };
  // Decode plan for a batch of n queries (one per distinct n; a forward pass uses 1 and the window).
  const cuda::DecodePlan& plan(int n) const {
    auto it = plans_.find(n);
    if (it != plans_.end()) return *it->second;
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
    auto p = std::make_unique<cuda::DecodePlan>(d, spec_.k, spec_.v);
    if (n == 1) {
      TQ_CHECK(p->k_layout().codes_bytes == kapp_->layout().codes_bytes &&
                   p->v_layout().codes_bytes == vapp_->layout().codes_bytes,
               kInternal, "cuda kv store: append and decode layouts differ");
    }
    return *(plans_[n] = std::move(p));
  }

  KvCodecSpec spec_;
  int pages_;
  std::unique_ptr<cuda::AppendPlan> kapp_, vapp_;
  std::vector<Layer> layers_;
  mutable std::map<int, std::unique_ptr<cuda::DecodePlan>> plans_;
  mutable Dev q_, out_, table_, lens_, ws_;
  Dev x_, slots_;
};

}  // namespace

std::unique_ptr<KvStore> make_cuda_kv_store(const KvShape& s, const std::string& kv_codec, int capacity) {
  return std::make_unique<CudaKvStore>(s, kv_codec, capacity);
}

}  // namespace tq::model

#else  // no CUDA in this build

namespace tq::model {
std::unique_ptr<KvStore> make_cuda_kv_store(const KvShape&, const std::string&, int) {
  TQ_FAIL(kUnsupported, "cuda kv store: this build has no CUDA (configure with -DTQ_ENABLE_CUDA=ON)");
}
}  // namespace tq::model

#endif
