// src/index/flat_index.cpp — FlatIndex: construction, add, remove, reset, decoded vectors and the
// brute-force reference search. The scan itself is in flat_search.cpp, files in index_io.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "index/flat_index_impl.h"
#include "turboquant/error.h"
#include "turboquant/half.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tq {

namespace {
// Vectors a fractional codec looks at to choose its outlier channels.
constexpr size_t kMaxCalib = 65536;

std::shared_ptr<const TqCodec> make_codec(const CodecSpec& spec, int d, const float* calib, size_t n_calib) {
  auto c = std::dynamic_pointer_cast<const TqCodec>(Codec::create(spec, d, calib, n_calib));
  TQ_CHECK(c != nullptr, kInternal, "codec '{}' is not a TurboQuant codec", spec.name());
  return c;
}
}  // namespace

void FlatIndex::Impl::set_codec(std::shared_ptr<const TqCodec> c) {
  codec = std::move(c);
  geo = index::ScanGeometry::make(*codec->tq_layout());
  centroids.clear();
  for (const auto& part : codec->parts()) centroids.push_back(part.cb->centroids_f32());
}

double FlatIndex::Impl::decoded_sqnorm(const uint8_t* codes, const float* part_norms) const {
  double s = 0;
  for (size_t p = 0; p < n_parts(); ++p) {
    const index::ScanPart& sp = geo.part[p];
    double t = 0;
    for (int i = 0; i < sp.dim; ++i) {
      const double c = centroids[p][codes[sp.first + i]];
      t += c * c;
    }
    s += double(part_norms[p]) * part_norms[p] * t;
  }
  return s;
}

void FlatIndex::Impl::append(const uint8_t* codes, const float* part_norms, const float* x, const int64_t* new_ids,
                             size_t count, int threads, const float* sq) {
  const size_t np = n_parts(), bb = geo.block_bytes(), total = n + count;
  const size_t nb = (total + index::kBlock - 1) / index::kBlock;
  // Reserve everything first (may throw); after that nothing below allocates.
  blocks.reserve(nb * bb);
  norms.reserve(total * np);
  ids.reserve(total);
  if (metric == Metric::kL2) sqnorm.reserve(total);
  if (spec.rerank > 0) vectors.reserve(total * size_t(d));

  blocks.resize(nb * bb, 0);
  // Slots up to the next block boundary one by one, then whole blocks in parallel.
  const size_t head = std::min(count, (index::kBlock - n % index::kBlock) % index::kBlock);
  index::pack_into_blocks(geo, codes, head, n, blocks.data());
  const size_t rest_blocks = (count - head + index::kBlock - 1) / index::kBlock;
  int nt = 1;
#ifdef _OPENMP
  nt = threads > 0 ? threads : omp_get_max_threads();
#endif
  constexpr size_t kChunkBlocks = 64;
  const long n_chunks = long((rest_blocks + kChunkBlocks - 1) / kChunkBlocks);
#pragma omp parallel for num_threads(nt) schedule(static) if (n_chunks > 1)
  for (long ch = 0; ch < n_chunks; ++ch) {
    const size_t i0 = head + size_t(ch) * kChunkBlocks * index::kBlock;
    const size_t cnt = std::min(kChunkBlocks * index::kBlock, count - i0);
    index::pack_into_blocks(geo, codes + i0 * size_t(d), cnt, n + i0, blocks.data());
  }
  norms.insert(norms.end(), part_norms, part_norms + count * np);
  if (metric == Metric::kL2 && sq) {
    sqnorm.insert(sqnorm.end(), sq, sq + count);
  } else if (metric == Metric::kL2) {
    const size_t s0 = sqnorm.size();
    sqnorm.resize(s0 + count);
#pragma omp parallel for num_threads(nt) schedule(static) if (count > 4096)
    for (long i = 0; i < long(count); ++i)
      sqnorm[s0 + size_t(i)] = float(decoded_sqnorm(codes + size_t(i) * d, part_norms + size_t(i) * np));
  }
  for (size_t i = 0; i < count; ++i) {
    const int64_t id = new_ids ? new_ids[i] : next_id + int64_t(i);
    ids.push_back(id);
  }
  int64_t mx = next_id - 1;
  for (size_t i = 0; i < count; ++i) mx = std::max(mx, ids[n + i]);
  next_id = mx + 1;
  if (spec.rerank > 0) vectors.insert(vectors.end(), x, x + count * size_t(d));
  n = total;
}

FlatIndex::FlatIndex(int d, std::string_view description, Metric metric) : p_(std::make_unique<Impl>()) {
  TQ_CHECK_ARG(d >= 2 && d <= (1 << 16), "index: dimension must be in 2..65536, got {}", d);
  p_->d = d;
  p_->metric = metric;
  p_->spec = parse_index_spec(description);
  TQ_CHECK_ARG(metric == Metric::kInnerProduct || metric == Metric::kL2, "index: unknown metric {}", int(metric));
  if (!p_->spec.codec.fractional) p_->set_codec(make_codec(p_->spec.codec, d, nullptr, 0));
  else make_codec(p_->spec.codec, d, nullptr, 0);  // validates d against the split now, not at add
}
FlatIndex::FlatIndex(std::unique_ptr<Impl> impl) : p_(std::move(impl)) {}
FlatIndex::~FlatIndex() = default;
FlatIndex::FlatIndex(FlatIndex&&) noexcept = default;
FlatIndex& FlatIndex::operator=(FlatIndex&&) noexcept = default;

int FlatIndex::dim() const { return p_->d; }
Metric FlatIndex::metric() const { return p_->metric; }
const IndexSpec& FlatIndex::spec() const { return p_->spec; }
size_t FlatIndex::size() const { return p_->n; }
const std::vector<int64_t>& FlatIndex::ids() const { return p_->ids; }
std::shared_ptr<const TqCodec> FlatIndex::codec() const { return p_->codec; }
size_t FlatIndex::code_size() const {
  if (p_->codec) return p_->codec->code_size();
  return Codec::create(p_->spec.codec, p_->d)->code_size();
}
size_t FlatIndex::memory_bytes() const {
  return p_->blocks.size() + p_->norms.size() * 4 + p_->sqnorm.size() * 4 + p_->ids.size() * 8 +
         p_->vectors.size() * 4;
}
ScanStats FlatIndex::last_stats() const { return {p_->stat_scanned.load(), p_->stat_candidates.load()}; }

void FlatIndex::add(const float* x, size_t n, int d, const int64_t* new_ids, int threads) {
  TQ_CHECK_ARG(d == p_->d, "add: vectors have dimension {}, the index {}", d, p_->d);
  if (n == 0) return;
  TQ_CHECK_ARG(x != nullptr, "add: null vectors");
  TQ_CHECK(p_->n + n <= size_t(UINT32_MAX), kOutOfRange, "add: index would exceed {} vectors", UINT32_MAX);
  // Labels: any int64 but INT64_MAX, which would leave no next consecutive label (next_id = max + 1).
  constexpr int64_t kNoLabel = std::numeric_limits<int64_t>::max();
  if (new_ids) {
    for (size_t i = 0; i < n; ++i) TQ_CHECK_ARG(new_ids[i] != kNoLabel, "add: label {} of vector {} is reserved", new_ids[i], i);
  } else {
    TQ_CHECK(p_->next_id <= kNoLabel - int64_t(n), kOutOfRange, "add: {} consecutive labels from {} overflow int64",
             n, p_->next_id);
  }
  std::shared_ptr<const TqCodec> codec = p_->codec;
  if (!codec) {
    // Fractional: the outlier channels come from this first batch; check it before using it.
    for (size_t i = 0; i < std::min(n, kMaxCalib) * size_t(d); ++i)
      TQ_CHECK_ARG(std::isfinite(x[i]), "add: vector {} has a non-finite value at coordinate {}", i / d, i % d);
    codec = make_codec(p_->spec.codec, d, x, std::min(n, kMaxCalib));
  }
  const size_t np = codec->parts().size();
  std::vector<uint8_t> codes(n * size_t(d));
  std::vector<float> norms(n * np), dots, sq;
  if (p_->spec.nc) dots.resize(n * np);
  codec->encode_unpacked(x, n, size_t(d), codes.data(), norms.data(), threads, p_->spec.nc ? dots.data() : nullptr);
  if (p_->spec.nc) {
    // Norm correction: scale n_p / <ĉ_p, u_p>, rounded like the codec rounds norms.
    const NormType nt = codec->tq_layout()->norm_type;
    if (p_->metric == Metric::kL2) sq.resize(n);
    for (size_t i = 0; i < n; ++i) {
      double s2 = 0;
      for (size_t p = 0; p < np; ++p) {
        float& nr = norms[i * np + p];
        s2 += double(nr) * nr;
        const float dt = dots[i * np + p];
        const float v = dt > 0 ? nr / dt : nr;
        TQ_CHECK_ARG(nt == NormType::kFp32 || v < 65504.f,
                     "add: vector {}: corrected norm {:.4g} exceeds fp16 (use :norm=fp32)", i, v);
        nr = nt == NormType::kFp32 ? v : half_to_float(float_to_half(v));
      }
      if (!sq.empty()) sq[i] = float(s2);
    }
  }
  if (!p_->codec) p_->set_codec(codec);
  p_->append(codes.data(), norms.data(), x, new_ids, n, threads, sq.empty() ? nullptr : sq.data());
}

void FlatIndex::reset() {
  Impl& s = *p_;
  s.n = 0;
  s.next_id = 0;
  s.blocks.clear();
  s.norms.clear();
  s.sqnorm.clear();
  s.ids.clear();
  s.vectors.clear();
}

size_t FlatIndex::remove_ids(const int64_t* rm, size_t count) {
  if (count == 0 || p_->n == 0) return 0;
  TQ_CHECK_ARG(rm != nullptr, "remove_ids: null ids");
  const std::unordered_set<int64_t> drop(rm, rm + count);
  Impl& s = *p_;
  std::vector<size_t> keep;
  keep.reserve(s.n);
  for (size_t i = 0; i < s.n; ++i)
    if (!drop.count(s.ids[i])) keep.push_back(i);
  const size_t removed = s.n - keep.size();
  if (removed == 0) return 0;
  // Rebuild into a fresh state and swap, so a failed allocation leaves the index as it was.
  const size_t np = s.n_parts(), d = size_t(s.d);
  std::vector<uint8_t> codes(keep.size() * d);
  std::vector<float> norms(keep.size() * np), vecs;
  std::vector<int64_t> ids(keep.size());
  std::vector<float> sq;
  const bool keep_sq = s.spec.nc && s.metric == Metric::kL2;
  if (keep_sq) sq.resize(keep.size());
  if (s.spec.rerank > 0) vecs.resize(keep.size() * d);
  for (size_t j = 0; j < keep.size(); ++j) {
    index::unpack_slot(s.geo, s.blocks.data(), keep[j], &codes[j * d]);
    std::copy_n(&s.norms[keep[j] * np], np, &norms[j * np]);
    ids[j] = s.ids[keep[j]];
    if (keep_sq) sq[j] = s.sqnorm[keep[j]];
    if (s.spec.rerank > 0) std::copy_n(&s.vectors[keep[j] * d], d, &vecs[j * d]);
  }
  auto fresh = std::make_unique<Impl>();
  fresh->d = s.d;
  fresh->metric = s.metric;
  fresh->spec = s.spec;
  fresh->set_codec(s.codec);
  fresh->append(codes.data(), norms.data(), vecs.data(), ids.data(), keep.size(), 0, keep_sq ? sq.data() : nullptr);
  fresh->next_id = std::max(fresh->next_id, s.next_id);
  p_ = std::move(fresh);
  return removed;
}

void FlatIndex::reconstruct(size_t i, float* out) const {
  const Impl& s = *p_;
  TQ_CHECK(i < s.n, kOutOfRange, "reconstruct: slot {} out of range (size {})", i, s.n);
  std::vector<uint8_t> codes(s.d);
  std::vector<float> r(s.d);
  index::unpack_slot(s.geo, s.blocks.data(), i, codes.data());
  // Same arithmetic as TqCodec::decode_rotated: centroid, times the stored norm, then unrotate.
  for (size_t p = 0; p < s.n_parts(); ++p) {
    const index::ScanPart& sp = s.geo.part[p];
    const float nrm = s.norms[i * s.n_parts() + p];
    for (int j = 0; j < sp.dim; ++j) r[sp.first + j] = s.centroids[p][codes[sp.first + j]] * nrm;
  }
  s.codec->unrotate(r.data(), out);
}

void FlatIndex::search_reference(const float* q, size_t nq, int d, int k, float* distances, int64_t* labels) const {
  const Impl& s = *p_;
  TQ_CHECK_ARG(d == s.d, "search: queries have dimension {}, the index {}", d, s.d);
  TQ_CHECK_ARG(s.n > 0, "search: the index is empty");
  TQ_CHECK_ARG(k >= 1 && size_t(k) <= s.n, "search: k = {} must be in 1..{} (the index size)", k, s.n);
  std::vector<float> x(size_t(s.n) * d);
  for (size_t i = 0; i < s.n; ++i) reconstruct(i, &x[i * d]);
  std::vector<std::pair<double, size_t>> sc(s.n);
  for (size_t qi = 0; qi < nq; ++qi) {
    const float* qq = q + qi * d;
    for (size_t i = 0; i < s.n; ++i) {
      double v = 0;
      if (s.metric == Metric::kL2 && s.spec.nc) {  // ||q||^2 - 2 <q, x̂> + ||x||^2 (stored)
        double ip = 0, q2 = 0;
        for (int j = 0; j < d; ++j) {
          ip += double(qq[j]) * x[i * d + j];
          q2 += double(qq[j]) * qq[j];
        }
        v = q2 - 2 * ip + s.sqnorm[i];
      } else {
        for (int j = 0; j < d; ++j) {
          const double a = qq[j], b = x[i * d + j];
          v += s.metric == Metric::kL2 ? (a - b) * (a - b) : a * b;
        }
      }
      sc[i] = {s.metric == Metric::kL2 ? -v : v, i};
    }
    std::partial_sort(sc.begin(), sc.begin() + k, sc.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    for (int j = 0; j < k; ++j) {
      distances[qi * k + j] = float(s.metric == Metric::kL2 ? -sc[j].first : sc[j].first);
      labels[qi * k + j] = s.ids[sc[j].second];
    }
  }
}

}  // namespace tq
