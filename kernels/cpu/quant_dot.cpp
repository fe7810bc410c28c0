#include "kernels/cpu/quant_dot.h"

#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/quant_blocks.h"

namespace cvq {
namespace {

std::string type_name(GgmlType t) { return ggml_type_name(static_cast<uint32_t>(t)); }

// Throws for types without a decoder and for n that does not fill whole blocks. Returns the row size.
size_t validate(const char* what, GgmlType t, int64_t n) {
  if (!dequantize_supported(t)) throw Error(std::string(what) + ": unsupported tensor type " + type_name(t));
  const GgmlTypeInfo info = ggml_type_info(t);
  if (n < 0 || n % info.block_elems != 0) {
    throw Error(std::string(what) + ": row length " + std::to_string(n) + " is not a multiple of the " + type_name(t) +
                " block size " + std::to_string(info.block_elems));
  }
  return ggml_row_bytes(t, n);
}

std::vector<float>& row_buffer(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf;
}

double dot_reference_unchecked(GgmlType t, const void* row, const float* x, int64_t n) {
  std::vector<float>& buf = row_buffer(n);  // also for f32: rows need not be 4-byte aligned
  dequantize_row(t, row, buf.data(), n);
  const float* wf = buf.data();
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(wf[i]) * static_cast<double>(x[i]);
  return acc;
}

bool run_kernel(SimdLevel level, GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x,
                int64_t n, float* y) {
  switch (level) {
    case SimdLevel::Avx512:
      return detail::gemv_rows_avx512(t, w, row_bytes, n_rows, x, n, y);
    case SimdLevel::Avx2:
      return detail::gemv_rows_avx2(t, w, row_bytes, n_rows, x, n, y);
    case SimdLevel::Scalar:
      return false;
  }
  return false;
}

}  // namespace

double dot_row_reference(GgmlType t, const void* row, const float* x, int64_t n) {
  validate("dot_row_reference", t, n);
  return dot_reference_unchecked(t, row, x, n);
}

bool gemv_has_fast_path(SimdLevel level, GgmlType t) {
  switch (level) {
    case SimdLevel::Avx512:
      return detail::has_kernel_avx512(t);
    case SimdLevel::Avx2:
      return detail::has_kernel_avx2(t);
    case SimdLevel::Scalar:
      return false;
  }
  return false;
}

void gemv_rows_at(SimdLevel level, GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x,
                  int64_t n, float* y) {
  const size_t need = validate("gemv_rows", t, n);
  if (n_rows < 0) throw Error("gemv_rows: negative row count " + std::to_string(n_rows));
  if (n_rows > 1 && row_bytes < need) {
    throw Error("gemv_rows: row stride " + std::to_string(row_bytes) + " is smaller than a " + type_name(t) +
                " row of " + std::to_string(n) + " elements (" + std::to_string(need) + " bytes)");
  }
  if (!cpu_supports(level)) {
    throw Error(std::string("gemv_rows: this CPU does not support ") + simd_level_name(level));
  }
  if (n_rows == 0) return;
  if (n == 0) {
    for (int64_t r = 0; r < n_rows; ++r) y[r] = 0.0f;
    return;
  }
  if (run_kernel(level, t, w, row_bytes, n_rows, x, n, y)) return;
  if (level == SimdLevel::Scalar || t == GgmlType::F32) {
    for (int64_t r = 0; r < n_rows; ++r) {
      y[r] = static_cast<float>(dot_reference_unchecked(t, w + static_cast<size_t>(r) * row_bytes, x, n));
    }
    return;
  }
  // No dedicated kernel at this level: dequantize each row, then the level's float kernel.
  std::vector<float>& buf = row_buffer(n);
  for (int64_t r = 0; r < n_rows; ++r) {
    dequantize_row(t, w + static_cast<size_t>(r) * row_bytes, buf.data(), n);
    if (!run_kernel(level, GgmlType::F32, reinterpret_cast<const uint8_t*>(buf.data()), 0, 1, x, n, y + r)) {
      double acc = 0.0;
      for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(buf[static_cast<size_t>(i)]) * x[i];
      y[r] = static_cast<float>(acc);
    }
  }
}

float dot_row_at(SimdLevel level, GgmlType t, const void* row, const float* x, int64_t n) {
  float y = 0.0f;
  gemv_rows_at(level, t, static_cast<const uint8_t*>(row), 0, 1, x, n, &y);
  return y;
}

void gemv_rows(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n, float* y) {
  gemv_rows_at(active_simd_level(), t, w, row_bytes, n_rows, x, n, y);
}

void gemv_tokens(GgmlType t, const uint8_t* w, size_t row_bytes, int64_t n_rows, const float* x, int64_t n_tokens,
                 int64_t n, float* y, int64_t ld_y) {
  const SimdLevel level = active_simd_level();
  bool done = false;
  if (n_rows > 0 && n > 0 && n_tokens > 0) {
    (void)validate("gemv_tokens", t, n);
    if (level == SimdLevel::Avx512) done = detail::gemv_tokens_avx512(t, w, row_bytes, n_rows, x, n_tokens, n, y, ld_y);
    if (level == SimdLevel::Avx2) done = detail::gemv_tokens_avx2(t, w, row_bytes, n_rows, x, n_tokens, n, y, ld_y);
  }
  if (!done) {
    for (int64_t k = 0; k < n_tokens; ++k) gemv_rows_at(level, t, w, row_bytes, n_rows, x + k * n, n, y + k * ld_y);
  }
}

float dot_row(GgmlType t, const void* row, const float* x, int64_t n) {
  return dot_row_at(active_simd_level(), t, row, x, n);
}

const char* simd_level_name() { return simd_level_name(active_simd_level()); }

}  // namespace cvq
