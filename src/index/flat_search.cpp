// src/index/flat_search.cpp — FlatIndex::search: per-query tables, the 8-bit-table scan with
// candidate bounds, exact fp32 re-scoring, optional re-ranking with stored vectors.
//
// Score to maximize: g = ip (inner product) or 2 ip - ||x̂||^2 (L2: ||q - x̂||^2 = ||q||^2 - g), with
// ip = sum_p n_p S_p and S_p = sum over part p's coordinates of (R q)_i c[code_i], computed as
// sum over 4-bit columns of a 16-entry table T_c (the column's coordinates' products summed).
// The scan adds 8-bit tables Q_c = round((T_c - min T_c) / Δ_p) (Δ_p: largest column range / 255),
// giving S'_p = sum_c min T_c + Δ_p * sum_c Q_c with |S'_p - S_p| <= E_p = sum_c max_e |rounding|.
// A vector can be among the k best only if g' + margin >= the k-th largest g' - margin, margin =
// (1 or 2) * sum_p n_p E_p; those survive and are re-scored with the fp32 tables T_c.
#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>

#include "index/fast_scan.h"
#include "index/flat_index_impl.h"
#include "turboquant/error.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tq {
namespace {

using index::kBlock;
using index::ScanGeometry;
using index::ScanPart;

// Everything derived from one query.
struct QueryTables {
  std::vector<float> rq;       // rotated query
  std::vector<float> lut;      // nibble: ncols * 16 fp32 tables; byte: per coordinate 2^bits entries
  std::vector<size_t> lut_off; // byte layout: offset of coordinate i's table
  std::vector<uint8_t> qlut;   // nibble: ncols * 16 quantized tables
  double bias[kMaxParts] = {0, 0}, delta[kMaxParts] = {1, 1}, margin[kMaxParts] = {0, 0};
  double qq = 0;               // ||q||^2
};

QueryTables make_tables(const FlatIndex::Impl& s, const float* q, bool exact_adc) {
  QueryTables t;
  const ScanGeometry& g = s.geo;
  t.rq.resize(s.d);
  s.codec->rotate(q, t.rq.data());
  for (int j = 0; j < s.d; ++j) t.qq += double(q[j]) * q[j];
  if (!g.nibble) {
    for (int p = 0; p < g.n_parts; ++p) {
      const ScanPart& sp = g.part[p];
      const auto& c = s.centroids[p];
      for (int i = 0; i < sp.dim; ++i) {
        t.lut_off.push_back(t.lut.size());
        for (float cj : c) t.lut.push_back(t.rq[sp.first + i] * cj);
      }
    }
    return t;
  }
  t.lut.assign(size_t(g.ncols) * 16, 0.f);
  t.qlut.assign(size_t(g.ncols) * 16, 0);
  for (int p = 0; p < g.n_parts; ++p) {
    const ScanPart& sp = g.part[p];
    const auto& c = s.centroids[p];
    const int used = 1 << (sp.bits * sp.per_col);  // table entries that occur (b = 3: 8 of 16)
    const uint32_t mask = (1u << sp.bits) - 1u;
    double range_max = 0, abs_sum = 0;
    std::vector<float> mn(sp.ncols);
    for (int col = 0; col < sp.ncols; ++col) {
      float* T = &t.lut[size_t(sp.col0 + col) * 16];
      for (int e = 0; e < 16; ++e) {
        float v = 0;
        if (e < used)
          for (int u = 0; u < sp.per_col; ++u) {
            const int i = col * sp.per_col + u;
            if (i < sp.dim) v += t.rq[sp.first + i] * c[(uint32_t(e) >> (u * sp.bits)) & mask];
          }
        T[e] = v;
      }
      for (int e = used; e < 16; ++e) T[e] = T[0];  // never indexed; keep the range tight
      const float lo = *std::min_element(T, T + 16), hi = *std::max_element(T, T + 16);
      mn[col] = lo;
      range_max = std::max(range_max, double(hi) - lo);
      abs_sum += std::max(std::fabs(lo), std::fabs(hi));
    }
    const double delta = range_max > 0 ? range_max / 255.0 : 1.0;
    double bias = 0, worst = 0, var = 0;
    for (int col = 0; col < sp.ncols; ++col) {
      const float* T = &t.lut[size_t(sp.col0 + col) * 16];
      uint8_t* Q = &t.qlut[size_t(sp.col0 + col) * 16];
      double col_worst = 0, col_var = 0;
      for (int e = 0; e < 16; ++e) {
        const double qv = std::min(255.0, std::nearbyint((double(T[e]) - mn[col]) / delta));
        Q[e] = uint8_t(qv);
        const double err = qv * delta + mn[col] - T[e];
        if (e < used) {
          col_worst = std::max(col_worst, std::fabs(err));
          col_var += err * err / used;
        }
      }
      bias += mn[col];
      worst += col_worst;
      var += col_var;
    }
    t.bias[p] = bias;
    t.delta[p] = delta;
    // Slack for fp32 rounding in the approximate and the exact scores (relative ~1e-7 per term).
    const double slack = 1e-5 * abs_sum + 1e-30;
    t.margin[p] = (exact_adc ? worst * (1 + 1e-6) : std::min(worst, 4.0 * std::sqrt(var))) + slack;
  }
  return t;
}

// Keeps every slot whose upper bound reaches the k-th largest lower bound seen so far.
struct Collector {
  int k = 1;
  std::priority_queue<float, std::vector<float>, std::greater<float>> lower;  // k largest lower bounds
  float tau = -std::numeric_limits<float>::infinity();
  std::vector<std::pair<float, uint32_t>> cand;  // (upper bound, slot)
  size_t scanned = 0;

  void offer_lower(float lb) {
    if (int(lower.size()) < k) {
      lower.push(lb);
      if (int(lower.size()) == k) tau = lower.top();
    } else if (lb > tau) {
      lower.pop();
      lower.push(lb);
      tau = lower.top();
    }
  }
  void offer(float score, float margin, uint32_t slot) {
    const float ub = score + margin;
    if (ub < tau) return;
    cand.emplace_back(ub, slot);
    offer_lower(score - margin);
    if (cand.size() > size_t(8 * k + 4096)) prune();
  }
  void prune() {
    cand.erase(std::remove_if(cand.begin(), cand.end(), [&](const auto& c) { return c.first < tau; }), cand.end());
  }
  void merge(Collector& o) {
    while (!o.lower.empty()) {
      offer_lower(o.lower.top());
      o.lower.pop();
    }
    cand.insert(cand.end(), o.cand.begin(), o.cand.end());
    scanned += o.scanned;
    prune();
  }
};

// Scans blocks [b0, b1) for one query into col.
void scan_range(const FlatIndex::Impl& s, const QueryTables& t, size_t b0, size_t b1, Collector& col) {
  const ScanGeometry& g = s.geo;
  const size_t np = s.n_parts(), bb = g.block_bytes();
  const bool l2 = s.metric == Metric::kL2;
  const float alpha = l2 ? 2.f : 1.f;
  constexpr size_t kChunk = 32;  // blocks per pass: accumulators stay in L1
  std::vector<uint32_t> acc(kMaxParts * kChunk * kBlock);
  std::vector<float> score(kChunk * kBlock), margin(kChunk * kBlock), ub(kChunk * kBlock);
  for (size_t c0 = b0; c0 < b1; c0 += kChunk) {
    const size_t nb = std::min(kChunk, b1 - c0);
    const size_t v0 = c0 * kBlock, nv = std::min(nb * kBlock, s.n - v0);
    if (g.nibble) {
      for (size_t p = 0; p < np; ++p)
        index::scan_nibbles(s.blocks.data() + c0 * bb, nb, bb, g.part[p].col0, g.part[p].col0 + g.part[p].ncols_pad,
                            t.qlut.data(), &acc[p * kChunk * kBlock]);
      // Plain loops over v in fp32 (they vectorize): score = sum_p n_p (bias_p + delta_p acc_p),
      // margin = alpha sum_p n_p E_p; one loop per part count so the strides are constants.
      const float* nr = &s.norms[v0 * np];
      const float b0 = float(t.bias[0]), d0 = float(t.delta[0]), m0 = float(t.margin[0]) * alpha * 1.0001f;
      const uint32_t* a0 = &acc[0];
      if (np == 1) {
        for (size_t v = 0; v < nv; ++v) {
          score[v] = nr[v] * (b0 + d0 * float(a0[v]));
          margin[v] = nr[v] * m0;
        }
      } else {
        const float b1 = float(t.bias[1]), d1 = float(t.delta[1]), m1 = float(t.margin[1]) * alpha * 1.0001f;
        const uint32_t* a1 = &acc[kChunk * kBlock];
        for (size_t v = 0; v < nv; ++v) {
          score[v] = nr[2 * v] * (b0 + d0 * float(a0[v])) + nr[2 * v + 1] * (b1 + d1 * float(a1[v]));
          margin[v] = nr[2 * v] * m0 + nr[2 * v + 1] * m1;
        }
      }
      if (l2)
        for (size_t v = 0; v < nv; ++v) score[v] = 2.f * score[v] - s.sqnorm[v0 + v];
    } else {
      for (size_t v = 0; v < nv; ++v) {
        const uint8_t* code = s.blocks.data() + (v0 + v) / kBlock * bb + ((v0 + v) % kBlock) * size_t(s.d);
        const float* nr = &s.norms[(v0 + v) * np];
        float ip = 0;
        for (size_t p = 0; p < np; ++p) {
          const ScanPart& sp = g.part[p];
          float sum = 0;
          for (int i = 0; i < sp.dim; ++i) sum += t.lut[t.lut_off[sp.first + i] + code[sp.first + i]];
          ip += nr[p] * sum;
        }
        score[v] = l2 ? 2.f * ip - s.sqnorm[v0 + v] : ip;
        margin[v] = 0.f;
      }
    }
    // The bound test first (most vectors stop here), with tau in a register: it only changes in offer.
    for (size_t v = 0; v < nv; ++v) ub[v] = score[v] + margin[v];
    float tau = col.tau;
    for (size_t v = 0; v < nv; ++v)
      if (ub[v] >= tau) {
        col.offer(score[v], margin[v], uint32_t(v0 + v));
        tau = col.tau;
      }
    col.scanned += nv;
  }
}

// Exact fp32-table score (the same g as above, without table rounding).
float exact_score(const FlatIndex::Impl& s, const QueryTables& t, uint32_t slot) {
  const ScanGeometry& g = s.geo;
  const size_t np = s.n_parts();
  const float* nr = &s.norms[size_t(slot) * np];
  float ip = 0;
  for (size_t p = 0; p < np; ++p) {
    const ScanPart& sp = g.part[p];
    float sum = 0;
    if (g.nibble) {
      for (int c = 0; c < sp.ncols; ++c)
        sum += t.lut[size_t(sp.col0 + c) * 16 + index::slot_column(g, s.blocks.data(), slot, sp.col0 + c)];
    } else {
      const uint8_t* code = s.blocks.data() + slot / kBlock * g.block_bytes() + (slot % kBlock) * size_t(s.d);
      for (int i = 0; i < sp.dim; ++i) sum += t.lut[t.lut_off[sp.first + i] + code[sp.first + i]];
    }
    ip += nr[p] * sum;
  }
  return s.metric == Metric::kL2 ? 2.f * ip - s.sqnorm[slot] : ip;
}

// Final answer for one query from its candidates.
void finish(const FlatIndex::Impl& s, const float* q, const QueryTables& t, Collector& col, int k, int rerank,
            float* dist, int64_t* lab) {
  col.prune();
  std::vector<std::pair<float, uint32_t>> sc;
  sc.reserve(col.cand.size());
  for (const auto& c : col.cand) sc.emplace_back(exact_score(s, t, c.second), c.second);
  const auto better = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  const size_t keep = std::min(sc.size(), size_t(std::max(k, rerank)));
  std::partial_sort(sc.begin(), sc.begin() + keep, sc.end(), better);
  sc.resize(keep);
  const bool l2 = s.metric == Metric::kL2;
  if (rerank > 0) {
    std::vector<std::pair<double, uint32_t>> ex;
    for (const auto& c : sc) {
      const float* x = &s.vectors[size_t(c.second) * s.d];
      double v = 0;
      for (int j = 0; j < s.d; ++j) v += l2 ? (double(q[j]) - x[j]) * (double(q[j]) - x[j]) : double(q[j]) * x[j];
      ex.emplace_back(l2 ? -v : v, c.second);
    }
    std::sort(ex.begin(), ex.end(), better);
    for (int j = 0; j < k; ++j) {
      dist[j] = float(l2 ? -ex[j].first : ex[j].first);
      lab[j] = s.ids[ex[j].second];
    }
    return;
  }
  for (int j = 0; j < k; ++j) {
    dist[j] = l2 ? float(t.qq - double(sc[j].first)) : sc[j].first;
    lab[j] = s.ids[sc[j].second];
  }
}

}  // namespace

void FlatIndex::search(const float* q, size_t nq, int d, int k, float* distances, int64_t* labels,
                       const SearchParams& params) const {
  const Impl& s = *p_;
  TQ_CHECK_ARG(d == s.d, "search: queries have dimension {}, the index {}", d, s.d);
  TQ_CHECK_ARG(s.n > 0, "search: the index is empty");
  TQ_CHECK_ARG(k >= 1 && size_t(k) <= s.n, "search: k = {} must be in 1..{} (the index size)", k, s.n);
  if (nq == 0) return;
  TQ_CHECK_ARG(q && distances && labels, "search: null pointer");
  for (size_t i = 0; i < nq * size_t(d); ++i)
    TQ_CHECK_ARG(std::isfinite(q[i]), "search: query {} has a non-finite value at coordinate {}", i / d, i % d);
  const int rerank = params.rerank < 0 ? s.spec.rerank : params.rerank;
  TQ_CHECK_ARG(rerank == 0 || !s.vectors.empty(),
               "search: re-ranking needs stored vectors (describe the index with ',rerank<R>')");
  int nt = 1;
#ifdef _OPENMP
  nt = params.threads > 0 ? params.threads : omp_get_max_threads();
#endif
  const size_t n_blocks = (s.n + kBlock - 1) / kBlock;
  const int kk = int(std::min(s.n, size_t(std::max(k, rerank))));  // candidates needed by the last stage
  std::vector<size_t> cand_count(nq);
  if (nq >= size_t(nt) || nt == 1) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (long qi = 0; qi < long(nq); ++qi) {
      const float* qv = q + size_t(qi) * d;
      const QueryTables t = make_tables(s, qv, params.exact_adc);
      Collector col;
      col.k = kk;
      scan_range(s, t, 0, n_blocks, col);
      col.prune();
      cand_count[qi] = col.cand.size();
      finish(s, qv, t, col, k, rerank, distances + size_t(qi) * k, labels + size_t(qi) * k);
    }
  } else {
    // Few queries: split the database between threads, merge the candidate sets (each thread's set
    // holds every slot of its range that can reach the global k best, as its bound is lower).
    for (size_t qi = 0; qi < nq; ++qi) {
      const float* qv = q + qi * d;
      const QueryTables t = make_tables(s, qv, params.exact_adc);
      std::vector<Collector> cols(nt);
#pragma omp parallel for num_threads(nt) schedule(static, 1)
      for (int w = 0; w < nt; ++w) {
        cols[w].k = kk;
        const size_t b0 = n_blocks * w / nt, b1 = n_blocks * (w + 1) / nt;
        scan_range(s, t, b0, b1, cols[w]);
      }
      for (int w = 1; w < nt; ++w) cols[0].merge(cols[w]);
      cols[0].prune();
      cand_count[qi] = cols[0].cand.size();
      finish(s, qv, t, cols[0], k, rerank, distances + qi * k, labels + qi * k);
    }
  }
  s.stat_scanned = s.n;
  s.stat_candidates = cand_count[0];
}

}  // namespace tq
