// src/kv/kv_read.h — reading tokens back out of the cache's pages and windows (shared by the
// reference and the fused engine).
#pragma once
#include <cstdint>
#include <cstring>

#include "turboquant/kv_cache.h"

namespace tq::kv {

// Where the codes and scalars of token `pos` (< n_encoded) of KV head `head` live.
struct TokenBytes {
  const uint8_t* codes;
  const uint8_t* scalars;
};
inline TokenBytes token_bytes(const uint8_t* pool, const KvPageLayout& L, const KvSeqView& s, int head, int pos) {
  const uint8_t* page = pool + size_t(s.pages[pos / int(L.page_tokens)]) * L.page_bytes();
  const uint32_t slot = uint32_t(pos % int(L.page_tokens));
  return {page + L.codes_offset(uint32_t(head), slot), page + L.scalars_offset(uint32_t(head), slot)};
}

// Codes of tokens [pos, pos + n) (all < n_encoded) as packed rows, rows[i * codes_bytes]: a copy for
// row layouts, the quads of their 16-token blocks unpacked for quad layouts (L.quad_bits).
void gather_rows(const uint8_t* pool, const KvPageLayout& L, const KvSeqView& s, int head, int pos, int n,
                 uint8_t* rows);

// Copies token `pos`'s encoded vector (codes then scalars, as Codec::decode wants it) into out.
inline void gather_code(const uint8_t* pool, const KvPageLayout& L, const KvSeqView& s, int head, int pos,
                        uint8_t* out) {
  const TokenBytes t = token_bytes(pool, L, s, head, pos);
  if (L.quad_bits) gather_rows(pool, L, s, head, pos, 1, out);
  else std::memcpy(out, t.codes, L.codes_bytes);
  if (L.scalar_bytes) std::memcpy(out + L.codes_bytes, t.scalars, L.scalar_bytes);
}

// Float row of a window token (pos >= n_encoded); v selects the V ring.
inline const float* window_row(const KvSeqView& s, int window, int heads, int dim, bool v, int head, int pos) {
  const float* ring = v ? s.v_window : s.k_window;
  return ring + (size_t(pos % window) * size_t(heads) + size_t(head)) * size_t(dim);
}

}  // namespace tq::kv
