// src/core/codec_spec.cpp — codec strings <-> CodecSpec.
#include <cctype>
#include <charconv>
#include <cmath>

#include "turboquant/codec.h"
#include "turboquant/error.h"

namespace tq {
namespace {

struct Named { const char* name; CodecId id; int bits; };
constexpr Named kFixed[] = {
    {"fp32", CodecId::kFp32, 32}, {"fp16", CodecId::kFp16, 16}, {"bf16", CodecId::kBf16, 16},
    {"fp8", CodecId::kFp8, 8},    {"q8", CodecId::kQ8, 8},      {"q4", CodecId::kQ4, 4},
    {"q8r", CodecId::kQ8r, 8},    {"q4r", CodecId::kQ4r, 4},    {"kivi2", CodecId::kKivi2, 2},
};

bool parse_int(std::string_view s, long long* v) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// "tq3", "tq2.5", "tq4p" (body after "tq").
void parse_tq(std::string_view body, std::string_view full, CodecSpec* out) {
  TQ_CHECK_ARG(!body.empty(), "codec '{}': expected bits after 'tq' (tq1..tq8, tqB.5, tqBp)", full);
  bool prod = false;
  if (body.back() == 'p') { prod = true; body.remove_suffix(1); }
  bool frac = false;
  if (body.size() > 2 && body.substr(body.size() - 2) == ".5") { frac = true; body.remove_suffix(2); }
  long long b = 0;
  TQ_CHECK_ARG(parse_int(body, &b), "codec '{}': bits must be an integer (tq1..tq8, tqB.5, tqBp)", full);
  if (frac) {
    TQ_CHECK_ARG(b >= 1 && b <= 7, "codec '{}': fractional rates go from tq1.5 to tq7.5", full);
  } else {
    TQ_CHECK_ARG(b >= 1 && b <= 8, "codec '{}': unsupported bit count {} (1..8)", full, b);
  }
  out->id = prod ? CodecId::kTqProd : CodecId::kTqMse;
  out->bits = int(b);
  out->fractional = frac;
  // The paper's splits: "2.5 bits" = 1/4 of the channels at 3 bits + 3/4 at 2 (2.25 code bits; with the
  // two fp16 norms 2.5 bits/value at d=128); "3.5" = 1/2 at 4 + 1/2 at 3. Other B.5: 1/2 at B+1.
  out->hi_fraction = frac ? (b == 2 ? 0.25 : 0.5) : 0.0;
}

}  // namespace

CodecSpec parse_codec(std::string_view s) {
  const std::string_view full = s;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  TQ_CHECK_ARG(!s.empty(), "empty codec string");
  CodecSpec spec;
  const size_t colon = s.find(':');
  std::string base(s.substr(0, colon));
  for (auto& c : base) c = char(std::tolower(static_cast<unsigned char>(c)));
  bool found = false;
  for (const auto& n : kFixed) {
    if (base == n.name) { spec.id = n.id; spec.bits = n.bits; found = true; break; }
  }
  if (!found) {
    TQ_CHECK_ARG(base.size() > 2 && base.compare(0, 2, "tq") == 0,
                 "unknown codec '{}' (expected fp32, fp16, bf16, tqB, tqB.5, tqBp, fp8, q8, q4, q8r, q4r, kivi2)", full);
    parse_tq(std::string_view(base).substr(2), full, &spec);
  }
  // Options ":key=value".
  std::string_view rest = colon == std::string_view::npos ? std::string_view() : s.substr(colon + 1);
  TQ_CHECK_ARG(colon == std::string_view::npos || !rest.empty(), "codec '{}': empty option list", full);
  while (!rest.empty()) {
    const size_t next = rest.find(':');
    std::string_view opt = rest.substr(0, next);
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
    const size_t eq = opt.find('=');
    TQ_CHECK_ARG(eq != std::string_view::npos, "codec '{}': option '{}' is not key=value", full, opt);
    const std::string_view k = opt.substr(0, eq), v = opt.substr(eq + 1);
    if (k == "norm") {
      if (v == "fp16") spec.norm = NormType::kFp16;
      else if (v == "fp32") spec.norm = NormType::kFp32;
      else TQ_FAIL(kInvalidArgument, "codec '{}': norm must be fp16 or fp32, got '{}'", full, v);
    } else if (k == "rot") {
      if (v == "auto") spec.rotation = RotationKind::kAuto;
      else if (v == "hadamard") spec.rotation = RotationKind::kHadamard;
      else if (v == "dense") spec.rotation = RotationKind::kDense;
      else if (v == "none") spec.rotation = RotationKind::kNone;
      else TQ_FAIL(kInvalidArgument, "codec '{}': rot must be auto, hadamard, dense or none, got '{}'", full, v);
    } else if (k == "seed") {
      long long sd = 0;
      TQ_CHECK_ARG(parse_int(v, &sd) && sd >= 0, "codec '{}': seed must be a non-negative integer", full);
      spec.seed = uint64_t(sd);
    } else {
      TQ_FAIL(kInvalidArgument, "codec '{}': unknown option '{}' (norm, rot, seed)", full, k);
    }
  }
  TQ_CHECK_ARG(spec.is_turboquant() || (spec.rotation == RotationKind::kAuto && spec.norm == NormType::kFp16),
               "codec '{}': norm/rot options apply to TurboQuant codecs only", full);
  return spec;
}

std::string CodecSpec::name() const {
  std::string n;
  switch (id) {
    case CodecId::kTqMse:
    case CodecId::kTqProd:
      n = "tq" + std::to_string(bits) + (fractional ? ".5" : "") + (id == CodecId::kTqProd ? "p" : "");
      break;
    default:
      for (const auto& f : kFixed) if (f.id == id) n = f.name;
  }
  if (is_turboquant()) {
    if (norm == NormType::kFp32) n += ":norm=fp32";
    if (rotation == RotationKind::kHadamard) n += ":rot=hadamard";
    if (rotation == RotationKind::kDense) n += ":rot=dense";
    if (rotation == RotationKind::kNone) n += ":rot=none";
    if (seed != CodecSpec{}.seed) n += ":seed=" + std::to_string(seed);
  }
  return n;
}

double CodecSpec::nominal_bits() const {
  if (is_turboquant()) return fractional ? bits + hi_fraction : double(bits);
  return double(bits);
}

std::string KvCodecSpec::name() const {
  if (k.name() == v.name()) return k.name();
  return "k=" + k.name() + ",v=" + v.name();
}

KvCodecSpec parse_kv_codec(std::string_view s) {
  const std::string_view full = s;
  KvCodecSpec kv;
  if (s.size() > 2 && s.substr(0, 2) == "k=") {
    const size_t comma = s.find(",v=");
    TQ_CHECK_ARG(comma != std::string_view::npos, "kv codec '{}': expected k=CODEC,v=CODEC", full);
    kv.k = parse_codec(s.substr(2, comma - 2));
    kv.v = parse_codec(s.substr(comma + 3));
    return kv;
  }
  // kXvY with X, Y bit counts (possibly fractional, "k3.5v2.5") of TurboQuant-mse.
  if (s.size() >= 4 && s[0] == 'k' && std::isdigit(static_cast<unsigned char>(s[1]))) {
    const size_t vpos = s.find('v');
    TQ_CHECK_ARG(vpos != std::string_view::npos && vpos + 1 < s.size() && vpos > 1,
                 "kv codec '{}': expected kXvY, e.g. k4v3", full);
    kv.k = parse_codec("tq" + std::string(s.substr(1, vpos - 1)));
    kv.v = parse_codec("tq" + std::string(s.substr(vpos + 1)));
    return kv;
  }
  kv.k = kv.v = parse_codec(s);
  return kv;
}

}  // namespace tq
