// ThreadPool: every index once, the part boundaries fixed by (n, parts) whatever thread claims a
// part, part ids unique and below size(), nested calls serial on the caller, many tiny regions in a row.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <tuple>
#include <vector>

#include "core/thread_pool.h"

namespace cvq {
namespace {

TEST(ThreadPool, CoversEveryIndexOnceWithFixedParts) {
  for (int threads : {1, 2, 3, 4, 7}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 5, 64, 1000, 4097}) {
      for (int64_t grain : {1, 16, 300}) {
        std::vector<std::atomic<int>> hits(n);
        std::mutex mu;
        std::set<std::tuple<int64_t, int64_t, int>> seen;
        pool.parallel_for(
            n,
            [&](int64_t b, int64_t e, int part) {
              for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
              std::lock_guard<std::mutex> lock(mu);
              seen.emplace(b, e, part);
            },
            grain);
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(hits[i].load(), 1) << "threads " << threads << " n " << n << " i " << i;
        const int64_t parts = std::min<int64_t>(threads, std::max<int64_t>(1, n / grain));
        std::set<std::tuple<int64_t, int64_t, int>> expected;
        for (int64_t p = 0; p < parts; ++p)
          if (n * p / parts < n * (p + 1) / parts)
            expected.emplace(n * p / parts, n * (p + 1) / parts, static_cast<int>(p));
        EXPECT_EQ(seen, expected) << "threads " << threads << " n " << n << " grain " << grain;
      }
    }
  }
}

TEST(ThreadPool, NestedCallsRunOnTheCaller) {
  ThreadPool& pool = ThreadPool::global();
  std::atomic<int64_t> total{0};
  pool.parallel_for(8, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      pool.parallel_for(100, [&](int64_t b2, int64_t e2, int part) {
        EXPECT_EQ(part, 0);
        total.fetch_add(e2 - b2);
      });
    }
  });
  EXPECT_EQ(total.load(), 800);
}

TEST(ThreadPool, ManyTinyRegionsInARow) {
  ThreadPool pool(3);
  int64_t sum = 0;
  std::vector<int64_t> part_sums(3);
  for (int rep = 0; rep < 20000; ++rep) {
    std::fill(part_sums.begin(), part_sums.end(), 0);
    pool.parallel_for(3, [&](int64_t b, int64_t e, int part) {
      for (int64_t i = b; i < e; ++i) part_sums[part] += i + rep;
    });
    for (int64_t s : part_sums) sum += s;
  }
  int64_t expected = 0;
  for (int rep = 0; rep < 20000; ++rep) expected += 3 + 3 * rep;
  EXPECT_EQ(sum, expected);
}

}  // namespace
}  // namespace cvq
