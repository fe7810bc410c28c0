#include "kernels/cpu/gemm_bf16.h"

#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/cpu/cpu_features.h"

namespace cvq {
namespace {

bool cpu_has_avx512bf16() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return cpu_supports(SimdLevel::Avx512) && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

bool cpu_has_amx_bf16() {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
  const bool amx_bf16 = (d >> 22) & 1u, amx_tile = (d >> 24) & 1u;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  if (!((c >> 27) & 1u)) return false;  // OSXSAVE
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const bool os_tiles = ((lo >> 17) & 3u) == 3u;  // XTILECFG and XTILEDATA enabled in XCR0
  return amx_bf16 && amx_tile && os_tiles && cpu_has_avx512bf16() && detail::amx_request_permission();
#else
  return false;
#endif
}

Bf16Kernel resolve_kernel() {
  const char* env = std::getenv("COMMVQ_BF16_GEMM");
  if (env && *env) {
    const std::string want = env;
    for (Bf16Kernel k : {Bf16Kernel::Fallback, Bf16Kernel::Avx512Bf16, Bf16Kernel::Amx}) {
      if (want != bf16_kernel_name(k)) continue;
      if (!bf16_kernel_available(k)) throw Error("COMMVQ_BF16_GEMM=" + want + ": this CPU (or OS) does not support it");
      return k;
    }
    throw Error("COMMVQ_BF16_GEMM=" + want + ": expected fallback, avx512bf16 or amx");
  }
  if (bf16_kernel_available(Bf16Kernel::Amx)) return Bf16Kernel::Amx;
  if (bf16_kernel_available(Bf16Kernel::Avx512Bf16)) return Bf16Kernel::Avx512Bf16;
  return Bf16Kernel::Fallback;
}

void gemm_bf16_fallback(const uint16_t* x, int64_t T, int64_t K, const uint16_t* w_packed, int64_t group_stride,
                        int64_t n_rows, float* y, int64_t ldy) {
  thread_local std::vector<float> xf, wf;
  xf.resize(static_cast<size_t>(T * K));
  wf.resize(static_cast<size_t>(n_rows * K));
  for (int64_t i = 0; i < T * K; ++i) xf[i] = bf16_to_float(x[i]);
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint16_t* g = w_packed + (r / kBf16GroupRows) * group_stride + (r % kBf16GroupRows) * 2;
    for (int64_t p = 0; p < K / 2; ++p) {
      wf[r * K + 2 * p] = bf16_to_float(g[p * 2 * kBf16GroupRows]);
      wf[r * K + 2 * p + 1] = bf16_to_float(g[p * 2 * kBf16GroupRows + 1]);
    }
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T), static_cast<int>(n_rows),
              static_cast<int>(K), 1.0f, xf.data(), static_cast<int>(K), wf.data(), static_cast<int>(K), 0.0f, y,
              static_cast<int>(ldy));
}

}  // namespace

const char* bf16_kernel_name(Bf16Kernel k) {
  switch (k) {
    case Bf16Kernel::Fallback:
      return "fallback";
    case Bf16Kernel::Avx512Bf16:
      return "avx512bf16";
    case Bf16Kernel::Amx:
      return "amx";
  }
  return "unknown";
}

bool bf16_kernel_available(Bf16Kernel k) {
  static const bool avx512bf16 = cpu_has_avx512bf16();
  static const bool amx = avx512bf16 && cpu_has_amx_bf16();
  switch (k) {
    case Bf16Kernel::Fallback:
      return true;
    case Bf16Kernel::Avx512Bf16:
      return avx512bf16;
    case Bf16Kernel::Amx:
      return amx;
  }
  return false;
}

Bf16Kernel active_bf16_kernel() {
  static const Bf16Kernel k = resolve_kernel();
  return k;
}

void convert_rows_bf16(const float* x, int64_t ldx, int64_t T, int64_t K, int64_t t0, int64_t t1, uint16_t* out) {
  if (bf16_kernel_available(Bf16Kernel::Avx512Bf16)) {
    detail::convert_rows_bf16_avx512bf16(x, ldx, K, t0, t1, out);
    t0 = t1;
  }
  for (int64_t t = t0; t < t1; ++t) {
    const float* src = x + t * ldx;
    uint16_t* dst = out + t * K;
    for (int64_t k = 0; k < K; ++k) dst[k] = float_to_bf16(src[k]);
  }
  if (t1 == T) {
    const int64_t padded = bf16_padded_tokens(T);
    for (int64_t i = T * K; i < padded * K; ++i) out[i] = 0;
  }
}

void pack_bf16_rows(const float* w, int64_t ldw, int64_t n_rows, int64_t K, uint16_t* packed) {
  if (K % 2 != 0) throw Error("pack_bf16_rows: K must be even (got " + std::to_string(K) + ")");
  const int64_t n_groups = (n_rows + kBf16GroupRows - 1) / kBf16GroupRows;
  const bool fast = bf16_kernel_available(Bf16Kernel::Avx512Bf16);
  for (int64_t g = 0; g < n_groups; ++g) {
    uint16_t* dst = packed + g * kBf16GroupRows * K;
    if (fast) {
      const int n_valid = static_cast<int>(std::min<int64_t>(kBf16GroupRows, n_rows - g * kBf16GroupRows));
      detail::pack_bf16_group_avx512bf16(w + g * kBf16GroupRows * ldw, ldw, n_valid, K, dst);
      continue;
    }
    for (int r = 0; r < kBf16GroupRows; ++r) {
      const int64_t row = g * kBf16GroupRows + r;
      if (row >= n_rows) {
        for (int64_t p = 0; p < K / 2; ++p)
          dst[(p * kBf16GroupRows + r) * 2] = dst[(p * kBf16GroupRows + r) * 2 + 1] = 0;
        continue;
      }
      const float* src = w + row * ldw;
      for (int64_t p = 0; p < K / 2; ++p) {
        dst[(p * kBf16GroupRows + r) * 2] = float_to_bf16(src[2 * p]);
        dst[(p * kBf16GroupRows + r) * 2 + 1] = float_to_bf16(src[2 * p + 1]);
      }
    }
  }
}

void gemm_bf16_strided(Bf16Kernel kernel, const uint16_t* x, int64_t T, int64_t K, const uint16_t* w_packed,
                       int64_t group_stride, int64_t n_rows, float* y, int64_t ldy) {
  if (K % 32 != 0) throw Error("gemm_bf16: K must be a multiple of 32 (got " + std::to_string(K) + ")");
  if (T <= 0 || n_rows <= 0) return;
  switch (kernel) {
    case Bf16Kernel::Amx:
      detail::gemm_bf16_amx(x, T, K, w_packed, group_stride, n_rows, y, ldy);
      return;
    case Bf16Kernel::Avx512Bf16:
      detail::gemm_bf16_avx512bf16(x, T, K, w_packed, group_stride, n_rows, y, ldy);
      return;
    case Bf16Kernel::Fallback:
      gemm_bf16_fallback(x, T, K, w_packed, group_stride, n_rows, y, ldy);
      return;
  }
}

void gemm_bf16(Bf16Kernel kernel, const uint16_t* x, int64_t T, int64_t K, const uint16_t* w_packed, int64_t n_rows,
               float* y, int64_t ldy) {
  gemm_bf16_strided(kernel, x, T, K, w_packed, kBf16GroupRows * K, n_rows, y, ldy);
}

void gemm_bf16(const uint16_t* x, int64_t T, int64_t K, const uint16_t* w_packed, int64_t n_rows, float* y,
               int64_t ldy) {
  gemm_bf16(active_bf16_kernel(), x, T, K, w_packed, n_rows, y, ldy);
}

double gemm_bf16_reference(const uint16_t* x, int64_t K, const uint16_t* w_packed, int64_t row) {
  const uint16_t* g = w_packed + (row / kBf16GroupRows) * kBf16GroupRows * K + (row % kBf16GroupRows) * 2;
  double s = 0.0;
  for (int64_t p = 0; p < K / 2; ++p) {
    s += double(bf16_to_float(x[2 * p])) * bf16_to_float(g[p * 2 * kBf16GroupRows]);
    s += double(bf16_to_float(x[2 * p + 1])) * bf16_to_float(g[p * 2 * kBf16GroupRows + 1]);
  }
  return s;
}

}  // namespace cvq
