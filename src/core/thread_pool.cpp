#include "core/thread_pool.h"

#include <algorithm>
#include <memory>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CVQ_PAUSE() _mm_pause()
#else
#define CVQ_PAUSE() std::this_thread::yield()
#endif

namespace cvq {
namespace {
std::unique_ptr<ThreadPool> g_pool;
std::mutex g_pool_mu;
int g_requested_threads = 0;
constexpr int kSpinIterations = 1 << 14;  // ~50-100 us of pause before a worker sleeps

void run_part(const std::function<void(int64_t, int64_t, int)>& fn, int64_t n, int parts, int index) {
  int64_t begin = n * index / parts;
  int64_t end = n * (index + 1) / parts;
  if (begin < end) fn(begin, end, index);
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

// Parts are claimed, not assigned: each participant takes the next unclaimed part of the current
// job (a CAS on a word holding generation | parts | next part), so a worker that is descheduled --
// another process on the same cores -- never holds up a region it has not joined; the caller simply
// runs the remaining parts itself. fn's third argument is the part index (exclusive per part).
bool ThreadPool::run_claimed_part(uint64_t gen) {
  uint64_t w = claim_.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t parts = (w >> 16) & 0xFFFF, next = w & 0xFFFF;
    if ((w >> 32) != (gen & 0xFFFFFFFFu) || next >= parts) return false;
    if (claim_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel)) {
      // The job cannot finish (nor its fields change) before this part is counted done.
      run_part(*job_, job_n_, static_cast<int>(parts), static_cast<int>(next));
      done_.fetch_add(1, std::memory_order_acq_rel);
      return true;
    }
  }
}

void ThreadPool::worker(int index) {
  (void)index;
  uint64_t seen = 0;
  for (;;) {
    int spins = 0;
    while (generation_.load() == seen && !stop_.load()) {
      if (++spins < kSpinIterations) {
        CVQ_PAUSE();
        continue;
      }
      sleepers_.fetch_add(1);
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
      }
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = generation_.load();
    while (run_claimed_part(seen)) {
    }
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain) {
  if (n <= 0) return;
  const int parts =
      static_cast<int>(std::min<int64_t>(n_threads_, std::max<int64_t>(1, n / std::max<int64_t>(1, grain))));
  bool expected = false;
  if (parts == 1 || !busy_.compare_exchange_strong(expected, true)) {  // tiny, or nested: run here
    fn(0, n, 0);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  done_.store(0);
  const uint64_t gen = generation_.load() + 1;
  claim_.store(((gen & 0xFFFFFFFFu) << 32) | (static_cast<uint64_t>(parts) << 16), std::memory_order_release);
  generation_.store(gen);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  while (run_claimed_part(gen)) {
  }
  int spins = 0;
  while (done_.load(std::memory_order_acquire) != parts) {
    if (++spins < kSpinIterations)
      CVQ_PAUSE();
    else
      std::this_thread::yield();
  }
  busy_.store(false);
}

ThreadPool& ThreadPool::global() {
  std::lock_guard<std::mutex> lock(g_pool_mu);
  if (!g_pool) {
    int n = g_requested_threads > 0 ? g_requested_threads : static_cast<int>(std::thread::hardware_concurrency());
    g_pool = std::make_unique<ThreadPool>(std::max(1, n));
  }
  return *g_pool;
}

void ThreadPool::set_global_threads(int n) {
  std::lock_guard<std::mutex> lock(g_pool_mu);
  g_requested_threads = n;
  if (g_pool && g_pool->size() != n) g_pool.reset();
}

}  // namespace cvq
