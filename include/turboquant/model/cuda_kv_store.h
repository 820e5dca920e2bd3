// turboquant/model/cuda_kv_store.h — a KvStore whose K/V pages live on the GPU: append runs the CUDA
// append kernel (codes byte-identical to the CPU encoder), attention runs the CUDA decode kernel
// (turboquant/cuda/decode.h). The rest of the forward pass stays on the CPU; rows cross PCIe.
// n new queries attend as a batch of n "sequences" sharing one page table with lengths
// length - n + 1 .. length, which is exactly causal attention among them.
#pragma once
#include <memory>
#include <string>

#include "turboquant/model/kv_store.h"

namespace tq::model {

// Throws kUnsupported when the build has no CUDA, no device is present, or the codec / head_dim
// pair has no CUDA kernel (fp16, tq2-4 and the tq(B+1)/tqB pairs; head_dim 64/128/256).
std::unique_ptr<KvStore> make_cuda_kv_store(const KvShape& s, const std::string& kv_codec, int capacity);

}  // namespace tq::model
