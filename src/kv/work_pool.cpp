// src/kv/work_pool.cpp — see work_pool.h.
#include "kv/work_pool.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TQ_PAUSE() _mm_pause()
#else
#define TQ_PAUSE() std::this_thread::yield()
#endif

namespace tq::kv {
namespace {

struct Job {
  const std::function<void(int)>* f = nullptr;  // valid while some item is unfinished
  int n = 0;
  int helpers = 0;                  // helpers allowed to join
  std::atomic<int> joined{0};
  std::atomic<int> next{0};
  std::atomic<int> done{0};
};

// Runs items of the job until none is left.
void work(Job& j) {
  for (int i; (i = j.next.fetch_add(1, std::memory_order_relaxed)) < j.n;) {
    (*j.f)(i);
    j.done.fetch_add(1, std::memory_order_release);
  }
}

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      ++gen_;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void run(int n, int threads, const std::function<void(int)>& f) {
    auto job = std::make_shared<Job>();
    job->f = &f;
    job->n = n;
    job->helpers = threads - 1;
    {
      std::lock_guard<std::mutex> lk(mu_);
      while (int(threads_.size()) < threads - 1) threads_.emplace_back([this] { loop(); });
      job_ = job;
      ++gen_;
    }
    cv_.notify_all();
    work(*job);
    // Items claimed by helpers that are still running: spin, then yield the core (a helper that
    // was preempted mid-item needs it more than we do).
    for (int k = 0; job->done.load(std::memory_order_acquire) < n; ++k) {
      if (k < 4000) TQ_PAUSE();
      else std::this_thread::yield();
    }
    std::lock_guard<std::mutex> lk(mu_);
    if (job_ == job) job_.reset();
  }

 private:
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      // Back-to-back decode steps: spin ~50 us before sleeping, so the next step finds us awake.
      for (int k = 0; k < 2000 && gen_.load(std::memory_order_relaxed) == seen; ++k) TQ_PAUSE();
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return gen_ != seen; });
        seen = gen_;
        if (stop_) return;
        job = job_;
      }
      if (job && job->joined.fetch_add(1) < job->helpers) work(*job);
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
  std::shared_ptr<Job> job_;
  std::atomic<uint64_t> gen_{0};
  bool stop_ = false;
};

}  // namespace

void run_items(int n, int threads, const std::function<void(int)>& f) {
  if (n <= 0) return;
  if (threads <= 1 || n == 1) {
    for (int i = 0; i < n; ++i) f(i);
    return;
  }
  static Pool pool;  // threads live for the process
  static std::mutex one_at_a_time;  // concurrent attend() calls share the helpers in turn
  std::unique_lock<std::mutex> lk(one_at_a_time, std::try_to_lock);
  if (!lk.owns_lock()) {  // another call holds the pool: run on this thread
    for (int i = 0; i < n; ++i) f(i);
    return;
  }
  pool.run(n, threads, f);
}

}  // namespace tq::kv
