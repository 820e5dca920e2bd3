// turboquant/eval.h — codec quality evaluation behind `tq eval`: reconstruction, inner-product and
// attention errors of every codec on the same data, with every byte of overhead counted.
//
// Two kinds of data:
//   vectors   X [n, d]: reconstruction (relative MSE), inner products with random directions and
//             with real queries, and for TurboQuant-mse the Lloyd-Max optimum of Beta(d) to compare.
//   attention Q [B, Hq, D] (one query per sequence, at the last position) or [B, Hq, Tq, D]
//             (causal: query i sits at position T - Tq + i and sees keys 0..T-Tq+i), K and V
//             [B, Hkv, T, D], Hq a multiple of Hkv (GQA: query head h reads KV head h / (Hq/Hkv)).
//             K is encoded with the key codec for the scores, V with the value codec for the
//             outputs; the reference is exact float64 attention on the float32 inputs.
//
// KIVI (codec "kivi2") is evaluated as the paper defines it, which a per-vector codec cannot be:
// keys per channel over groups of G tokens, values per token (the kivi2 Codec), and the R most
// recent tokens (relative to each query) kept in fp16. Only completed groups outside the window are
// quantized: for a query at position p, tokens [0, n_q(p)) are quantized with
// n_q(p) = floor(max(p + 1 - R, 0) / G) * G, the rest are fp16. Its bits per value are those of the
// cache holding all T tokens. Every other codec quantizes every token (no window).
//
// Centering (AttnOptions) applies to every codec of the side it is enabled for.
//
// Codecs that need calibration (fractional rates, "tq2.5") pick their outlier channels per KV head
// from that head's own keys (values) over all sequences — an oracle calibration, stated as such.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "turboquant/codec.h"

namespace tq::eval {

// One entry of --codecs: a key codec and a value codec (equal for a single codec string).
struct CodecChoice {
  std::string label;  // canonical: "q4r", "k=tq4,v=tq3"
  CodecSpec k, v;
};
// "fp16,q8r,k=tq4,v=tq3,k4v3" -> 4 choices ("k=A,v=B" pairs span two comma-separated items).
// Throws tq::Error naming the bad item.
std::vector<CodecChoice> parse_codec_list(std::string_view list);

struct AttnOptions {
  int group = 32;   // KIVI G: tokens per per-channel key group
  int window = 32;  // KIVI R: most recent tokens kept in fp16
  // Mean subtraction ("centering"), exact for attention: q·(k - μ) = q·k - q·μ shifts every score of
  // a query by the same constant, which softmax ignores; and Σ_j p_j (v_j - μ) + μ = o since Σ p_j = 1.
  // So a cache may store one mean per (sequence, KV head) and encode k - μ (v - μ), adding μ back on
  // decode. μ = mean of tokens 1..center_k-1 (center_v) — a prefill prefix without the attention
  // sink, token 0, an outlier of its own — 0 = off; the mean costs D fp32 values per (sequence,
  // KV head), counted in the bits.
  int center_k = 0, center_v = 0;
};

using Progress = std::function<void(size_t done, size_t total)>;

// ---- vectors ----------------------------------------------------------------------------------
struct VectorResult {
  std::string codec;
  int dim = 0;
  size_t n = 0;
  double bits_per_value = 0;   // 8 * bytes per encoded vector / d: norms, scales, all included
  double rel_mse = 0;          // mean over non-zero vectors of ||x - x̂||^2 / ||x||^2
  double rel_mse_total = 0;    // sum ||x - x̂||^2 / sum ||x||^2
  double ip_rel_err_random = 0;  // sum (<u,x̂> - <u,x>)^2 / sum <u,x>^2, u ~ N(0, I), one per vector
  double ip_rel_err_real = 0;    // same with real query directions
  double ip_bias_real = 0;       // sum (<q,x̂> - <q,x>) <q,x> / sum <q,x>^2: -shrinkage (0 = unbiased)
  double beta_optimum = -1;      // TurboQuant-mse (integer bits): Lloyd-Max optimum for Beta(d); else -1
  double seconds = 0;            // encode + decode wall time
};

// x: n x d row-major. queries: nq x d real query directions (nullptr: a random sample of 1000 rows
// of x). Vector i is paired with query (i * 7919 + 1) mod nq.
VectorResult eval_vectors(const float* x, size_t n, int d, const CodecSpec& spec, const float* queries, size_t nq,
                          uint64_t seed);

// ---- attention --------------------------------------------------------------------------------
struct AttnShape {
  int B = 0, Hq = 0, Hkv = 0, Tq = 0, T = 0, D = 0;
};
// Checks the shapes of Q, K, V (as read from files) and returns the attention shape; throws
// tq::Error naming the offending argument and dimension.
AttnShape attn_shape(const std::vector<int64_t>& q, const std::vector<int64_t>& k, const std::vector<int64_t>& v);

struct AttnResult {
  std::string codec, k_codec, v_codec;
  std::string k_method, v_method;  // "per-vector", or KIVI's "per-channel G=32 + fp16 window R=32"
  double bits_per_value = 0;  // (key bits + value bits) / (2 T D): the whole cache, every overhead
  double k_bits = 0, v_bits = 0;
  double k_rel_mse = 0, v_rel_mse = 0;  // sum ||x - x̂||^2 / sum ||x||^2 over the stored cache
  double ip_rel_err_random = 0;         // keys with random directions u ~ N(0, I)
  double score_rel_err = 0;             // real queries: sum (q·k̂ - q·k)^2 / sum (q·k)^2 (visible keys)
  double attn_rel_l2 = 0;               // sqrt(sum ||ô - o||^2 / sum ||o||^2)
  double kld = 0;                       // mean over queries of KL(p || p̂), p = softmax(q·k/sqrt(D))
  double top1_agree = 0;                // share of queries whose argmax key is unchanged (>= 2 keys)
  double top8_agree = 0;                // mean |top8(p) ∩ top8(p̂)| / 8 (queries seeing > 8 keys)
  double sink_mass = 0;                 // mean reference attention on token 0 (data description)
  size_t n_queries = 0;
  double seconds = 0;
};

// q: B*Hq*Tq*D, k, v: B*Hkv*T*D floats, C order.
AttnResult eval_attention(const float* q, const float* k, const float* v, const AttnShape& s, const CodecChoice& c,
                          const AttnOptions& opts, uint64_t seed, const Progress& progress = nullptr);

nlohmann::ordered_json to_json(const VectorResult& r);
nlohmann::ordered_json to_json(const AttnResult& r);

// ---- Pareto plot ------------------------------------------------------------------------------
struct PlotPoint {
  std::string label;
  double x = 0, y = 0;
};
// Self-contained SVG: points (x linear, y log10), labels, the Pareto frontier (lower-left hull in
// the dominance sense: no other point has both fewer bits and less error) as a line.
std::string pareto_svg(const std::vector<PlotPoint>& pts, const std::string& title, const std::string& xlabel,
                       const std::string& ylabel);
// Indices of the Pareto-optimal points (minimize x and y), sorted by x.
std::vector<size_t> pareto_front(const std::vector<PlotPoint>& pts);

}  // namespace tq::eval
