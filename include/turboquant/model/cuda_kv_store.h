// turboquant/model/cuda_kv_store.h — KvStores whose K/V live on the GPU.
//
// The compressed store: append runs the CUDA append kernel (codes byte-identical to the CPU
// encoder), attention the CUDA decode kernel (turboquant/cuda/decode.h). n new queries attend as a
// batch of n "sequences" sharing one page table with lengths length - n + 1 .. length, which is
// exactly causal attention among them. The fp32 store ("fp32" / "exact") keeps float rows and runs a
// plain exact attention kernel: the reference cache of a forward pass that runs on the GPU.
//
// Two ways in: the KvStore calls take host pointers (rows cross PCIe, for the CPU forward pass); the
// *_device calls take device pointers, so that the GPU forward pass (cuda_llama.h) keeps its
// activations on the device. Everything is queued on the default stream; the device calls do not
// synchronize, so an error a kernel flags (a norm beyond fp16, a bad length or page) is reported by
// the next check() (the host calls check before they return).
#pragma once
#include <memory>
#include <string>

#include "turboquant/model/kv_store.h"

namespace tq::model {

class CudaKvStore : public KvStore {
 public:
  using KvStore::KvStore;
  // k, v [n, Hkv, head_dim] fp32 on the device.
  virtual void append_device(int layer, const float* k, const float* v, int n) = 0;
  // q [n, Hq, head_dim] -> out [n, Hq, head_dim], fp32 on the device; causal as KvStore::attend.
  virtual void attend_device(int layer, const float* q, int n, float* out) const = 0;
  // Waits for the queued work and throws tq::Error when a kernel flagged an error since the last
  // check (the store's contents are then undefined: clear() it).
  virtual void check() const = 0;
};

// kv_codec "fp32" / "exact": float rows (capacity <= 8192 positions). Otherwise a codec with a CUDA
// kernel: fp16, tq2-4 and the tq(B+1)/tqB pairs, head_dim 64/128/256. Throws kUnsupported when the
// build has no CUDA, no device is present, or the codec / head_dim pair has no CUDA kernel.
// v_quads: V pages in token quads and the int8-PV decode kernel (cuda/decode.h DecodeShape::v_quads;
// tqB/tqB, B = 2..4, head_dim % 64 == 0).
std::unique_ptr<CudaKvStore> make_cuda_kv_store(const KvShape& s, const std::string& kv_codec, int capacity,
                                                bool v_quads = false);

}  // namespace tq::model
