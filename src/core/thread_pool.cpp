#include "core/thread_pool.h"

#include <algorithm>
#include <memory>

namespace cvq {
namespace {
std::unique_ptr<ThreadPool> g_pool;
std::mutex g_pool_mu;
int g_requested_threads = 0;

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
    stop_ = true;
  }
  cv_start_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t, int)>* job;
    int64_t n;
    int parts;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_start_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = job_n_;
      parts = job_parts_;
    }
    if (index < parts) run_part(*job, n, parts, index);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) cv_done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain) {
  if (n <= 0) return;
  int parts = static_cast<int>(std::min<int64_t>(n_threads_, std::max<int64_t>(1, n / std::max<int64_t>(1, grain))));
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (busy_ || parts == 1) {  // nested or tiny: run here
      lock.unlock();
      fn(0, n, 0);
      return;
    }
    busy_ = true;
    job_ = &fn;
    job_n_ = n;
    job_parts_ = parts;
    pending_ = n_threads_ - 1;
    ++generation_;
  }
  cv_start_.notify_all();
  run_part(fn, n, parts, 0);
  std::unique_lock<std::mutex> lock(mu_);
  cv_done_.wait(lock, [&] { return pending_ == 0; });
  busy_ = false;
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
