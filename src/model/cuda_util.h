// src/model/cuda_util.h — what the model's CUDA host code shares (compiled by g++ in CUDA builds only):
// the check that turns a CUDA error into a tq::Error, and an owning device buffer.
#pragma once
#if defined(TQ_HAVE_CUDA)
#include <cuda_runtime_api.h>

#include <cstddef>

#include "turboquant/error.h"

// Throws tq::Error(kInternal) naming the call and CUDA's message.
#define TQ_CUDA_OK(expr)                                                                                \
  do {                                                                                                  \
    const cudaError_t e_ = cudaError_t(expr);                                                           \
    TQ_CHECK(e_ == cudaSuccess, kInternal, "cuda: {} failed: {}", #expr, cudaGetErrorString(e_));      \
  } while (0)

namespace tq::model {

// Device buffer of bytes, freed with the owner. resize() only grows and does not keep the contents;
// cudaFree synchronizes, so a buffer still read by queued kernels is never freed under them.
struct Dev {
  void* p = nullptr;
  size_t n = 0;
  Dev() = default;
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  Dev(Dev&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr, o.n = 0; }
  Dev& operator=(Dev&& o) noexcept {
    if (this != &o) {
      if (p) cudaFree(p);
      p = o.p, n = o.n;
      o.p = nullptr, o.n = 0;
    }
    return *this;
  }
  void resize(size_t bytes) {
    if (bytes <= n) return;
    if (p) cudaFree(p);
    p = nullptr;
    n = 0;
    TQ_CUDA_OK(cudaMalloc(&p, bytes));
    n = bytes;
  }
  // A buffer holding a copy of host memory (empty host data: no buffer, p stays null).
  void upload(const void* host, size_t bytes) {
    if (bytes == 0) return;
    resize(bytes);
    TQ_CUDA_OK(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice));
  }
  ~Dev() {
    if (p) cudaFree(p);
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

}  // namespace tq::model
#endif
