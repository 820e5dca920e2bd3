// tools/tq/model_options.h — the KV-store options shared by `tq perplexity` and `tq generate`.
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "turboquant/model/kv_store.h"

namespace tq::cli {

inline void add_kv_store_options(CLI::App& app, tq::model::KvStoreOptions& s) {
  app.add_option("--kv-store", s.kind,
                 "cache: the paged KvCache; codec: rows encoded with tq::Codec, decoded to attend (reference "
                 "only); cuda: pages on the GPU, CUDA append + decode kernels; auto: cache, or codec for --attn "
                 "reference")
      ->check(CLI::IsMember({"auto", "codec", "cache", "cuda"}));
  app.add_option("--attn", s.attn, "fused: tq::attend on the codes; reference: decode every row, double sums")
      ->check(CLI::IsMember({"fused", "reference"}));
  app.add_option("--edge-layers", s.edge_layers, "cache: first/last N layers use --edge-codec")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--edge-codec", s.edge_codec, "cache: codec of the edge layers");
  app.add_option("--window", s.window, "cache: most recent tokens kept in float32")->check(CLI::NonNegativeNumber);
  app.add_flag("--v-quads", s.v_quads,
               "cache, cuda: V codes in 16-token blocks of token quads (tqB V; on CUDA the int8-PV decode kernel "
               "for tqB/tqB, B = 2..4; on the CPU ~1.25x the attention time of rows: docs/CUDA.md)");
}

// --device: where the forward pass runs. cuda: CudaLlama (cuBLAS matmuls, activations on the GPU)
// with the KV caches on the GPU (implies --kv-store cuda); a build or machine without CUDA fails
// with an error, never falls back to the CPU. --weights: the matrices' type on the GPU.
inline void add_device_options(CLI::App& app, std::string& device, std::string& weights) {
  app.add_option("--device", device,
                 "cpu: the forward pass on the CPU; cuda: on the GPU (cuBLAS, the KV caches on the GPU too)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--weights", weights,
                 "device cuda: weight matrices in fp32 (default), fp16 or bf16 (fp32 accumulation)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
}

}  // namespace tq::cli
