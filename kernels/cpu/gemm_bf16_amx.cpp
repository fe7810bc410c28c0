// AMX-BF16 kernel of gemm_bf16 (kernels/cpu/gemm_bf16.h): per step, 2 token tiles (16 × 32 bf16)
// times 2 weight-group tiles (16 K-pairs × 16 rows) into 4 fp32 accumulator tiles (32 tokens × 32 rows).
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/simd_avx512.h"

namespace cvq::detail {
namespace {

struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0-3: C (16 × 16 fp32); 4, 5: A (16 tokens × 32 bf16); 6, 7: B (16 K-pairs × 16 rows × 2).
void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

// Writes the valid part of a 16 × 16 fp32 tile held in buf (row stride 16).
void store_valid(const float* buf, int64_t rows, int64_t cols, float* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(y + r * ldy, buf + r * 16, static_cast<size_t>(cols) * sizeof(float));
}

}  // namespace

bool amx_request_permission() {
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

void gemm_bf16_amx(const uint16_t* x, int64_t T, int64_t K, const uint16_t* w_packed, int64_t group_stride,
                   int64_t n_rows, float* y, int64_t ldy) {
  configure_tiles();
  const int64_t n_groups = (n_rows + kBf16GroupRows - 1) / kBf16GroupRows;
  const int64_t x_stride = K * 2;
  alignas(64) float c[4][16 * 16];
  for (int64_t g = 0; g < n_groups; g += 2) {
    const bool pair = g + 1 < n_groups;
    const uint16_t* w0 = w_packed + g * group_stride;
    const uint16_t* w1 = w0 + group_stride;
    for (int64_t t = 0; t < T; t += 32) {
      const uint16_t* x0 = x + t * K;
      const uint16_t* x1 = x0 + 16 * K;  // padding rows exist up to round_up(T, 32)
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t k = 0; k < K; k += 32) {
        _tile_loadd(4, x0 + k, x_stride);
        _tile_loadd(5, x1 + k, x_stride);
        _tile_loadd(6, w0 + k * 16, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(2, 5, 6);
        if (pair) {
          _tile_loadd(7, w1 + k * 16, 64);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
      const int64_t rows0 = std::min<int64_t>(16, T - t), rows1 = std::min<int64_t>(16, T - t - 16);
      const int64_t cols0 = std::min<int64_t>(16, n_rows - g * 16),
                    cols1 = pair ? std::min<int64_t>(16, n_rows - (g + 1) * 16) : 0;
      float* yt = y + t * ldy + g * 16;
      const int64_t y_stride = ldy * static_cast<int64_t>(sizeof(float));
      if (rows1 == 16 && cols0 == 16 && (!pair || cols1 == 16)) {  // whole tiles: straight into y
        _tile_stored(0, yt, y_stride);
        _tile_stored(2, yt + 16 * ldy, y_stride);
        if (pair) {
          _tile_stored(1, yt + 16, y_stride);
          _tile_stored(3, yt + 16 * ldy + 16, y_stride);
        }
        continue;
      }
      _tile_stored(0, c[0], 64);
      _tile_stored(2, c[2], 64);
      if (pair) {
        _tile_stored(1, c[1], 64);
        _tile_stored(3, c[3], 64);
      }
      store_valid(c[0], rows0, cols0, yt, ldy);
      if (rows1 > 0) store_valid(c[2], rows1, cols0, yt + 16 * ldy, ldy);
      if (pair) {
        store_valid(c[1], rows0, cols1, yt + 16, ldy);
        if (rows1 > 0) store_valid(c[3], rows1, cols1, yt + 16 * ldy + 16, ldy);
      }
    }
  }
  _tile_release();
}

}  // namespace cvq::detail
