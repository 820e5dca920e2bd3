// turboquant/layout.h — every byte layout of the project, shared by the C++ (g++) and CUDA (nvcc)
// code. Nothing here allocates or throws; everything is constexpr / inline and usable on the device.
//
// Three layers, each defined once here:
//   1. Packing of b-bit codes (b = 1..8) for d coordinates ("group-plane" packing, below).
//   2. The encoded vector of a codec: a codes section followed by a scalars section (norms, scales).
//   3. The paged KV block of one KV head: page_tokens codes sections, then page_tokens scalar sections.
// docs/LAYOUT.md explains why the packing looks the way it does (cheap GPU unpacking via lop3/prmt).
#pragma once

#include <stddef.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define TQ_HD __host__ __device__ __forceinline__
#else
#define TQ_HD inline
#endif

namespace tq {

// ---------------------------------------------------------------------------------------------
// Codec identifiers. Numbered explicitly and never reused: files (index, cache) store them.
// ---------------------------------------------------------------------------------------------
enum class CodecId : uint8_t {
  kFp32 = 0,     // pass-through, 4 bytes / value
  kFp16 = 1,     // pass-through, IEEE half
  kBf16 = 2,     // pass-through, bfloat16
  kTqMse = 3,    // TurboQuant-mse: rotation + Lloyd-Max codebook per coordinate + norm aside
  kTqProd = 4,   // TurboQuant-prod: mse at b-1 bits + 1-bit QJL sketch of the residual + its norm
  // 5..15 reserved for TurboQuant variants.
  kFp8 = 16,     // e4m3 values, one fp32 scale per vector            (baseline, issue 5)
  kQ8 = 17,      // symmetric int8, one fp16 scale per block of 32     (like ggml q8_0)
  kQ4 = 18,      // symmetric int4, one fp16 scale per block of 32     (like ggml q4_0)
  kQ8r = 19,     // q8 after the randomized Hadamard rotation
  kQ4r = 20,     // q4 after the randomized Hadamard rotation
  kKivi2 = 21,   // KIVI 2-bit (per-channel keys, per-token values, fp16 recent window)
};
inline constexpr int kNumCodecIds = 22;

enum class NormType : uint8_t { kFp16 = 0, kFp32 = 1 };
TQ_HD constexpr uint32_t norm_bytes(NormType t) { return t == NormType::kFp32 ? 4u : 2u; }

// ---------------------------------------------------------------------------------------------
// 1. Packing of b-bit codes ("group-plane" packing)
// ---------------------------------------------------------------------------------------------
// Codes are packed in groups of 32 consecutive coordinates; a full group of b-bit codes takes
// exactly b 32-bit little-endian words (4*b bytes). The b bits of a code are split into planes of
// width 4, 2 and 1 (b=3: 2+1, b=5: 4+1, b=6: 4+2, b=7: 4+2+1, b=8: one 8-bit plane); a plane of
// width w occupies w consecutive words of the group, planes in order of increasing bit offset.
// Inside a plane, code c (0..31) sits at
//   w=8: word c>>2,  bits 8*(c&3)                        (bytes, in order)
//   w=4: word c>>3,  bits 4*(c&7)                        (nibbles, in order)
//   w=2: word c>>4,  bits 4*m + 2*h    with j=c&15, m=j>>1, h=j&1
//   w=1: word 0,     bit  4*m + 2*k + h with k=c>>4, m=(c>>1)&7, h=c&1
// so that one shift and one AND (w=2) or one shift, AND and OR (w=2 plus w=1) turn a word into
// eight 4-bit nibbles, each a code or a code's low bits — the selector form the GPU's byte-permute
// (prmt) takes for a table lookup. The last d%32 codes (the tail) are packed densely, LSB first:
// tail code i at bit b*i of the tail bitstream. The packed size is exactly ceil(d*b/8) bytes.
// ---------------------------------------------------------------------------------------------
inline constexpr int kGroup = 32;

TQ_HD constexpr uint32_t packed_bytes(uint32_t d, uint32_t b) { return (d * b + 7u) / 8u; }

// Plane widths of a b-bit code, lowest bits first; returns the number of planes.
TQ_HD constexpr int plane_widths(int b, int w[3]) {
  if (b == 8) { w[0] = 8; return 1; }
  int n = 0;
  if (b >= 4) { w[n++] = 4; b -= 4; }
  if (b >= 2) { w[n++] = 2; b -= 2; }
  if (b >= 1) { w[n++] = 1; }
  return n;
}

// Bit position of code c (0..31) inside a plane of width w: returns word index (within the plane)
// in *word and the bit shift as return value.
TQ_HD constexpr int plane_pos(int w, int c, int* word) {
  switch (w) {
    case 8: *word = c >> 2; return 8 * (c & 3);
    case 4: *word = c >> 3; return 4 * (c & 7);
    case 2: { *word = c >> 4; const int j = c & 15; return 4 * (j >> 1) + 2 * (j & 1); }
    default: { *word = 0; return 4 * ((c >> 1) & 7) + 2 * (c >> 4) + (c & 1); }
  }
}

// Reference packing: codes[0..d) (each < 2^b) -> out[0..packed_bytes(d,b)). Readable, not fast.
TQ_HD void pack_codes_ref(const uint8_t* codes, uint32_t d, int b, uint8_t* out) {
  const uint32_t groups = d / kGroup;
  for (uint32_t i = 0; i < packed_bytes(d, b); ++i) out[i] = 0;
  int w[3] = {0, 0, 0};
  const int np = plane_widths(b, w);
  for (uint32_t g = 0; g < groups; ++g) {
    uint8_t* gw = out + 4u * b * g;
    int word_base = 0, bit_off = 0;
    for (int p = 0; p < np; ++p) {
      for (int c = 0; c < kGroup; ++c) {
        int word = 0;
        const int sh = plane_pos(w[p], c, &word);
        const uint32_t field = (codes[g * kGroup + c] >> bit_off) & ((1u << w[p]) - 1u);
        const uint32_t bitpos = 32u * (word_base + word) + sh;
        for (int t = 0; t < w[p]; ++t)
          if (field >> t & 1u) gw[(bitpos + t) >> 3] |= uint8_t(1u << ((bitpos + t) & 7));
      }
      word_base += w[p];
      bit_off += w[p];
    }
  }
  uint8_t* tail = out + 4u * b * groups;
  for (uint32_t i = groups * kGroup; i < d; ++i) {
    const uint32_t bitpos = uint32_t(b) * (i - groups * kGroup);
    for (int t = 0; t < b; ++t)
      if (codes[i] >> t & 1u) tail[(bitpos + t) >> 3] |= uint8_t(1u << ((bitpos + t) & 7));
  }
}

// Reference unpacking of one code (coordinate i of d) — the definition the fast paths must match.
TQ_HD uint32_t unpack_code_ref(const uint8_t* packed, uint32_t d, int b, uint32_t i) {
  const uint32_t groups = d / kGroup;
  uint32_t v = 0;
  if (i < groups * kGroup) {
    const uint8_t* gw = packed + 4u * b * (i / kGroup);
    const int c = int(i % kGroup);
    int w[3] = {0, 0, 0};
    const int np = plane_widths(b, w);
    int word_base = 0, bit_off = 0;
    for (int p = 0; p < np; ++p) {
      int word = 0;
      const int sh = plane_pos(w[p], c, &word);
      const uint32_t bitpos = 32u * (word_base + word) + sh;
      for (int t = 0; t < w[p]; ++t) v |= uint32_t(gw[(bitpos + t) >> 3] >> ((bitpos + t) & 7) & 1u) << (bit_off + t);
      word_base += w[p];
      bit_off += w[p];
    }
  } else {
    const uint8_t* tail = packed + 4u * b * groups;
    const uint32_t bitpos = uint32_t(b) * (i - groups * kGroup);
    for (int t = 0; t < b; ++t) v |= uint32_t(tail[(bitpos + t) >> 3] >> ((bitpos + t) & 7) & 1u) << t;
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// 2. Encoded vector of a TurboQuant codec
// ---------------------------------------------------------------------------------------------
// A vector of dimension d is split into at most two parts (fractional rates: the outlier channels,
// chosen from data, form part 0 at bits+1 bits; the rest part 1 at `bits`). Each part is its own
// TurboQuant instance: own rotation, own codebook for its dimension, own norm.
//   codes section  : [mse codes part 0][mse codes part 1][QJL signs part 0][QJL signs part 1]
//                    mse codes: packed_bytes(dim_p, mse_bits_p); QJL signs: packed_bytes(dim_p, 1)
//   scalars section: per part: norm_p (||x_p||), then for prod: gamma_p (||residual|| of the unit
//                    vector x_p/||x_p||); each fp16 or fp32 (NormType)
// Codes are indices into the ascending codebook (code 0 = most negative centroid).
// The encoded vector is the codes section immediately followed by the scalars section.
inline constexpr int kMaxParts = 2;

struct TqPartLayout {
  uint32_t dim;          // coordinates in this part
  uint32_t first;        // offset of this part in the concatenated rotated domain
  uint32_t mse_bits;     // bits of the Lloyd-Max code (0 only for prod at 1 bit total: QJL only)
  uint32_t mse_offset;   // byte offset of the packed mse codes inside the codes section
  uint32_t qjl_offset;   // byte offset of the packed QJL signs (prod only)
  uint32_t norm_offset;  // byte offset of norm_p inside the scalars section
  uint32_t gamma_offset; // byte offset of gamma_p inside the scalars section (prod only)
};

struct TqLayout {
  uint32_t dim = 0;
  uint32_t n_parts = 0;
  uint32_t prod = 0;          // 1 when a QJL stage follows the mse stage
  NormType norm_type = NormType::kFp16;
  uint32_t codes_bytes = 0;   // size of the codes section
  uint32_t scalar_bytes = 0;  // size of the scalars section
  TqPartLayout part[kMaxParts] = {};
  TQ_HD constexpr uint32_t vector_bytes() const { return codes_bytes + scalar_bytes; }
};

// Builds the layout for dimension d: part dims dims[0..n_parts), mse bits per part, prod flag.
TQ_HD constexpr TqLayout make_tq_layout(uint32_t n_parts, const uint32_t* dims, const uint32_t* mse_bits,
                                        bool prod, NormType nt) {
  TqLayout L{};
  L.n_parts = n_parts;
  L.prod = prod ? 1u : 0u;
  L.norm_type = nt;
  uint32_t off = 0, first = 0;
  for (uint32_t p = 0; p < n_parts; ++p) {
    L.part[p].dim = dims[p];
    L.part[p].first = first;
    L.part[p].mse_bits = mse_bits[p];
    L.part[p].mse_offset = off;
    off += packed_bytes(dims[p], mse_bits[p]);
    first += dims[p];
  }
  for (uint32_t p = 0; p < n_parts; ++p) {
    L.part[p].qjl_offset = off;
    if (prod) off += packed_bytes(dims[p], 1);
  }
  L.dim = first;
  L.codes_bytes = off;
  uint32_t s = 0;
  const uint32_t nb = norm_bytes(nt);
  for (uint32_t p = 0; p < n_parts; ++p) {
    L.part[p].norm_offset = s;
    s += nb;
    L.part[p].gamma_offset = s;
    if (prod) s += nb;
  }
  L.scalar_bytes = s;
  return L;
}

// ---------------------------------------------------------------------------------------------
// 3. Paged KV storage
// ---------------------------------------------------------------------------------------------
// The cache stores K and V in separate pools (their codecs may differ). A page of one pool holds
// page_tokens consecutive tokens of one sequence for every KV head of one layer:
//   page = [head 0 block][head 1 block]...[head Hkv-1 block]
//   head block = codes[page_tokens][codes_bytes] then scalars[page_tokens][scalar_bytes],
//                padded to a multiple of 16 bytes
// so that a CUDA block working on (sequence, KV head) streams one contiguous region per page and
// every token's codes start at a fixed stride. codes_bytes/scalar_bytes come from the codec
// (pass-through codecs: codes = raw values, no scalars).
//
// quad_bits > 0 (V of single-part TurboQuant codecs, KvCacheConfig::v_quads): the codes of every 16
// tokens (page_tokens % 16 == 0) are one block in token quads (quad_pos below, quad_bits bits per
// code) instead of 16 rows; codes_offset(head, tok) is then a row address only for tok % 16 == 0,
// the start of its block. Scalars stay per token.
struct KvPageLayout {
  uint32_t page_tokens;
  uint32_t n_kv_heads;
  uint32_t codes_bytes;
  uint32_t scalar_bytes;
  uint32_t quad_bits = 0;
  TQ_HD constexpr uint32_t head_block_bytes() const {
    return (page_tokens * (codes_bytes + scalar_bytes) + 15u) & ~15u;
  }
  TQ_HD constexpr uint32_t page_bytes() const { return n_kv_heads * head_block_bytes(); }
  TQ_HD constexpr uint32_t codes_offset(uint32_t head, uint32_t tok) const {
    return head * head_block_bytes() + tok * codes_bytes;
  }
  TQ_HD constexpr uint32_t scalars_offset(uint32_t head, uint32_t tok) const {
    return head * head_block_bytes() + page_tokens * codes_bytes + tok * scalar_bytes;
  }
};

// ---- V codes in token quads (the layout of the CUDA int8-PV decode, DecodeShape::v_quads) -----
// Single-part codes of b = 1..4 bits at d % 64 == 0. A block of 16 consecutive tokens of one head
// (the same 16 * packed_bytes(d, b) bytes as 16 rows) holds d/2 groups of 32 codes, b words each,
// in the group-plane format of section 1. Group 4g + t + 32j, selector word i (= m-tile 4j + i of
// the decode kernel), nibble m holds the code of token 4t + (m & 3) at coordinate
// 16 (4j + i) + g + 8 (m >> 2): lane (g, t) of a warp reads its int8 mma A fragments (4 tokens of one
// coordinate) as selector words, like K's. Selector word i, nibble m of a group is code
// 8i + m (b = 4) or 16 (i >> 1) + 2m + (i & 1) (b < 4) of the group (plane_pos above).
// Written by the CPU cache (KvCacheConfig::v_quads) and the CUDA append (AppendPlan token_quads).
struct QuadPos {
  int group, code;  // group of the 16-token block, code index within it
};
TQ_HD constexpr QuadPos quad_pos(int b, int tok, int coord) {  // tok: 0..15 within the block
  const int t = tok >> 2, s = tok & 3, mt = coord >> 4, r = (coord >> 3) & 1, g = coord & 7;
  const int i = mt & 3, m = s + 4 * r;
  return {4 * g + t + 32 * (mt >> 2), b == 4 ? 8 * i + m : 16 * (i >> 1) + 2 * m + (i & 1)};
}
TQ_HD constexpr bool quad_fits(uint32_t d, int b) { return d % 64 == 0 && b >= 1 && b <= 4; }
// Reference scatter of one token's codes (codes[0..d), each < 2^b) into its block (2 d b bytes):
// only the token's own bits change, so the tokens of a block may be written in any order.
TQ_HD void quad_put_token(const uint8_t* codes, uint32_t d, int b, int tok, uint8_t* block) {
  int w[3] = {0, 0, 0};
  const int np = plane_widths(b, w);
  for (uint32_t x = 0; x < d; ++x) {
    const QuadPos q = quad_pos(b, tok, int(x));
    uint8_t* gw = block + 4 * b * q.group;
    int word_base = 0, bit_off = 0;
    for (int p = 0; p < np; ++p) {
      int word = 0;
      const int sh = plane_pos(w[p], q.code, &word);
      const uint32_t bitpos = 32u * uint32_t(word_base + word) + uint32_t(sh);
      for (int k = 0; k < w[p]; ++k) {
        const uint32_t bit = bitpos + uint32_t(k), on = (uint32_t(codes[x]) >> (bit_off + k)) & 1u;
        gw[bit >> 3] = uint8_t((gw[bit >> 3] & ~(1u << (bit & 7))) | (on << (bit & 7)));
      }
      word_base += w[p];
      bit_off += w[p];
    }
  }
}
// Inverse of quad_pos: the token (0..15) and coordinate of code `code` of group `group`.
struct QuadTokCoord {
  int tok, coord;
};
TQ_HD constexpr QuadTokCoord quad_unpos(int b, int group, int code) {
  const int i = b == 4 ? code >> 3 : 2 * (code >> 4) + (code & 1), m = b == 4 ? code & 7 : (code >> 1) & 7;
  const int j = group >> 5, g = (group & 31) >> 2, t = group & 3;
  return {4 * t + (m & 3), 16 * (4 * j + i) + g + 8 * (m >> 2)};
}
// Reference gather: code of token `tok` at coordinate x.
TQ_HD uint32_t quad_get_code(const uint8_t* block, int b, int tok, int x) {
  int w[3] = {0, 0, 0};
  const int np = plane_widths(b, w);
  const QuadPos q = quad_pos(b, tok, x);
  const uint8_t* gw = block + 4 * b * q.group;
  uint32_t v = 0;
  int word_base = 0, bit_off = 0;
  for (int p = 0; p < np; ++p) {
    int word = 0;
    const int sh = plane_pos(w[p], q.code, &word);
    const uint32_t bitpos = 32u * uint32_t(word_base + word) + uint32_t(sh);
    for (int k = 0; k < w[p]; ++k) v |= uint32_t(gw[(bitpos + k) >> 3] >> ((bitpos + k) & 7) & 1u) << (bit_off + k);
    word_base += w[p];
    bit_off += w[p];
  }
  return v;
}

// ---- sizes pinned for the shapes the kernels are tuned for (D = 128) ------------------------
namespace layout_checks {
constexpr uint32_t d128[1] = {128};
constexpr uint32_t b3[1] = {3};
constexpr uint32_t b2[1] = {2};
constexpr uint32_t b4[1] = {4};
constexpr uint32_t frac_dims[2] = {32, 96};
constexpr uint32_t frac_bits[2] = {3, 2};
static_assert(packed_bytes(128, 3) == 48 && packed_bytes(128, 4) == 64 && packed_bytes(128, 2) == 32);
static_assert(packed_bytes(100, 4) == 50 && packed_bytes(8, 3) == 3 && packed_bytes(300, 3) == 113);
static_assert(make_tq_layout(1, d128, b3, false, NormType::kFp16).vector_bytes() == 50);  // K3: 48+2
static_assert(make_tq_layout(1, d128, b4, false, NormType::kFp16).vector_bytes() == 66);  // K4: 64+2
static_assert(make_tq_layout(1, d128, b2, true, NormType::kFp16).vector_bytes() == 52);   // tq3p: 32+16+4
static_assert(make_tq_layout(2, frac_dims, frac_bits, false, NormType::kFp16).vector_bytes() == 40);  // tq2.5
static_assert(KvPageLayout{16, 8, 48, 2, }.head_block_bytes() == 800);
}  // namespace layout_checks

}  // namespace tq
