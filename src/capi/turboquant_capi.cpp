// src/capi/turboquant_capi.cpp — the C ABI of turboquant/turboquant.h over the C++ codec, KV cache
// and attention. Every entry point runs inside tq::capi::guard: exceptions become a status and
// the thread's last-error message, never a crash across the boundary.
#include "turboquant/turboquant.h"

#include <cstring>
#include <memory>

#include "turboquant/attention.h"
#include "turboquant/codec.h"
#include "turboquant/error.h"
#include "turboquant/kv_cache.h"

struct tq_codec {
  std::shared_ptr<const tq::Codec> c;
};
struct tq_kv_cache {
  std::unique_ptr<tq::KvCache> c;
};

namespace {

template <typename T>
T* need(T* p, const char* what) {
  TQ_CHECK_ARG(p != nullptr, "{} is null", what);
  return p;
}

// Takes the enum's address and reads its bytes as an int: a C caller may pass any value, and loading
// an out-of-range value as the C++ enum type is undefined behaviour (UBSan flags it).
tq::DType dtype_of(const tq_dtype* p, const char* what) {
  int t = 0;
  std::memcpy(&t, p, sizeof t);
  TQ_CHECK_ARG(t == TQ_F32 || t == TQ_F16 || t == TQ_BF16, "{}: dtype must be TQ_F32, TQ_F16 or TQ_BF16, got {}", what,
               t);
  return static_cast<tq::DType>(t);
}

tq::AttendQuery to_query(const tq_attend_args* a) {
  need(a, "attend args");
  tq::AttendQuery q;
  q.seqs = a->seqs;
  q.q_lens = a->q_lens;
  q.batch = a->batch;
  q.heads_q = a->heads_q;
  q.q = a->q;
  q.q_dtype = dtype_of(&a->q_dtype, "q");
  q.q_token_stride = a->q_token_stride;
  q.q_head_stride = a->q_head_stride;
  q.out = a->out;
  q.out_dtype = dtype_of(&a->out_dtype, "out");
  q.out_token_stride = a->out_token_stride;
  q.out_head_stride = a->out_head_stride;
  q.scale = a->scale;
  return q;
}

}  // namespace

extern "C" {

// ---- codecs -----------------------------------------------------------------------------------

tq_status tq_codec_create(const char* spec, int dim, tq_codec** out) {
  return tq::capi::guard([&] {
    need(out, "out");
    *out = nullptr;
    auto h = std::make_unique<tq_codec>();
    h->c = tq::Codec::create(tq::parse_codec(need(spec, "codec spec")), dim);
    *out = h.release();
  });
}

void tq_codec_destroy(tq_codec* c) { delete c; }

tq_status tq_codec_code_size(const tq_codec* c, size_t* bytes) {
  return tq::capi::guard([&] { *need(bytes, "bytes") = need(c, "codec")->c->code_size(); });
}

tq_status tq_codec_dim(const tq_codec* c, int* dim) {
  return tq::capi::guard([&] { *need(dim, "dim") = need(c, "codec")->c->dim(); });
}

tq_status tq_codec_name(const tq_codec* c, char* buf, size_t len) {
  return tq::capi::guard([&] {
    const std::string n = need(c, "codec")->c->spec().name();
    need(buf, "buf");
    TQ_CHECK_ARG(len >= 1, "buffer length must be >= 1");
    const size_t k = std::min(len - 1, n.size());
    std::memcpy(buf, n.data(), k);
    buf[k] = '\0';
  });
}

tq_status tq_codec_encode(const tq_codec* c, const float* x, size_t n, size_t stride, uint8_t* codes) {
  return tq::capi::guard([&] {
    const tq::Codec& k = *need(c, "codec")->c;
    if (n == 0) return;
    k.encode(need(x, "x"), n, stride ? stride : size_t(k.dim()), need(codes, "codes"));
  });
}

tq_status tq_codec_decode(const tq_codec* c, const uint8_t* codes, size_t n, float* y, size_t stride) {
  return tq::capi::guard([&] {
    const tq::Codec& k = *need(c, "codec")->c;
    if (n == 0) return;
    k.decode(need(codes, "codes"), n, need(y, "y"), stride ? stride : size_t(k.dim()));
  });
}

// ---- KV cache ---------------------------------------------------------------------------------

void tq_kv_cache_config_init(tq_kv_cache_config* cfg) {
  if (!cfg) return;
  std::memset(cfg, 0, sizeof(*cfg));
  cfg->n_layers = 1;
  cfg->n_kv_heads = 1;
  cfg->head_dim = 128;
  cfg->codec = "fp16";
  cfg->page_tokens = 16;
}

tq_status tq_kv_cache_create(const tq_kv_cache_config* cfg, tq_kv_cache** out) {
  return tq::capi::guard([&] {
    need(out, "out");
    *out = nullptr;
    need(cfg, "config");
    tq::KvCacheConfig c;
    c.n_layers = cfg->n_layers;
    c.n_kv_heads = cfg->n_kv_heads;
    c.head_dim = cfg->head_dim;
    c.codec = need(cfg->codec, "config codec");
    c.edge_codec = cfg->edge_codec ? cfg->edge_codec : "fp16";
    c.edge_layers = cfg->edge_layers;
    c.storage = cfg->contiguous ? tq::KvStorage::kContiguous : tq::KvStorage::kPaged;
    c.page_tokens = cfg->page_tokens;
    c.num_pages = cfg->num_pages;
    c.max_seqs = cfg->max_seqs;
    c.max_seq_len = cfg->max_seq_len;
    c.window = cfg->window;
    auto h = std::make_unique<tq_kv_cache>();
    h->c = std::make_unique<tq::KvCache>(c);
    *out = h.release();
  });
}

void tq_kv_cache_destroy(tq_kv_cache* c) { delete c; }

tq_status tq_kv_cache_add_sequence(tq_kv_cache* c, int* seq) {
  return tq::capi::guard([&] {
    need(seq, "seq");
    *seq = need(c, "cache")->c->add_sequence();
  });
}

tq_status tq_kv_cache_remove_sequence(tq_kv_cache* c, int seq) {
  return tq::capi::guard([&] { need(c, "cache")->c->remove_sequence(seq); });
}

tq_status tq_kv_cache_seq_len(const tq_kv_cache* c, int layer, int seq, int* len) {
  return tq::capi::guard([&] {
    need(len, "len");
    *len = need(c, "cache")->c->seq_len(layer, seq);
  });
}

tq_status tq_kv_cache_append(tq_kv_cache* c, int layer, int seq, int n, const void* k, const void* v, tq_dtype dtype,
                             int64_t token_stride, int64_t head_stride) {
  return tq::capi::guard([&] {
    const tq::DType dt = dtype_of(&dtype, "append");
    need(c, "cache")->c->append(layer, seq, n, {k, dt, token_stride, head_stride}, {v, dt, token_stride, head_stride});
  });
}

tq_status tq_kv_cache_memory(const tq_kv_cache* c, tq_kv_memory* out) {
  return tq::capi::guard([&] {
    const tq::KvMemory m = need(c, "cache")->c->memory();
    need(out, "out");
    out->bytes_used = m.bytes_used;
    out->bytes_reserved = m.bytes_reserved;
    out->pages_used = m.pages_used;
    out->pages_total = m.pages_total;
    out->window_bytes = m.window_bytes;
    out->bytes_per_token = m.bytes_per_token;
  });
}

// ---- attention --------------------------------------------------------------------------------

void tq_attend_args_init(tq_attend_args* a) {
  if (!a) return;
  std::memset(a, 0, sizeof(*a));
  a->q_dtype = TQ_F32;
  a->out_dtype = TQ_F32;
}

tq_status tq_kv_cache_attend(const tq_kv_cache* c, int layer, const tq_attend_args* a) {
  return tq::capi::guard([&] {
    tq::AttentionOptions o;
    TQ_CHECK_ARG(need(a, "attend args")->threads >= 0, "threads must be >= 0, got {}", a->threads);
    o.threads = a->threads;
    o.int8_scores = o.bf16_values = a->fp32_scores == 0;
    tq::attend(*need(c, "cache")->c, layer, to_query(a), o);
  });
}

tq_status tq_kv_cache_attend_reference(const tq_kv_cache* c, int layer, const tq_attend_args* a) {
  return tq::capi::guard([&] { tq::attend_reference(*need(c, "cache")->c, layer, to_query(a)); });
}

tq_status tq_attention_dense(const float* q, const float* k, const float* v, int batch, int heads_q, int heads_kv,
                             int T, int head_dim, const char* k_codec, const char* v_codec, float scale, float* out) {
  return tq::capi::guard([&] {
    tq::attention_dense(q, k, v, batch, heads_q, heads_kv, T, head_dim, need(k_codec, "k_codec"),
                        need(v_codec, "v_codec"), scale, out);
  });
}

}  // extern "C"
