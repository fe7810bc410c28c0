#pragma once
// CPython's `random.Random(seed)` (MT19937 seeded by init_by_array over the seed's 32-bit words),
// reproducing getrandbits, _randbelow, random() and sample() draw for draw — so that few-shot
// examples chosen "with seed 1234" are the ones Python code (lm-eval-harness) would choose.
#include <array>
#include <cstdint>
#include <vector>

namespace cvq {

class PyRandom {
 public:
  explicit PyRandom(uint64_t seed);
  uint32_t genrand_uint32();
  uint64_t getrandbits(int k);     // 0 <= k <= 64
  uint64_t randbelow(uint64_t n);  // n >= 1
  double random();                 // [0, 1), 53 bits
  // random.sample(range(n), k): indices in draw order.
  std::vector<int64_t> sample(int64_t n, int k);

 private:
  std::array<uint32_t, 624> mt_{};
  int mti_ = 625;
};

}  // namespace cvq
