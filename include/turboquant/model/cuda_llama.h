// turboquant/model/cuda_llama.h — the llama forward pass (llama.h) on a CUDA GPU.
//
// The weights of a loaded LlamaModel are uploaded once; a forward call uploads the token ids,
// keeps every activation on the device and copies only the logits back. Matmuls: cuBLAS
// (cublasGemmEx, CUBLAS_COMPUTE_32F with the default math mode: no TF32). With fp32 weights (the
// default) the result follows the CPU forward to float round-off; with fp16 / bf16 weights each
// matmul's input is rounded to the same type and the sums stay fp32 (half the weight memory and
// bandwidth, tensor cores; the logits move by the 16-bit rounding). RMSNorm, RoPE, SwiGLU, biases and the
// embedding gather: the kernels of src/model/llama_kernels.cu. Attention: a GPU KV store
// (cuda_kv_store.h) through its device-pointer calls: the project's CUDA append + decode kernels
// for a compressed cache, an exact kernel for fp32. There is no CPU fallback: what the GPU cannot
// run fails when the object or the store is constructed.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "turboquant/model/cuda_kv_store.h"
#include "turboquant/model/llama.h"

namespace tq::model {

class CudaLlama {
 public:
  // weights: "fp32", "fp16" or "bf16" (the matrices; norms and biases stay fp32), else
  // kInvalidArgument. Throws kUnsupported when the build has no CUDA, no device is present, or
  // head_dim is not one the CUDA decode kernels serve (64, 128, 256). `model` must outlive this.
  explicit CudaLlama(const LlamaModel& model, const std::string& weights = "fp32");
  ~CudaLlama();
  CudaLlama(const CudaLlama&) = delete;
  CudaLlama& operator=(const CudaLlama&) = delete;

  const LlamaModel& model() const { return model_; }
  const std::string& weights() const { return weights_; }
  // A GPU store of the model's shape: make_cuda_kv_store(model.kv_shape(), kv_codec, capacity, v_quads).
  std::unique_ptr<CudaKvStore> make_kv_store(const std::string& kv_codec, int capacity, bool v_quads = false) const;
  // As LlamaModel::forward: tokens [n] (host) at positions kv.length(0) .. +n-1; logits (host)
  // [n, vocab] when all_logits, else [vocab] for the last token. kv must be a CudaKvStore of the
  // model's shape (kInvalidArgument otherwise); errors its kernels flag are thrown before return.
  void forward(const int32_t* tokens, int n, KvStore& kv, float* logits, bool all_logits = true) const;
  size_t weight_bytes() const;  // device memory taken by the weights

  struct Impl;

 private:
  const LlamaModel& model_;
  std::string weights_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tq::model
