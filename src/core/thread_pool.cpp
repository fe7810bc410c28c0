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

void ThreadPool::worker(int index) {
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
    if (index < job_parts_) run_part(*job_, job_n_, job_parts_, index);
    pending_.fetch_sub(1);
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
  job_parts_ = parts;
  pending_.store(n_threads_ - 1);
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  run_part(fn, n, parts, 0);
  int spins = 0;
  while (pending_.load() != 0) {
    if (++spins < kSpinIterations) CVQ_PAUSE();
    else std::this_thread::yield();
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
