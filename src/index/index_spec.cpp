// src/index/index_spec.cpp — index description strings ("TQ4", "TQ2,rerank64", "TQ3.5:rot=dense").
#include <cctype>
#include <charconv>
#include <string>

#include "turboquant/error.h"
#include "turboquant/index.h"

namespace tq {

const char* metric_name(Metric m) { return m == Metric::kL2 ? "l2" : "ip"; }

Metric parse_metric(std::string_view s) {
  if (s == "ip" || s == "IP" || s == "inner_product") return Metric::kInnerProduct;
  if (s == "l2" || s == "L2") return Metric::kL2;
  TQ_FAIL(kInvalidArgument, "unknown metric '{}' (expected ip or l2)", s);
}

std::string IndexSpec::name() const {
  std::string n = "TQ" + codec.name().substr(2);
  if (nc) n += ",nc";
  if (rerank > 0) n += ",rerank" + std::to_string(rerank);
  return n;
}

IndexSpec parse_index_spec(std::string_view desc) {
  IndexSpec spec;
  const std::string_view full = desc;
  const size_t comma = desc.find(',');
  const std::string_view head = desc.substr(0, comma);
  TQ_CHECK_ARG(head.size() > 2 && std::toupper(static_cast<unsigned char>(head[0])) == 'T' &&
                   std::toupper(static_cast<unsigned char>(head[1])) == 'Q',
               "index description '{}': expected TQ<bits>[.5][:options][,rerank<R>], e.g. TQ4 or TQ2,rerank64", full);
  spec.codec = parse_codec("tq" + std::string(head.substr(2)));
  TQ_CHECK_ARG(spec.codec.id == CodecId::kTqMse,
               "index description '{}': only TurboQuant-mse codes are indexed (no 'p' QJL variants)", full);
  std::string_view rest = comma == std::string_view::npos ? std::string_view() : desc.substr(comma + 1);
  while (!rest.empty()) {
    const size_t c = rest.find(',');
    const std::string_view tok = rest.substr(0, c);
    rest = c == std::string_view::npos ? std::string_view() : rest.substr(c + 1);
    if (tok == "nc") {
      spec.nc = true;
      continue;
    }
    constexpr std::string_view kRerank = "rerank";
    TQ_CHECK_ARG(tok.substr(0, kRerank.size()) == kRerank, "index description '{}': unknown component '{}'", full, tok);
    const std::string_view num = tok.substr(kRerank.size());
    int r = 0;
    const auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), r);
    TQ_CHECK_ARG(ec == std::errc() && ptr == num.data() + num.size() && r >= 1 && r <= (1 << 20),
                 "index description '{}': rerank needs a count 1..{}, got '{}'", full, 1 << 20, num);
    spec.rerank = r;
  }
  return spec;
}

}  // namespace tq
