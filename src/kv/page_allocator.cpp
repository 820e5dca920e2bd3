// src/kv/page_allocator.cpp — the page pool behind the paged KV cache.
#include "turboquant/kv/page_allocator.h"

#include <algorithm>

#include "turboquant/error.h"

namespace tq {

PageAllocator::PageAllocator(int32_t num_pages) {
  TQ_CHECK_ARG(num_pages >= 1, "page pool: need at least one page, got {}", num_pages);
  used_.assign(size_t(num_pages), 0);
  free_.resize(size_t(num_pages));
  // Highest id at the bottom of the stack so that a fresh pool hands out 0, 1, 2, ... in order.
  for (int32_t i = 0; i < num_pages; ++i) free_[size_t(i)] = num_pages - 1 - i;
}

void PageAllocator::allocate(int32_t n, std::vector<int32_t>* out) {
  TQ_CHECK_ARG(n >= 0, "page pool: cannot allocate {} pages", n);
  if (n == 0) return;
  TQ_CHECK(n <= num_free(), kOutOfMemory, "KV page pool exhausted: need {} more page(s), {} of {} free", n,
           num_free(), num_pages());
  out->reserve(out->size() + size_t(n));  // may throw bad_alloc: nothing taken yet
  for (int32_t i = 0; i < n; ++i) {
    const int32_t id = free_.back();
    free_.pop_back();
    used_[size_t(id)] = 1;
    out->push_back(id);
  }
}

void PageAllocator::release(const int32_t* ids, size_t n) {
  std::vector<int32_t> sorted(ids, ids + n);
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < n; ++i) {
    TQ_CHECK(sorted[i] >= 0 && sorted[i] < num_pages(), kOutOfRange, "page id {} outside the pool of {} pages",
             sorted[i], num_pages());
    TQ_CHECK_ARG(used_[size_t(sorted[i])] != 0, "page {} is not allocated (double free?)", sorted[i]);
    TQ_CHECK_ARG(i == 0 || sorted[i] != sorted[i - 1], "page {} released twice in one call", sorted[i]);
  }
  for (size_t i = 0; i < n; ++i) {
    used_[size_t(ids[i])] = 0;
    free_.push_back(ids[i]);  // capacity is num_pages: never reallocates past the initial size
  }
}

}  // namespace tq
