// Persistent thread pool for the CPU kernels. Threads are created once (size: env FOURBIT_NUM_THREADS, else
// std::thread::hardware_concurrency()); a GEMV takes tens of microseconds, so per-call thread creation (~50 us)
// would dominate. Workers spin briefly after a job before sleeping, so back-to-back calls wake in < 1 us.
#pragma once
#include <cstdint>
#include <functional>

namespace fourbit {

// Number of threads the pool uses (including the calling thread).
int num_threads();
// Run fn(begin, end) over [0, n) split into at most 4 * num_threads() contiguous chunks (claimed dynamically by the
// caller and the workers) whose boundaries are multiples
// of `align` (except the end). Runs inline when n is small, the pool has 1 thread, or the pool is already busy.
void parallel_for(int64_t n, int64_t align, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace fourbit
