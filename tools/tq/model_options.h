// tools/tq/model_options.h — the KV-store options shared by `tq perplexity` and `tq generate`.
#pragma once
#include <CLI/CLI.hpp>

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
}

}  // namespace tq::cli
