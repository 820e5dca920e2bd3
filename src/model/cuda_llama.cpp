// src/model/cuda_llama.cpp — the llama forward pass on CUDA (turboquant/model/cuda_llama.h). The
// structure is LlamaModel::forward's (src/model/llama.cpp), step for step, on device buffers.
#include "turboquant/model/cuda_llama.h"

#include "turboquant/error.h"

#if defined(TQ_HAVE_CUDA)
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/cuda_util.h"
#include "model/llama_kernels.h"
#include "turboquant/cuda/decode.h"

#define TQ_CUBLAS_OK(expr)                                                                                      \
  do {                                                                                                          \
    const cublasStatus_t s_ = (expr);                                                                           \
    TQ_CHECK(s_ == CUBLAS_STATUS_SUCCESS, kInternal, "cuda forward: {} failed: {}", #expr, cublasGetStatusString(s_)); \
  } while (0)

namespace tq::model {

struct CudaLlama::Impl {
  struct Layer {
    Dev attn_norm, wq, wk, wv, wo, bq, bk, bv, bo, ffn_norm, w_gate, w_up, w_down;
  };
  cublasHandle_t blas = nullptr;
  bool half = false, bf16 = false;  // matrices (and the activations fed to them) in fp16 / bf16
  Dev tok_embd, out_norm, output;   // tok_embd fp32 (the gather); output in the matrices' type
  const Dev* out_mat = nullptr;     // output, or tok_embd when tied and fp32
  std::vector<Layer> layers;
  size_t weight_bytes = 0;
  std::vector<float> freq_factors;  // rope_freqs.weight, empty when absent
  // Activations, grown to the largest n seen: x [n, dim] residual stream; h [n, dim] normed;
  // q / att [n, Hq*hd]; k / v [n, Hkv*hd]; g / u [n, ffn]; logits [n, vocab]; ids [n];
  // x16 [n, max(dim, Hq*hd, ffn)] a matmul's input in 16 bits.
  mutable Dev x, h, q, att, k, v, g, u, logits, ids, x16;
  mutable Dev rope_cs;          // [rope_positions, n_rot / 2, 2] (cos, sin)
  mutable int rope_positions = 0;

  ~Impl() {
    if (blas) cublasDestroy(blas);
  }
  void put(Dev& d, const std::vector<float>& w) {
    d.upload(w.data(), w.size() * sizeof(float));
    weight_bytes += w.size() * sizeof(float);
  }
  // A weight matrix in the matrices' type (rounded on the device, from an fp32 staging copy).
  void put_matrix(Dev& d, const std::vector<float>& w) {
    if (!half) return put(d, w);
    Dev staging;
    staging.upload(w.data(), w.size() * sizeof(float));
    d.resize(w.size() * 2);
    TQ_CUDA_OK(cudak::to_16bit(staging.as<float>(), d.p, int64_t(w.size()), bf16));
    TQ_CUDA_OK(cudaDeviceSynchronize());  // before staging is freed
    weight_bytes += w.size() * 2;
  }
  // y [T, out] = x [T, in] · W^T (+ y when accumulate), W [out, in] row-major. cuBLAS is column-major:
  // W is the column-major [in, out] matrix, so y^T [out, T] = op_T(W) [out, in] · x^T [in, T].
  // With 16-bit matrices, x is rounded to the same type first; the sums stay fp32 (COMPUTE_32F).
  void gemm(const float* xin, const Dev& W, float* y, int T, int in, int out, bool accumulate) const {
    const float one = 1.0f, zero = 0.0f;
    const void* b = xin;
    cudaDataType_t t = CUDA_R_32F;
    if (half) {
      TQ_CUDA_OK(cudak::to_16bit(xin, x16.p, int64_t(T) * in, bf16));
      b = x16.p;
      t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    }
    TQ_CUBLAS_OK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, out, T, in, &one, W.p, t, in, b, t, in,
                              accumulate ? &one : &zero, y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  // The (cos, sin) table for positions [0, need), from the same double angles as ops.cpp's rope.
  void ensure_rope(const LlamaConfig& c, int need) const {
    if (need <= rope_positions || c.n_rot == 0) return;
    const int half = c.n_rot / 2, P = std::max(need, 2 * rope_positions);
    std::vector<double> inv(static_cast<size_t>(half));
    for (int i = 0; i < half; ++i) {
      inv[size_t(i)] = c.rope_freq_scale * std::pow(c.rope_theta, -2.0 * i / c.n_rot);
      if (!freq_factors.empty()) inv[size_t(i)] /= double(freq_factors[size_t(i)]);
    }
    std::vector<float> cs(size_t(P) * half * 2);
    for (int p = 0; p < P; ++p)
      for (int i = 0; i < half; ++i) {
        const double a = double(p) * inv[size_t(i)];
        cs[(size_t(p) * half + i) * 2] = float(std::cos(a));
        cs[(size_t(p) * half + i) * 2 + 1] = float(std::sin(a));
      }
    rope_cs.upload(cs.data(), cs.size() * sizeof(float));
    rope_positions = P;
  }
};

CudaLlama::CudaLlama(const LlamaModel& model, const std::string& weights)
    : model_(model), weights_(weights), impl_(std::make_unique<Impl>()) {
  const LlamaConfig& c = model.config();
  TQ_CHECK_ARG(weights == "fp32" || weights == "fp16" || weights == "bf16",
               "cuda forward: weights '{}' (fp32, fp16 or bf16)", weights);
  TQ_CHECK(cuda::device_available(), kUnsupported, "cuda forward: no CUDA device");
  TQ_CHECK(c.head_dim == 64 || c.head_dim == 128 || c.head_dim == 256, kUnsupported,
           "cuda forward: head_dim {}; the CUDA attention kernels serve 64, 128 and 256 (run this model on the CPU)",
           c.head_dim);
  Impl& I = *impl_;
  I.half = weights != "fp32";
  I.bf16 = weights == "bf16";
  TQ_CUBLAS_OK(cublasCreate(&I.blas));
  TQ_CUBLAS_OK(cublasSetMathMode(I.blas, CUBLAS_DEFAULT_MATH));  // no TF32: fp32 products as on the CPU
  TQ_CUBLAS_OK(cublasSetStream(I.blas, nullptr));                 // the default stream, as the KV stores
  I.put(I.tok_embd, model.tok_embd_);
  I.put(I.out_norm, model.out_norm_);
  if (!model.output_.empty()) I.put_matrix(I.output, model.output_);
  else if (I.half) I.put_matrix(I.output, model.tok_embd_);  // tied: a 16-bit copy for the matmul
  I.out_mat = I.output.p ? &I.output : &I.tok_embd;
  I.freq_factors = model.rope_freqs_;
  I.layers.resize(model.layers_.size());
  for (size_t l = 0; l < model.layers_.size(); ++l) {
    const auto& L = model.layers_[l];
    auto& D = I.layers[l];
    I.put(D.attn_norm, L.attn_norm);
    I.put_matrix(D.wq, L.wq);
    I.put_matrix(D.wk, L.wk);
    I.put_matrix(D.wv, L.wv);
    I.put_matrix(D.wo, L.wo);
    I.put(D.bq, L.bq);
    I.put(D.bk, L.bk);
    I.put(D.bv, L.bv);
    I.put(D.bo, L.bo);
    I.put(D.ffn_norm, L.ffn_norm);
    I.put_matrix(D.w_gate, L.w_gate);
    I.put_matrix(D.w_up, L.w_up);
    I.put_matrix(D.w_down, L.w_down);
  }
}

CudaLlama::~CudaLlama() = default;

size_t CudaLlama::weight_bytes() const { return impl_->weight_bytes; }

std::unique_ptr<CudaKvStore> CudaLlama::make_kv_store(const std::string& kv_codec, int capacity, bool v_quads) const {
  return make_cuda_kv_store(model_.kv_shape(), kv_codec, capacity, v_quads);
}

void CudaLlama::forward(const int32_t* tokens, int n, KvStore& kv_store, float* logits, bool all_logits) const {
  const LlamaConfig& c = model_.config();
  const Impl& I = *impl_;
  auto* kvp = dynamic_cast<CudaKvStore*>(&kv_store);
  TQ_CHECK_ARG(kvp, "cuda forward: the KV store '{}' is not on the GPU (make it with make_cuda_kv_store)",
               kv_store.name());
  CudaKvStore& kv = *kvp;
  const KvShape ks = kv.shape(), want = model_.kv_shape();
  TQ_CHECK_ARG(ks.n_layer == want.n_layer && ks.n_head == want.n_head && ks.n_kv_head == want.n_kv_head &&
                   ks.head_dim == want.head_dim,
               "cuda forward: the KV store's shape does not match the model");
  TQ_CHECK_ARG(n > 0 && n <= (1 << 20), "cuda forward: {} tokens", n);
  for (int t = 0; t < n; ++t)
    TQ_CHECK(tokens[t] >= 0 && tokens[t] < c.n_vocab, kOutOfRange, "cuda forward: token id {} outside [0, {})",
             tokens[t], c.n_vocab);
  const int pos0 = kv.length(0);
  const int qw = c.n_head * c.head_dim, kw = c.n_kv_head * c.head_dim;
  const size_t N = size_t(n), F = sizeof(float);
  I.x.resize(N * c.dim * F);
  I.h.resize(N * c.dim * F);
  I.q.resize(N * qw * F);
  I.att.resize(N * qw * F);
  I.k.resize(N * kw * F);
  I.v.resize(N * kw * F);
  I.g.resize(N * c.ffn * F);
  I.u.resize(N * c.ffn * F);
  I.logits.resize(N * c.n_vocab * F);
  if (I.half) I.x16.resize(N * size_t(std::max({c.dim, qw, c.ffn})) * 2);
  I.ids.upload(tokens, N * sizeof(int32_t));
  I.ensure_rope(c, pos0 + n);
  float *x = I.x.as<float>(), *h = I.h.as<float>(), *q = I.q.as<float>(), *att = I.att.as<float>(),
        *k = I.k.as<float>(), *v = I.v.as<float>(), *g = I.g.as<float>(), *u = I.u.as<float>();
  const float* cs = I.rope_cs.as<float>();

  TQ_CUDA_OK(cudak::embed(I.tok_embd.as<float>(), I.ids.as<int32_t>(), x, n, c.dim));
  for (int l = 0; l < c.n_layer; ++l) {
    const Impl::Layer& L = I.layers[size_t(l)];
    TQ_CUDA_OK(cudak::rmsnorm(x, L.attn_norm.as<float>(), c.eps, h, n, c.dim));
    I.gemm(h, L.wq, q, n, c.dim, qw, false);
    I.gemm(h, L.wk, k, n, c.dim, kw, false);
    I.gemm(h, L.wv, v, n, c.dim, kw, false);
    if (L.bq.p) TQ_CUDA_OK(cudak::add_bias(q, L.bq.as<float>(), n, qw));
    if (L.bk.p) TQ_CUDA_OK(cudak::add_bias(k, L.bk.as<float>(), n, kw));
    if (L.bv.p) TQ_CUDA_OK(cudak::add_bias(v, L.bv.as<float>(), n, kw));
    TQ_CUDA_OK(cudak::rope(q, cs, n, c.n_head, c.head_dim, c.n_rot, pos0));
    TQ_CUDA_OK(cudak::rope(k, cs, n, c.n_kv_head, c.head_dim, c.n_rot, pos0));
    kv.append_device(l, k, v, n);
    kv.attend_device(l, q, n, att);
    I.gemm(att, L.wo, x, n, qw, c.dim, true);  // x += att Wo^T
    if (L.bo.p) TQ_CUDA_OK(cudak::add_bias(x, L.bo.as<float>(), n, c.dim));

    TQ_CUDA_OK(cudak::rmsnorm(x, L.ffn_norm.as<float>(), c.eps, h, n, c.dim));
    I.gemm(h, L.w_gate, g, n, c.dim, c.ffn, false);
    I.gemm(h, L.w_up, u, n, c.dim, c.ffn, false);
    TQ_CUDA_OK(cudak::swiglu(g, u, int64_t(N) * c.ffn));
    I.gemm(g, L.w_down, x, n, c.ffn, c.dim, true);  // x += (silu(g) * u) Wd^T
  }
  const int first = all_logits ? 0 : n - 1, rows = n - first;
  TQ_CUDA_OK(cudak::rmsnorm(x + size_t(first) * c.dim, I.out_norm.as<float>(), c.eps, h, rows, c.dim));
  I.gemm(h, *I.out_mat, I.logits.as<float>(), rows, c.dim, c.n_vocab, false);
  TQ_CUDA_OK(cudaMemcpy(logits, I.logits.p, size_t(rows) * c.n_vocab * F, cudaMemcpyDeviceToHost));
  kv.check();
  TQ_CUDA_OK(cudaGetLastError());
}

}  // namespace tq::model

#else  // no CUDA in this build

namespace tq::model {
struct CudaLlama::Impl {};
CudaLlama::CudaLlama(const LlamaModel& model, const std::string& weights) : model_(model), weights_(weights) {
  TQ_FAIL(kUnsupported, "cuda forward: this build has no CUDA (configure with -DTQ_ENABLE_CUDA=ON)");
}
CudaLlama::~CudaLlama() = default;
size_t CudaLlama::weight_bytes() const { return 0; }
std::unique_ptr<CudaKvStore> CudaLlama::make_kv_store(const std::string& kv_codec, int capacity, bool v_quads) const {
  return make_cuda_kv_store(model_.kv_shape(), kv_codec, capacity, v_quads);
}
void CudaLlama::forward(const int32_t*, int, KvStore&, float*, bool) const {
  TQ_FAIL(kUnsupported, "cuda forward: this build has no CUDA");
}
}  // namespace tq::model

#endif
