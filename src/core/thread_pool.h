#pragma once
// A small persistent pool: parallel_for splits [0, n) into contiguous parts, at most one per thread,
// which the calling thread and the workers claim. Nested calls run serially on the caller.
// Decode issues hundreds of tiny parallel regions per token, so workers spin briefly on an atomic
// generation counter before sleeping on a condition variable: wake-up costs microseconds, not tens.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cvq {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // fn(begin, end, part) over at most size() contiguous parts of [0, n) (fixed boundaries, so results
  // do not depend on scheduling); parts hold at least `grain` items; `part` is unique per part.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);

  // The process-wide pool (size set once by set_global_threads, default: hardware threads).
  static ThreadPool& global();
  static void set_global_threads(int n);

 private:
  void worker(int index);
  bool run_claimed_part(uint64_t gen);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> claim_{0};  // generation (32 bits) | parts (16) | next unclaimed part (16)
  std::atomic<int> done_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> busy_{false};
};

}  // namespace cvq
