#pragma once
// Small portable RNG for the value codec (the same numbers on every standard library): splitmix64
// for streams and a counter-based hash for noise that must not depend on thread scheduling.
#include <cmath>
#include <cstdint>

namespace cvq {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in (0, 1), never exactly 0 or 1 (24-bit mantissa grid, offset by half a step).
inline double u64_to_open_unit(uint64_t x) { return (static_cast<double>(x >> 40) + 0.5) * (1.0 / 16777216.0); }

// Standard Gumbel noise from a counter: deterministic in (seed, a, b).
inline float gumbel_noise(uint64_t seed, uint64_t a, uint64_t b) {
  const uint64_t h = splitmix64(seed ^ splitmix64(a * 0x9e3779b97f4a7c15ull + splitmix64(b)));
  return static_cast<float>(-std::log(-std::log(u64_to_open_unit(h))));
}

class ValueRng {
 public:
  explicit ValueRng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return splitmix64(state_++ * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull); }
  double uniform() { return u64_to_open_unit(next()); }  // (0, 1)
  float uniform_sym(float a) { return static_cast<float>((2.0 * uniform() - 1.0) * a); }
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
  double normal() {
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

}  // namespace cvq
