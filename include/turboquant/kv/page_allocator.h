// turboquant/kv/page_allocator.h — fixed pool of page ids with free and reuse (as vLLM's block
// allocator): the KV cache hands pages to sequences as they grow and takes them back when a
// sequence is removed. All-or-nothing: a failed call changes nothing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tq {

class PageAllocator {
 public:
  explicit PageAllocator(int32_t num_pages);

  int32_t num_pages() const { return int32_t(used_.size()); }
  int32_t num_free() const { return int32_t(free_.size()); }
  int32_t num_used() const { return num_pages() - num_free(); }
  bool is_allocated(int32_t id) const { return id >= 0 && id < num_pages() && used_[size_t(id)] != 0; }

  // Appends n page ids to *out. Throws tq::Error(kOutOfMemory) naming n and the free count when
  // fewer than n are free; *out and the pool are unchanged then.
  void allocate(int32_t n, std::vector<int32_t>* out);
  // Returns pages to the pool. Throws tq::Error(kOutOfRange / kInvalidArgument) for an id outside
  // the pool, a page that is not allocated, or an id listed twice; nothing is freed then.
  void release(const int32_t* ids, size_t n);

 private:
  // LIFO: the most recently freed page is handed out first (its bytes are likely still cached).
  std::vector<int32_t> free_;
  std::vector<uint8_t> used_;
};

}  // namespace tq
