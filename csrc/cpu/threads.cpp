// Persistent spin-then-sleep thread pool (see threads.h).
#include "cpu/threads.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>
#include <immintrin.h>

namespace fourbit {
namespace {

struct Pool {
  int nthreads = 1;
  std::vector<std::thread> workers;
  std::mutex run_mu;                          // one parallel_for at a time; others run inline
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<uint64_t> generation{0};
  // Dynamic chunk claiming: `claim` packs job id (24 bits) | chunk count (20 bits) | next chunk (20 bits), so one
  // fetch_add gives a consistent (job, count, index). The caller also claims chunks and waits only for chunks that
  // were actually claimed: a worker descheduled by a busy machine costs nothing (with static chunks a 20 us GEMV
  // took ~540 us whenever another process held the second core).
  std::atomic<uint64_t> claim{0};
  std::atomic<int> done{0};
  std::atomic<int> sleeping{0};
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t n = 0, align = 1;
  int nchunks = 0;
  uint64_t job = 0;
  bool stop = false;

  // Claim and run chunks of the current job until none is left.
  void work() {
    for (;;) {
      uint64_t c = claim.fetch_add(1, std::memory_order_acq_rel);
      uint64_t idx = c & 0xfffff, cnt = (c >> 20) & 0xfffff;
      if (idx >= cnt) return;
      run_chunk(int(idx));
      done.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  // Chunk c of the current job: contiguous, boundaries rounded to `align`.
  void run_chunk(int c) {
    int64_t units = (n + align - 1) / align;
    int64_t b = units * c / nchunks * align, e = units * (c + 1) / nchunks * align;
    if (e > n) e = n;
    if (b < e) (*fn)(b, e);
  }

  // Worker loop: spin ~20k iterations on the generation counter, then sleep on the condition variable.
  void worker(int id) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t g;
      int spins = 0;
      while ((g = generation.load(std::memory_order_acquire)) == seen) {
        // ~4000 pauses (~100-200 us on Zen) keeps back-to-back GEMV calls wake-free without starving torch's own
        // OpenMP threads on a 2-core machine for long (a 20000-pause spin made torch matmuls 10x slower when
        // interleaved with ours).
        if (++spins < 4000) { _mm_pause(); continue; }
        std::unique_lock<std::mutex> lk(mu);
        sleeping.fetch_add(1);
        cv.wait(lk, [&] { return stop || generation.load(std::memory_order_acquire) != seen; });
        sleeping.fetch_sub(1);
        if (stop) return;
        spins = 0;
      }
      seen = g;
      (void)id;
      work();
    }
  }

  Pool() {
    const char* env = std::getenv("FOURBIT_NUM_THREADS");
    int n = env ? std::atoi(env) : int(std::thread::hardware_concurrency());
    nthreads = n < 1 ? 1 : n;
    for (int i = 1; i < nthreads; ++i) workers.emplace_back([this, i] { worker(i); });
  }
  ~Pool() {
    { std::lock_guard<std::mutex> lk(mu); stop = true; generation.fetch_add(1); }
    cv.notify_all();
    for (auto& t : workers) t.join();
  }
};

// The process-wide pool, created on first use.
Pool& pool() { static Pool* p = new Pool(); return *p; }  // leaked on purpose: no join at interpreter exit

}  // namespace

int num_threads() { return pool().nthreads; }

void parallel_for(int64_t n, int64_t align, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  Pool& p = pool();
  if (align < 1) align = 1;
  int64_t units = (n + align - 1) / align;
  if (p.nthreads == 1 || units < 2) { fn(0, n); return; }
  std::unique_lock<std::mutex> run(p.run_mu, std::try_to_lock);
  if (!run.owns_lock()) { fn(0, n); return; }  // nested or concurrent call: run inline
  p.fn = &fn; p.n = n; p.align = align;
  // 4 chunks per thread: enough for balance when a thread starts late, few enough to keep per-chunk setup small
  const int64_t want = int64_t(p.nthreads) * 4;
  p.nchunks = int(units < want ? units : want);
  p.done.store(0, std::memory_order_relaxed);
  p.job = (p.job + 1) & 0xffffff;
  p.claim.store((p.job << 40) | (uint64_t(p.nchunks) << 20), std::memory_order_release);
  {
    std::lock_guard<std::mutex> lk(p.mu);
    p.generation.fetch_add(1, std::memory_order_acq_rel);
  }
  if (p.sleeping.load() > 0) p.cv.notify_all();
  p.work();
  while (p.done.load(std::memory_order_acquire) != p.nchunks) _mm_pause();
  // leave the counter exhausted so late workers of this job claim nothing
  p.claim.store((p.job << 40), std::memory_order_release);
}

}  // namespace fourbit
