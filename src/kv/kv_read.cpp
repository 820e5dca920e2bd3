// src/kv/kv_read.cpp — rows out of quad-layout pages (layout.h, quad_pos): a 16-token block's groups
// are unpacked 32 codes at a time (a group is a packed 32-code vector) and scattered to their
// (token, coordinate) by quad_unpos, then the wanted tokens are packed as rows.
#include "kv/kv_read.h"

#include <algorithm>
#include <vector>

#include "turboquant/pack.h"

namespace tq::kv {

void gather_rows(const uint8_t* pool, const KvPageLayout& L, const KvSeqView& s, int head, int pos, int n,
                 uint8_t* rows) {
  const int pt = int(L.page_tokens), b = int(L.quad_bits);
  if (!b) {
    for (int t = pos; t < pos + n;) {
      const int end = std::min(pos + n, (t / pt + 1) * pt);
      std::memcpy(rows + size_t(t - pos) * L.codes_bytes, token_bytes(pool, L, s, head, t).codes,
                  size_t(end - t) * L.codes_bytes);
      t = end;
    }
    return;
  }
  const int d = int(L.codes_bytes) * 8 / b;
  thread_local std::vector<uint8_t> codes, group;
  codes.resize(size_t(16) * d);
  group.resize(32);
  for (int t0 = pos & ~15; t0 < pos + n; t0 += 16) {  // blocks never straddle pages (pt % 16 == 0)
    const uint8_t* block = token_bytes(pool, L, s, head, t0).codes;
    for (int gi = 0; gi < d / 2; ++gi) {
      unpack_codes(block + size_t(4) * b * gi, 32, b, group.data());
      for (int c = 0; c < 32; ++c) {
        const QuadTokCoord q = quad_unpos(b, gi, c);
        codes[size_t(q.tok) * d + size_t(q.coord)] = group[size_t(c)];
      }
    }
    for (int t = std::max(t0, pos); t < std::min(t0 + 16, pos + n); ++t)
      pack_codes(&codes[size_t(t - t0) * d], uint32_t(d), b, rows + size_t(t - pos) * L.codes_bytes);
  }
}

}  // namespace tq::kv
