// src/eval/codec_list.cpp — the --codecs list of `tq eval` and the JSON form of its result rows.
#include <cctype>
#include <cmath>

#include "turboquant/error.h"
#include "turboquant/eval.h"

namespace tq::eval {

std::vector<CodecChoice> parse_codec_list(std::string_view list) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = list.find(',', start);
    std::string item(list.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) item.erase(item.begin());
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.pop_back();
    items.push_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  std::vector<CodecChoice> out;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string& it = items[i];
    TQ_CHECK_ARG(!it.empty(), "--codecs '{}': empty item at position {}", list, i + 1);
    KvCodecSpec kv;
    if (it.rfind("k=", 0) == 0) {
      // "k=A,v=B" was split at its comma: the value codec is the next item.
      TQ_CHECK_ARG(i + 1 < items.size() && items[i + 1].rfind("v=", 0) == 0,
                   "--codecs '{}': '{}' must be followed by 'v=CODEC' (k=A,v=B)", list, it);
      kv = parse_kv_codec(it + "," + items[i + 1]);
      ++i;
    } else {
      TQ_CHECK_ARG(it.rfind("v=", 0) != 0, "--codecs '{}': '{}' without a preceding 'k=CODEC'", list, it);
      kv = parse_kv_codec(it);
    }
    out.push_back({kv.name(), kv.k, kv.v});
  }
  return out;
}

namespace {
// JSON has no NaN/Inf: a metric that is undefined for the data (e.g. top-8 with <= 8 keys) is null.
nlohmann::ordered_json num(double v) { return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(); }
}  // namespace

nlohmann::ordered_json to_json(const VectorResult& r) {
  nlohmann::ordered_json j;
  j["codec"] = r.codec;
  j["bits_per_value"] = num(r.bits_per_value);
  j["rel_mse"] = num(r.rel_mse);
  j["rel_mse_total"] = num(r.rel_mse_total);
  j["beta_optimum"] = r.beta_optimum > 0 ? num(r.beta_optimum) : nlohmann::ordered_json();
  j["vs_optimum"] = r.beta_optimum > 0 ? num(r.rel_mse / r.beta_optimum) : nlohmann::ordered_json();
  j["ip_rel_err_random"] = num(r.ip_rel_err_random);
  j["ip_rel_err_real"] = num(r.ip_rel_err_real);
  j["ip_bias_real"] = num(r.ip_bias_real);
  j["dim"] = r.dim;
  j["n"] = r.n;
  j["seconds"] = num(r.seconds);
  return j;
}

nlohmann::ordered_json to_json(const AttnResult& r) {
  nlohmann::ordered_json j;
  j["codec"] = r.codec;
  j["bits_per_value"] = num(r.bits_per_value);
  j["attn_rel_l2"] = num(r.attn_rel_l2);
  j["kld"] = num(r.kld);
  j["top1_agree"] = num(r.top1_agree);
  j["top8_agree"] = num(r.top8_agree);
  j["score_rel_err"] = num(r.score_rel_err);
  j["ip_rel_err_random"] = num(r.ip_rel_err_random);
  j["k_rel_mse"] = num(r.k_rel_mse);
  j["v_rel_mse"] = num(r.v_rel_mse);
  j["k_codec"] = r.k_codec;
  j["v_codec"] = r.v_codec;
  j["k_bits"] = num(r.k_bits);
  j["v_bits"] = num(r.v_bits);
  j["k_method"] = r.k_method;
  j["v_method"] = r.v_method;
  j["sink_mass"] = num(r.sink_mass);
  j["n_queries"] = r.n_queries;
  j["seconds"] = num(r.seconds);
  return j;
}

}  // namespace tq::eval
