// Fuzz target: arbitrary bytes loaded as a FlatIndex file (FlatIndex::load_from_memory). Loading
// must refuse a malformed file with tq::Error (hostile counts, channels, flags, norms, descriptions)
// and never read past the buffer; an index that loads must search, re-rank, reconstruct and remove
// without error, and return only labels it holds.
//
// The last 8 bytes of the input are overwritten with the right FNV-1a checksum, so mutations reach
// the parser instead of stopping at the checksum (checksum refusal is covered by the unit tests).
// Dimensions above 256 are skipped: the file does not carry the rotation, and rebuilding a dense one
// costs O(d^3) time and d^2 memory per (d, seed), cached for the process (by design; see index.h).
// Seeds: fuzz/corpus/index, written by fuzz/make_index_seeds.cpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "index/checksum.h"
#include "turboquant/error.h"
#include "turboquant/index.h"

namespace {
using tq::index_file::fnv1a;

// The first `count` labels must be labels the index holds.
void check_labels(const tq::FlatIndex& idx, const std::vector<int64_t>& labels, size_t count) {
  const std::unordered_set<int64_t> held(idx.ids().begin(), idx.ids().end());
  for (size_t i = 0; i < count; ++i)
    if (!held.count(labels[i])) std::abort();
}

void exercise(tq::FlatIndex& idx) {
  const int d = idx.dim();
  const size_t n = idx.size();
  if (idx.ids().size() != n) std::abort();
  (void)idx.code_size();
  (void)idx.memory_bytes();
  if (n == 0) return;
  const size_t nq = 2;
  std::vector<float> q(nq * size_t(d));
  for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.7f * float(i) + 0.3f);
  const int k = int(std::min<size_t>(n, 4));
  std::vector<float> dist(nq * k);
  std::vector<int64_t> lab(nq * k);
  tq::SearchParams sp;
  sp.threads = 1;
  idx.search(q.data(), nq, d, k, dist.data(), lab.data(), sp);
  check_labels(idx, lab, lab.size());
  sp.exact_adc = true;
  sp.rerank = idx.spec().rerank > 0 ? 2 * k : 0;
  idx.search(q.data(), nq, d, k, dist.data(), lab.data(), sp);
  check_labels(idx, lab, lab.size());
  idx.search_reference(q.data(), 1, d, k, dist.data(), lab.data());
  check_labels(idx, lab, size_t(k));
  std::vector<float> x(d);
  idx.reconstruct(n - 1, x.data());
  const int64_t first = idx.ids()[0];
  const size_t removed = idx.remove_ids(&first, 1);
  if (removed == 0 || idx.size() != n - removed) std::abort();
  if (idx.size() >= size_t(k)) {
    idx.search(q.data(), 1, d, k, dist.data(), lab.data(), tq::SearchParams{});
    check_labels(idx, lab, size_t(k));
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 20 || size > (1u << 20)) return 0;
  uint32_t d;
  std::memcpy(&d, data + 12, 4);  // magic(8) | version(4) | d(4): see src/index/index_io.cpp
  if (d > 256) return 0;
  std::vector<uint8_t> buf(data, data + size);  // exact size: ASan sees any read past the end
  const uint64_t h = fnv1a(buf.data(), size - 8);
  std::memcpy(buf.data() + size - 8, &h, 8);
  try {
    tq::FlatIndex idx = tq::FlatIndex::load_from_memory(buf.data(), buf.size(), "fuzz");
    exercise(idx);
  } catch (const tq::Error&) {
  }
  return 0;
}
