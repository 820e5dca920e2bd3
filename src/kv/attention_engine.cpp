// src/kv/attention_engine.cpp — the fused CPU decode attention (turboquant/attention.h).
//
// Work item = (sequence b, KV head g, context range [t0, t1)): its R = G·q_len query rows (row
// r = i·G + j is query head g·G + j of new token i) stream the range in blocks of at most
// block_tokens tokens that never cross a page or the encoded/window boundary:
//   scores   s[R][n]  (TurboQuant: per code stream, raw dots on the codes × norm (× κγ for QJL))
//   mask     causal: row r sees positions <= L - q_len + i
//   softmax  online: running max m[r], sum l[r], accumulators rescaled when m grows
//   values   acc[r] += Σ_t p[r][t] · (norm_t · ĉ_t)  on the codes, in the rotated / sketch domain
// Ranges of one (b, g) are merged (log-sum-exp) and finalized: inverse sketch and rotation once per
// row, window contribution (float32, original domain) added, divided by l.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif


#include "kv/attn_int8.h"
#include "kv/attn_kernels.h"
#include "kv/dtype_io.h"
#include "kv/kv_read.h"
#include "kv/work_pool.h"
#include "turboquant/attention.h"
#include "turboquant/baseline_codecs.h"
#include "turboquant/error.h"
#include "turboquant/tq_codec.h"

namespace tq {
namespace {

using kv::TokenBytes;

enum class Path { kTq, kRows, kDecode };

inline int pad16(int x) { return (x + 15) / 16 * 16; }

// One code stream of a TurboQuant vector: the mse codes or the QJL signs of one part.
struct Stream {
  int part = 0;
  bool qjl = false;
  int bits = 0, m = 0;
  uint32_t codes_off = 0;     // inside the codes section
  uint32_t scalar_off = 0;    // norm of the part inside the scalars section
  uint32_t gamma_off = 0;     // prod: gamma of the part
  float kappa = 0;            // prod: QJL constant of the part
  std::vector<float> table;   // 2^bits values
  int off = 0;                // segment offset in a prepared row / accumulator row (kernel order)
  int first = 0;              // offset of the part in the rotated domain
  std::vector<int> order;     // kernel position -> coordinate within the part
  bool i8 = false;            // K: scored by the int8 kernel (natural order, attn_int8.h)
  kv::Int8Table i8tab{};
  bool bf = false;            // V: accumulated by the bf16 kernel (natural order, attn_int8.h)
  kv::Bf16Table bftab{};
};

// How one side (K or V) of a layer is read.
struct Side {
  Path path = Path::kRows;
  const Codec* codec = nullptr;
  const TqCodec* tq = nullptr;
  // kDecode of q8r / q4r: decoded in the rotated domain (K: the query is rotated once; V: the
  // output is un-rotated once), not one inverse rotation per token.
  const BlockIntCodec* rotated = nullptr;
  KvPageLayout lay{};
  const uint8_t* pool = nullptr;
  DType rows = DType::kF32;  // kRows: stored dtype
  bool fp32_scalars = false;
  std::vector<Stream> streams;
  int width = 0;  // prepared q row (K) / accumulator row (V) width
};

Side make_side(const Codec& c, const KvPageLayout& lay, const uint8_t* pool, int D, bool int8 = false,
               bool bf16 = false) {
  Side s;
  s.codec = &c;
  s.lay = lay;
  s.pool = pool;
  if (c.spec().is_passthrough()) {
    s.path = Path::kRows;
    s.rows = c.spec().id == CodecId::kFp32 ? DType::kF32 : c.spec().id == CodecId::kFp16 ? DType::kF16 : DType::kBF16;
    s.width = pad16(D);
    return s;
  }
  s.tq = dynamic_cast<const TqCodec*>(&c);
  if (!s.tq) {
    s.path = Path::kDecode;
    s.width = pad16(D);
    if (const auto* bi = dynamic_cast<const BlockIntCodec*>(&c); bi && bi->rotation()) s.rotated = bi;
    return s;
  }
  s.path = Path::kTq;
  const TqLayout& L = *c.tq_layout();
  s.fp32_scalars = L.norm_type == NormType::kFp32;
  int off = 0;
  for (int qjl = 0; qjl <= int(L.prod); ++qjl) {
    for (uint32_t p = 0; p < L.n_parts; ++p) {
      const TqPartLayout& pl = L.part[p];
      Stream st;
      st.part = int(p);
      st.qjl = qjl != 0;
      st.bits = qjl ? 1 : int(pl.mse_bits);
      if (st.bits == 0) continue;  // 1-bit prod: no mse stage
      st.m = int(pl.dim);
      st.codes_off = qjl ? pl.qjl_offset : pl.mse_offset;
      st.scalar_off = pl.norm_offset;
      st.gamma_off = pl.gamma_offset;
      st.kappa = float(s.tq->parts()[p].qjl_scale);
      st.table = qjl ? std::vector<float>{-1.f, 1.f} : s.tq->parts()[p].cb->centroids_f32();
      st.off = off;
      st.first = int(pl.first);
      st.order = kv::kernel_order(st.bits, st.m);
      if (int8 && kv::int8_scores_fit(st.bits, st.m)) {
        st.i8 = true;
        st.i8tab = kv::make_int8_table(st.bits, st.table.data());
      }
      if (bf16 && kv::int8_scores_fit(st.bits, st.m)) {
        st.bf = true;
        st.bftab = kv::make_bf16_table(st.bits, st.table.data());
        for (int j = 0; j < st.m; ++j) st.order[size_t(j)] = j;  // the bf16 kernel's accumulators are in natural order
      }
      off += pad16(st.m);
      s.streams.push_back(std::move(st));
    }
  }
  s.width = std::max(off, 16);
  return s;
}

struct Ctx {
  const KvCache* cache;
  int layer;
  int D, Hkv, G, window, BT;
  float scale;
  Side k, v;
  const AttendQuery* q;
  int64_t qts, qhs, ots, ohs;
};

struct Item {
  int b, g, t0, t1;
  int64_t row0;   // first query row of sequence b
  int ql, len;
  size_t ws;      // offset of its partial state in the workspace
};

// Per-item partial state: m[R], l[R], acc[R][k.. v.width], win[R][Dp].
struct State {
  float* m;
  float* l;
  float* acc;
  float* win;
};
size_t state_floats(int R, int vwidth, int Dp) { return size_t(R) * (2 + size_t(vwidth) + size_t(Dp)); }
State state_at(float* base, int R, int vwidth) {
  return {base, base + R, base + 2 * R, base + 2 * R + size_t(R) * vwidth};
}

// The tokens of a block as kernel runs: codes and scalars of one side, page by page (codes of a
// quad layout: the block's rows unpacked into `rows`, one run).
struct Runs {
  std::vector<const uint8_t*> codes, scalars;
  std::vector<int> count;
  std::vector<uint8_t> rows;
  const uint8_t* rows_base = nullptr;
  int rows_count = 0;
  kv::TokenRun c, s;
};

void build_runs(const Side& sd, const KvSeqView& sv, int g, int pos, int n, Runs& r) {
  const int pt = int(sd.lay.page_tokens);
  r.codes.clear();
  r.scalars.clear();
  r.count.clear();
  for (int t = pos; t < pos + n;) {
    const int end = std::min(pos + n, (t / pt + 1) * pt);
    const kv::TokenBytes tb = kv::token_bytes(sd.pool, sd.lay, sv, g, t);
    r.codes.push_back(tb.codes);
    r.scalars.push_back(tb.scalars);
    r.count.push_back(end - t);
    t = end;
  }
  r.c = kv::TokenRun{r.codes.data(), r.count.data(), int(r.count.size()), sd.lay.codes_bytes, n};
  r.s = kv::TokenRun{r.scalars.data(), r.count.data(), int(r.count.size()), sd.lay.scalar_bytes, n};
  if (sd.lay.quad_bits) {
    r.rows.resize(size_t(n) * sd.lay.codes_bytes);
    kv::gather_rows(sd.pool, sd.lay, sv, g, pos, n, r.rows.data());
    r.rows_base = r.rows.data();
    r.rows_count = n;
    r.c = kv::TokenRun{&r.rows_base, &r.rows_count, 1, sd.lay.codes_bytes, n};
  }
}

// Pulls the head blocks of the pages of tokens [pos, pos+n) towards the cache: pages are
// scattered, so the hardware prefetcher cannot see the next one coming.
void prefetch_pages(const Side& sd, const KvSeqView& sv, int g, int pos, int n) {
  const int pt = int(sd.lay.page_tokens);
  for (int t = pos; t < pos + n; t = (t / pt + 1) * pt) {
    const kv::TokenBytes tb = kv::token_bytes(sd.pool, sd.lay, sv, g, t);
    const int cnt = std::min(pos + n, (t / pt + 1) * pt) - t;
    const uint8_t* end_c = tb.codes + size_t(cnt) * sd.lay.codes_bytes;
    for (const uint8_t* p = tb.codes; p < end_c; p += 64) __builtin_prefetch(p);
    if (sd.lay.scalar_bytes) __builtin_prefetch(tb.scalars);
  }
}

// Coefficient of a stream for the run's tokens: the part norm, times κ·γ for QJL signs.
void stream_coef(const Side& sd, const Stream& st, const kv::TokenRun& scalars, float* coef, float* tmp) {
  kv::load_scalars(scalars, st.scalar_off, sd.fp32_scalars, coef);
  if (st.qjl) {
    kv::load_scalars(scalars, st.gamma_off, sd.fp32_scalars, tmp);
    for (int t = 0; t < scalars.n; ++t) coef[t] *= st.kappa * tmp[t];
  }
}

struct Scratch {
  std::vector<float> s, tmp, w, coef, coef2, x;
  std::vector<kv::Int8Query> q8;  // per K stream (int8-scored streams only)
  std::vector<uint8_t> codes;
  Runs k, v;
};

// Decodes the run's tokens (generic codecs) into S.x [n][D] and returns them as a float run.
kv::TokenRun decode_run(const Side& sd, const Runs& r, int D, Scratch& S, const uint8_t*& base, int& count) {
  const size_t cb = sd.lay.codes_bytes, sb = sd.lay.scalar_bytes, cs = cb + sb;
  int t = 0;
  for (size_t i = 0; i < r.count.size(); ++i)
    for (int k = 0; k < r.count[i]; ++k, ++t) {
      std::memcpy(&S.codes[size_t(t) * cs], r.codes[i] + size_t(k) * cb, cb);
      if (sb) std::memcpy(&S.codes[size_t(t) * cs + cb], r.scalars[i] + size_t(k) * sb, sb);
    }
  if (sd.rotated) sd.rotated->decode_rotated(S.codes.data(), size_t(t), S.x.data(), size_t(D));
  else sd.codec->decode(S.codes.data(), size_t(t), S.x.data(), size_t(D));
  base = reinterpret_cast<const uint8_t*>(S.x.data());
  count = t;
  return kv::TokenRun{&base, &count, 1, size_t(D) * 4, t};
}

// Scores of n encoded tokens at pos.. -> S.s[r][t] (the runs in S.k are built).
void score_encoded(const Ctx& C, const KvSeqView& sv, int g, int pos, int n, const float* qk, int R, Scratch& S) {
  const Side& K = C.k;
  build_runs(K, sv, g, pos, n, S.k);
  const size_t BT = size_t(C.BT);
  float* s = S.s.data();
  if (K.path == Path::kRows) {
    kv::dot_rows(K.rows, C.D, S.k.c, qk, size_t(K.width), R, s, BT);
    return;
  }
  if (K.path == Path::kDecode) {
    const uint8_t* base = nullptr;
    int count = 0;
    const kv::TokenRun x = decode_run(K, S.k, C.D, S, base, count);
    kv::dot_rows(DType::kF32, C.D, x, qk, size_t(K.width), R, s, BT);
    return;
  }
  for (size_t i = 0; i < K.streams.size(); ++i) {
    const Stream& st = K.streams[i];
    float* dst = i == 0 ? s : S.tmp.data();
    if (st.i8) kv::dot_codes_i8(st.bits, st.m, S.k.c, st.codes_off, st.i8tab, S.q8[i], dst, BT);
    else kv::dot_codes(st.bits, st.m, S.k.c, st.codes_off, st.table.data(), qk + st.off, size_t(K.width), R, dst, BT);
    stream_coef(K, st, S.k.s, S.coef.data(), S.coef2.data());
    for (int r = 0; r < R; ++r) {
      if (i == 0) kv::mul_rows(dst + r * BT, S.coef.data(), n, s + r * BT);
      else kv::mul_add_rows(dst + r * BT, S.coef.data(), n, s + r * BT);
    }
  }
}

// acc[R][V.width] += Σ_t p[r][t] v_t for n encoded tokens at pos (p in S.s).
void accumulate_encoded(const Ctx& C, const KvSeqView& sv, int g, int pos, int n, int R, float* acc, Scratch& S) {
  const Side& V = C.v;
  build_runs(V, sv, g, pos, n, S.v);
  const size_t BT = size_t(C.BT), A = size_t(V.width);
  const float* p = S.s.data();
  if (V.path == Path::kRows) {
    kv::acc_rows(V.rows, C.D, S.v.c, p, BT, R, acc, A);
    return;
  }
  if (V.path == Path::kDecode) {
    const uint8_t* base = nullptr;
    int count = 0;
    const kv::TokenRun x = decode_run(V, S.v, C.D, S, base, count);
    kv::acc_rows(DType::kF32, C.D, x, p, BT, R, acc, A);
    return;
  }
  float* w = S.w.data();
  for (const Stream& st : V.streams) {
    stream_coef(V, st, S.v.s, S.coef.data(), S.coef2.data());
    for (int r = 0; r < R; ++r) kv::mul_rows(p + r * BT, S.coef.data(), n, w + r * BT);
    if (st.bf) kv::acc_codes_bf16(st.bits, st.m, S.v.c, st.codes_off, st.bftab, w, BT, R, acc + st.off, A);
    else kv::acc_codes(st.bits, st.m, S.v.c, st.codes_off, st.table.data(), w, BT, R, acc + st.off, A);
  }
}

// Query rows of an item, scaled, in the K side's domain (qk [R][K.width]) and plain (qw [R][Dp]).
void prepare_queries(const Ctx& C, const Item& it, int R, std::vector<float>& qk, std::vector<float>& qw,
                     std::vector<kv::Int8Query>& q8) {
  const int D = C.D, Dp = pad16(D);
  const size_t ns = C.k.streams.size();
  std::vector<std::vector<float>> nat(ns);  // int8 streams: natural-order rows [R][m]
  for (size_t i = 0; i < ns; ++i)
    if (C.k.streams[i].i8) nat[i].assign(size_t(R) * C.k.streams[i].m, 0.f);
  qk.assign(size_t(R) * C.k.width, 0.f);
  qw.assign(size_t(R) * Dp, 0.f);
  std::vector<float> rot(static_cast<size_t>(D)), sk(static_cast<size_t>(D));
  for (int r = 0; r < R; ++r) {
    const int i = r / C.G, h = it.g * C.G + r % C.G;
    float* w = &qw[size_t(r) * Dp];
    kv::load_row(C.q->q, C.q->q_dtype, (it.row0 + i) * C.qts + h * C.qhs, D, w);
    for (int j = 0; j < D; ++j) w[j] *= C.scale;
    float* k = &qk[size_t(r) * C.k.width];
    if (C.k.path != Path::kTq) {
      if (C.k.rotated) C.k.rotated->rotation()->forward(w, k);  // q8r / q4r K: scored rotated
      else std::copy(w, w + D, k);
      continue;
    }
    C.k.tq->rotate(w, rot.data());
    if (C.k.tq->prod()) C.k.tq->sketch(rot.data(), sk.data());
    for (size_t i = 0; i < ns; ++i) {
      const Stream& st = C.k.streams[i];
      const float* src = (st.qjl ? sk.data() : rot.data()) + st.first;
      for (int j = 0; j < st.m; ++j) k[st.off + j] = src[st.order[size_t(j)]];
      if (st.i8) std::copy(src, src + st.m, nat[i].begin() + ptrdiff_t(r) * st.m);
    }
  }
  q8.assign(ns, {});
  for (size_t i = 0; i < ns; ++i)
    if (C.k.streams[i].i8) kv::quantize_query(nat[i].data(), size_t(C.k.streams[i].m), R, C.k.streams[i].m, q8[i]);
}

void run_item(const Ctx& C, const Item& it, float* ws) {
  const int R = C.G * it.ql, D = C.D, Dp = pad16(D), BT = C.BT;
  const KvSeqView sv = C.cache->seq_view(C.layer, C.q->seqs[it.b]);
  State st = state_at(ws, R, C.v.width);
  std::fill(st.m, st.m + R, -INFINITY);
  std::fill(st.l, st.l + R, 0.f);
  std::fill(st.acc, st.acc + size_t(R) * C.v.width, 0.f);
  std::fill(st.win, st.win + size_t(R) * Dp, 0.f);
  std::vector<float> qk, qw;
  Scratch S;
  prepare_queries(C, it, R, qk, qw, S.q8);
  S.s.assign(size_t(R) * BT, 0.f);
  S.tmp.assign(size_t(R) * BT, 0.f);
  S.w.assign(size_t(R) * BT, 0.f);
  S.coef.assign(size_t(BT), 0.f);
  S.coef2.assign(size_t(BT), 0.f);
  if (C.k.path == Path::kDecode || C.v.path == Path::kDecode) {
    S.x.assign(size_t(BT) * D, 0.f);
    S.codes.assign(size_t(BT) * std::max(C.k.codec->code_size(), C.v.codec->code_size()), 0);
  }
  const int first_row_last = it.len - it.ql;  // row r sees <= first_row_last + r/G
  const size_t win_stride = size_t(C.Hkv) * D * 4;
  for (int t = it.t0; t < it.t1;) {
    const bool enc = t < sv.n_encoded;
    int end = std::min(it.t1, t + BT);
    if (enc) end = std::min(end, sv.n_encoded);
    else end = std::min(end, t + (C.window - t % C.window));  // the ring does not wrap inside a block
    const int n = end - t;
    const float* wk = enc ? nullptr : kv::window_row(sv, C.window, C.Hkv, D, false, it.g, t);
    const float* wv = enc ? nullptr : kv::window_row(sv, C.window, C.Hkv, D, true, it.g, t);
    const uint8_t* wkb = reinterpret_cast<const uint8_t*>(wk);
    const uint8_t* wvb = reinterpret_cast<const uint8_t*>(wv);
    if (enc) {
      const int next_end = std::min({it.t1, sv.n_encoded, end + BT});
      if (next_end > end) {  // the next block's pages, while this one computes
        prefetch_pages(C.k, sv, it.g, end, next_end - end);
        prefetch_pages(C.v, sv, it.g, end, next_end - end);
      }
      score_encoded(C, sv, it.g, t, n, qk.data(), R, S);
    } else {
      kv::dot_rows(DType::kF32, D, kv::TokenRun{&wkb, &n, 1, win_stride, n}, qw.data(), size_t(Dp), R, S.s.data(),
                   size_t(BT));
    }
    // Causal mask and online softmax, row by row.
    for (int r = 0; r < R; ++r) {
      float* sr = &S.s[size_t(r) * BT];
      const int last = first_row_last + r / C.G;
      for (int j = std::max(0, last + 1 - t); j < n; ++j) sr[j] = -INFINITY;
      float m_new = 0, sum = 0;
      kv::softmax_block(sr, n, st.m[r], &m_new, &sum);
      if (m_new != st.m[r] && st.m[r] != -INFINITY) {
        const float corr = std::exp(st.m[r] - m_new);
        st.l[r] *= corr;
        kv::scale_row(st.acc + size_t(r) * C.v.width, size_t(C.v.width), corr);
        kv::scale_row(st.win + size_t(r) * Dp, size_t(Dp), corr);
      }
      st.m[r] = m_new;
      st.l[r] += sum;
    }
    if (enc) accumulate_encoded(C, sv, it.g, t, n, R, st.acc, S);
    else kv::acc_rows(DType::kF32, D, kv::TokenRun{&wvb, &n, 1, win_stride, n}, S.s.data(), size_t(BT), R, st.win,
                      size_t(Dp));
    t = end;
  }
}

// Merges the partial states of one (b, g) into the first and writes the output rows.
void finalize(const Ctx& C, const Item* items, int n_items, float* ws) {
  const Item& it = items[0];
  const int R = C.G * it.ql, D = C.D, Dp = pad16(D), A = C.v.width;
  State s0 = state_at(ws + it.ws, R, A);
  for (int k = 1; k < n_items; ++k) {
    State sk = state_at(ws + items[k].ws, R, A);
    for (int r = 0; r < R; ++r) {
      if (sk.m[r] == -INFINITY) continue;  // that range saw nothing for this row
      const float m = std::max(s0.m[r], sk.m[r]);
      const float a0 = s0.m[r] == -INFINITY ? 0.f : std::exp(s0.m[r] - m), ak = std::exp(sk.m[r] - m);
      s0.l[r] = s0.l[r] * a0 + sk.l[r] * ak;
      kv::scale_row(s0.acc + size_t(r) * A, size_t(A), a0);
      kv::scale_row(s0.win + size_t(r) * Dp, size_t(Dp), a0);
      for (int j = 0; j < A; ++j) s0.acc[size_t(r) * A + j] += ak * sk.acc[size_t(r) * A + j];
      for (int j = 0; j < Dp; ++j) s0.win[size_t(r) * Dp + j] += ak * sk.win[size_t(r) * Dp + j];
      s0.m[r] = m;
    }
  }
  std::vector<float> rot(static_cast<size_t>(D)), sk(static_cast<size_t>(D)), out(static_cast<size_t>(D));
  const Side& V = C.v;
  for (int r = 0; r < R; ++r) {
    const float* a = s0.acc + size_t(r) * A;
    if (V.path == Path::kTq) {
      std::fill(rot.begin(), rot.end(), 0.f);
      std::fill(sk.begin(), sk.end(), 0.f);
      for (const Stream& st : V.streams) {
        float* dst = (st.qjl ? sk.data() : rot.data()) + st.first;
        for (int j = 0; j < st.m; ++j) dst[st.order[size_t(j)]] = a[st.off + j];
      }
      if (V.tq->prod()) V.tq->unsketch_add(sk.data(), rot.data());
      V.tq->unrotate(rot.data(), out.data());
    } else if (V.rotated) {
      V.rotated->rotation()->inverse(a, out.data());  // q8r / q4r V: accumulated rotated
    } else {
      std::copy(a, a + D, out.begin());
    }
    const float inv = s0.l[r] > 0 ? 1.0f / s0.l[r] : 0.f;
    const float* w = s0.win + size_t(r) * Dp;
    for (int j = 0; j < D; ++j) out[size_t(j)] = (out[size_t(j)] + w[j]) * inv;
    const int i = r / C.G, h = it.g * C.G + r % C.G;
    kv::store_row(C.q->out, C.q->out_dtype, (it.row0 + i) * C.ots + h * C.ohs, out.data(), D);
  }
}

}  // namespace

const char* attention_simd_target() { return kv::kernel_target(); }

void attend(const KvCache& cache, int layer, const AttendQuery& q, const AttentionOptions& opts) {
  check_attend_query(cache, layer, q);
  TQ_CHECK_ARG(opts.block_tokens >= 1 && opts.block_tokens <= 256, "attend: block_tokens must be in [1, 256], got {}",
               opts.block_tokens);
  TQ_CHECK_ARG(opts.threads >= 0 && opts.kv_splits >= 0, "attend: threads and kv_splits must be >= 0");
  const KvLayerView L = cache.layer_view(layer);
  Ctx C{};
  C.cache = &cache;
  C.layer = layer;
  C.D = cache.head_dim();
  C.Hkv = cache.n_kv_heads();
  C.G = q.heads_q / C.Hkv;
  C.window = std::max(cache.window(), 1);
  C.BT = opts.block_tokens;
  C.scale = q.scale > 0 ? q.scale : float(1.0 / std::sqrt(double(C.D)));
  C.k = make_side(*L.k_codec, L.k_layout, L.k_pool, C.D, opts.int8_scores && kv::int8_scores_available());
  C.v = make_side(*L.v_codec, L.v_layout, L.v_pool, C.D, false, opts.bf16_values && kv::bf16_values_available());
  C.q = &q;
  C.qts = q.q_token_stride ? q.q_token_stride : int64_t(q.heads_q) * C.D;
  C.qhs = q.q_head_stride ? q.q_head_stride : C.D;
  C.ots = q.out_token_stride ? q.out_token_stride : int64_t(q.heads_q) * C.D;
  C.ohs = q.out_head_stride ? q.out_head_stride : C.D;

  int threads = opts.threads;
#ifdef _OPENMP
  if (threads == 0) threads = omp_get_max_threads();
#else
  threads = 1;
#endif
  // Splits: about 4 items per thread over the whole batch, never below 512 tokens per item, in
  // whole blocks; a forced count is capped by the sequence's blocks.
  int64_t total = 0;
  for (int b = 0; b < q.batch; ++b) total += int64_t(cache.seq_len(layer, q.seqs[b])) * C.Hkv;
  const int64_t chunk = std::max<int64_t>(512, (total + 4 * threads - 1) / (4 * threads));
  std::vector<Item> items;
  std::vector<std::pair<int, int>> groups;  // (first item, count) per (b, g)
  size_t ws = 0;
  int64_t row0 = 0;
  const int Dp = pad16(C.D);
  for (int b = 0; b < q.batch; ++b) {
    const int len = cache.seq_len(layer, q.seqs[b]), ql = q.q_lens ? q.q_lens[b] : 1;
    const int blocks = (len + C.BT - 1) / C.BT;
    int splits = opts.kv_splits > 0 ? opts.kv_splits : int((len + chunk - 1) / chunk);
    splits = std::max(1, std::min(splits, blocks));
    for (int g = 0; g < C.Hkv; ++g) {
      groups.emplace_back(int(items.size()), splits);
      for (int sp = 0; sp < splits; ++sp) {
        const int t0 = int(int64_t(blocks) * sp / splits) * C.BT;
        const int t1 = std::min(len, int(int64_t(blocks) * (sp + 1) / splits) * C.BT);
        items.push_back(Item{b, g, t0, t1, row0, ql, len, ws});
        ws += state_floats(C.G * ql, C.v.width, Dp);
      }
    }
    row0 += ql;
  }
  std::vector<float> workspace(ws);
  std::exception_ptr err;
  std::mutex err_mu;
  auto guarded = [&](auto&& f) {
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(err_mu);
      if (!err) err = std::current_exception();
    }
  };
  const int n_items = int(items.size()), n_groups = int(groups.size());
  kv::run_items(n_items, threads, [&](int i) {
    guarded([&] { run_item(C, items[size_t(i)], workspace.data() + items[size_t(i)].ws); });
  });
  if (err) std::rethrow_exception(err);
  kv::run_items(n_groups, threads, [&](int i) {
    guarded([&] { finalize(C, &items[size_t(groups[size_t(i)].first)], groups[size_t(i)].second, workspace.data()); });
  });
  if (err) std::rethrow_exception(err);
}

}  // namespace tq
