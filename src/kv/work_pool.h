// src/kv/work_pool.h — runs the work items of one attention call on the caller and helper threads.
//
// Why not `omp parallel for`: its end barrier waits for every thread of the team, including a
// helper that is still asleep. On a busy machine (other processes on the cores) waking a sleeping
// thread can take a scheduler time slice, and a 0.1 ms decode step then took 12 ms (measured,
// docs/BENCHMARKS.md). Here the caller claims items itself and waits only for items a helper has
// actually started; a helper that wakes after the last item is claimed finds nothing and is not
// waited for. So a step is never slower than running it on the caller alone (plus one item).
#pragma once
#include <functional>

namespace tq::kv {

// Calls f(i) once for every i in [0, n) on at most `threads` threads (the caller included) and
// returns when all calls have returned. f must not throw (wrap it).
void run_items(int n, int threads, const std::function<void(int)>& f);

}  // namespace tq::kv
