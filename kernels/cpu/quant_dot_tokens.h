#pragma once
// The ISA-independent half of gemv_tokens (kernels/cpu/quant_dot.h), for quant_dot_avx2.cpp and
// quant_dot_avx512.cpp only: each file brings its own activation type and its quantize/row kernels.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cvq::detail {

// Quantizes every token's x (x + k*n) once into acts[k]. quantize(x) returns the file's thread-local
// activation, or nullptr for float rows (then nothing is stored). Returns whether rows are quantized.
template <class Act, class Quantize>
bool quantize_tokens(std::vector<Act>& acts, const Quantize& quantize, const float* x, int64_t n_tokens, int64_t n) {
  if (static_cast<int64_t>(acts.size()) < n_tokens) acts.resize(static_cast<size_t>(n_tokens));
  bool quantized = false;
  for (int64_t k = 0; k < n_tokens; ++k) {
    if (const Act* a = quantize(x + k * n)) {
      acts[static_cast<size_t>(k)] = *a;
      quantized = true;
    }
  }
  return quantized;
}

// Tiles of 32 rows, each run for every token while it is in cache:
// rows(w_tile, n_rows_in_tile, x_k, act_k or nullptr, y_k + r0).
template <class Act, class Rows>
void gemv_tokens_tiled(const std::vector<Act>& acts, bool quantized, const Rows& rows, const uint8_t* w,
                       size_t row_bytes, int64_t n_rows, const float* x, int64_t n_tokens, int64_t n, float* y,
                       int64_t ld_y) {
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < n_rows; r0 += kTile) {
    const int64_t nr = std::min(kTile, n_rows - r0);
    for (int64_t k = 0; k < n_tokens; ++k) {
      rows(w + static_cast<size_t>(r0) * row_bytes, nr, x + k * n, quantized ? &acts[static_cast<size_t>(k)] : nullptr,
           y + k * ld_y + r0);
    }
  }
}

}  // namespace cvq::detail
