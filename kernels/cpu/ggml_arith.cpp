// Portable versions of llama.cpp's CPU arithmetic (see ggml_arith.h). Compiled with
// -ffp-contract=off (CMakeLists.txt): every fused multiply-add here is an explicit std::fmaf, and no
// other product may be fused, or the bits change.
#include "kernels/cpu/ggml_arith.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/cpu/cpu_features.h"

namespace cvq {
namespace {

bool use_avx512() {
  static const bool yes = active_simd_level() == SimdLevel::Avx512 && detail::ggml_arith_avx512_compiled();
  return yes;
}

float hsum8(const float* a) { return ((a[4] + a[0]) + (a[6] + a[2])) + ((a[5] + a[1]) + (a[7] + a[3])); }

float f16_round(float x) { return fp16_to_float(float_to_fp16(x)); }

// One Q4_1 row against one activation row.
float dot_q4_1_row(const uint8_t* w, const int8_t* q, const float* d, const float* s, int64_t nb) {
  float acc[8] = {};
  float summs = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = w + b * 20;
    uint16_t dh, mh;
    std::memcpy(&dh, blk, 2);
    std::memcpy(&mh, blk + 2, 2);
    summs = std::fmaf(fp16_to_float(mh), s[b], summs);
    const float dd = fp16_to_float(dh) * d[b];
    const int8_t* qb = q + b * 32;
    for (int l = 0; l < 8; ++l) {
      int sum = 0;
      for (int k = 4 * l; k < 4 * l + 4; ++k) {
        const int wq = k < 16 ? (blk[4 + k] & 15) : (blk[4 + k - 16] >> 4);
        sum += wq * qb[k];
      }
      acc[l] = std::fmaf(dd, static_cast<float>(sum), acc[l]);
    }
  }
  return hsum8(acc) + summs;
}

float dot_q8_0_row(const uint8_t* w, const int8_t* q, const float* d, int64_t nb) {
  float acc[8] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = w + b * 34;
    uint16_t dh;
    std::memcpy(&dh, blk, 2);
    const float dd = fp16_to_float(dh) * d[b];
    const int8_t* wq = reinterpret_cast<const int8_t*>(blk + 2);
    const int8_t* qb = q + b * 32;
    for (int l = 0; l < 8; ++l) {
      int sum = 0;
      for (int k = 4 * l; k < 4 * l + 4; ++k) sum += wq[k] * qb[k];
      acc[l] = std::fmaf(dd, static_cast<float>(sum), acc[l]);
    }
  }
  return hsum8(acc);
}

}  // namespace

void ggml_quantize_q8(const float* x, int64_t rows, int64_t cols, GgmlQ8Rows& out) {
  if (cols % 32 != 0)
    throw Error("llama.cpp arithmetic: rows of " + std::to_string(cols) + " values are not whole blocks of 32");
  out.rows = rows;
  out.blocks = cols / 32;
  out.q.resize(static_cast<size_t>(rows * cols));
  out.d.resize(static_cast<size_t>(rows * out.blocks));
  out.s.resize(out.d.size());
  for (int64_t b = 0; b < rows * out.blocks; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      const int v = static_cast<int>(std::nearbyint(xb[i] * id));  // round half to even, as the SIMD path
      out.q[b * 32 + i] = static_cast<int8_t>(v);
      sum += v;
    }
    out.d[b] = f16_round(d);
    out.s[b] = f16_round(d * static_cast<float>(sum));
  }
}

void detail::ggml_matmul_q4_1_scalar(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const GgmlQ8Rows& a,
                                     float* y, int64_t ldy) {
  for (int64_t t = 0; t < a.rows; ++t) {
    const int8_t* q = a.q.data() + t * a.blocks * 32;
    const float* d = a.d.data() + t * a.blocks;
    const float* s = a.s.data() + t * a.blocks;
    for (int64_t r = r0; r < r1; ++r) y[t * ldy + r] = dot_q4_1_row(w + r * row_bytes, q, d, s, a.blocks);
  }
}

void detail::ggml_matmul_q8_0_scalar(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const GgmlQ8Rows& a,
                                     float* y, int64_t ldy) {
  for (int64_t t = 0; t < a.rows; ++t) {
    const int8_t* q = a.q.data() + t * a.blocks * 32;
    const float* d = a.d.data() + t * a.blocks;
    for (int64_t r = r0; r < r1; ++r) y[t * ldy + r] = dot_q8_0_row(w + r * row_bytes, q, d, a.blocks);
  }
}

float ggml_expf(float x) {
  const float r = 0x1.8p23f;
  const float z = std::fmaf(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = std::fmaf(-n, 0x1.7f7d1cp-20f, std::fmaf(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j = std::fmaf(
      std::fmaf(std::fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, std::fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
      std::fmaf(0x1.ffffecp-1f, b, 1.0f));
  if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
  return std::ldexp(j, static_cast<int>(n));
}

void ggml_rms_norm(const float* x, const float* w, int64_t n, float eps, float* y) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void detail::ggml_swiglu_scalar(const float* gate, const float* up, int64_t n, float* y) {
  // Whole groups of 16 take ggml's vector exp; a tail takes libm's expf, as ggml_silu_f32 does.
  const int64_t n16 = n / 16 * 16;
  for (int64_t i = 0; i < n16; ++i) y[i] = gate[i] / (1.0f + ggml_expf(0.0f - gate[i])) * up[i];
  for (int64_t i = n16; i < n; ++i) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void ggml_rope_angles(int32_t pos, float theta_scale, int n_pairs, float* cos_out, float* sin_out) {
  float theta = static_cast<float>(pos);
  for (int f = 0; f < n_pairs; ++f) {
    cos_out[f] = std::cos(theta);
    sin_out[f] = std::sin(theta);
    theta *= theta_scale;
  }
}

void ggml_rope_pair(float* x, float* y, float c, float s) {
  const float x0 = *x, y0 = *y;
  *x = std::fmaf(x0, c, -(y0 * s));
  *y = std::fmaf(x0, s, y0 * c);
}

float ggml_hsum16(const float* a) {
  float t3[8], t6[4];
  for (int i = 0; i < 8; ++i) t3[i] = a[8 + i] + a[i];
  for (int i = 0; i < 4; ++i) t6[i] = t3[4 + i] + t3[i];
  return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

float ggml_dot16(const float* a, const float* b, int64_t k) {
  float acc[16] = {};
  for (int64_t l = 0; l < k; l += 16) {
    for (int i = 0; i < 16; ++i) acc[i] = std::fmaf(a[l + i], b[l + i], acc[i]);
  }
  return ggml_hsum16(acc);
}

void detail::ggml_attend_row_scalar(const float* q, const float* k, const float* v, int64_t stride, int64_t n, int d,
                                    float scale, float* out, float* scratch) {
  const int64_t np = (n + 15) / 16 * 16;
  float* qh = scratch;     // d
  float* p = scratch + d;  // np
  float* acc = p + np;     // 16 × d
  for (int i = 0; i < d; ++i) qh[i] = f16_round(q[i]);
  float mx = -INFINITY;
  for (int64_t t = 0; t < n; ++t) {
    p[t] = ggml_dot16(k + t * stride, qh, d) * scale;
    mx = std::max(mx, p[t]);
  }
  double sum = 0.0;
  for (int64_t c = 0; c < np; c += 16) {
    float e[16];
    for (int i = 0; i < 16; ++i) e[i] = c + i < n ? ggml_expf(p[c + i] - mx) : 0.0f;
    sum += static_cast<double>(ggml_hsum16(e));
    std::copy(e, e + 16, p + c);
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t t = 0; t < n; ++t) p[t] = f16_round(p[t] * inv);
  // out[c] = hsum16 over lanes l of the fma chain of positions t ≡ l (mod 16), in order.
  std::fill(acc, acc + 16 * d, 0.0f);
  for (int64_t t = 0; t < n; ++t) {
    float* lane = acc + (t % 16) * d;
    const float* vt = v + t * stride;
    for (int c = 0; c < d; ++c) lane[c] = std::fmaf(vt[c], p[t], lane[c]);
  }
  float lanes[16];
  for (int c = 0; c < d; ++c) {
    for (int l = 0; l < 16; ++l) lanes[l] = acc[l * d + c];
    out[c] = ggml_hsum16(lanes);
  }
}

void ggml_matmul_q4_1(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const GgmlQ8Rows& a, float* y,
                      int64_t ldy) {
  if (use_avx512()) return detail::ggml_matmul_q4_1_avx512(w, row_bytes, r0, r1, a, y, ldy);
  detail::ggml_matmul_q4_1_scalar(w, row_bytes, r0, r1, a, y, ldy);
}

void ggml_matmul_q8_0(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const GgmlQ8Rows& a, float* y,
                      int64_t ldy) {
  if (use_avx512()) return detail::ggml_matmul_q8_0_avx512(w, row_bytes, r0, r1, a, y, ldy);
  detail::ggml_matmul_q8_0_scalar(w, row_bytes, r0, r1, a, y, ldy);
}

void ggml_swiglu(const float* gate, const float* up, int64_t n, float* y) {
  if (use_avx512()) return detail::ggml_swiglu_avx512(gate, up, n, y);
  detail::ggml_swiglu_scalar(gate, up, n, y);
}

void ggml_attend_row(const float* q, const float* k, const float* v, int64_t stride, int64_t n, int d, float scale,
                     float* out, float* scratch) {
  if (d % 16 != 0) throw Error("llama.cpp arithmetic: head dim " + std::to_string(d) + " is not a multiple of 16");
  if (use_avx512()) return detail::ggml_attend_row_avx512(q, k, v, stride, n, d, scale, out, scratch);
  detail::ggml_attend_row_scalar(q, k, v, stride, n, d, scale, out, scratch);
}

}  // namespace cvq
