#include "commvq/value_refine.h"

#include <cblas.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <vector>

#include "commvq/value_codec.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace cvq {
namespace {

// Dot products in 16 independent lanes so the compiler vectorizes them without reassociating;
// cloned per instruction set (picked at load time).
__attribute__((target_clones("avx512f", "avx2", "default"))) float dot(const float* a, const float* b, int n) {
  float acc[16] = {};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; ++k) acc[k] += a[i + k] * b[i + k];
  float s = 0.0f;
  for (; i < n; ++i) s += a[i] * b[i];
  for (float x : acc) s += x;
  return s;
}

// y·c0 and y·c1 in one pass.
__attribute__((target_clones("avx512f", "avx2", "default"))) void dot2(const float* y, const float* c0,
                                                                       const float* c1, int n, double* d0,
                                                                       double* d1) {
  float a0[16] = {}, a1[16] = {};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; ++k) {
      a0[k] += y[i + k] * c0[i + k];
      a1[k] += y[i + k] * c1[i + k];
    }
  float s0 = 0.0f, s1 = 0.0f;
  for (; i < n; ++i) {
    s0 += y[i] * c0[i];
    s1 += y[i] * c1[i];
  }
  for (int k = 0; k < 16; ++k) {
    s0 += a0[k];
    s1 += a1[k];
  }
  *d0 = s0;
  *d1 = s1;
}

// Cosine-like score d/sqrt(n) of a candidate; an all-zero y scores below every real direction.
double direction_score(double d, double n) { return n > 1e-20 ? d / std::sqrt(n) : -2.0; }

void set_bit(uint8_t* code, int j, int b) {
  const uint8_t mask = static_cast<uint8_t>(1u << (j & 7));
  code[j >> 3] = static_cast<uint8_t>(b ? (code[j >> 3] | mask) : (code[j >> 3] & ~mask));
}

}  // namespace

void refine_value_codes(const ValueCodec& codec, const float* xbar, int64_t n, uint8_t* codes, int sweeps) {
  if (sweeps <= 0 || n <= 0) return;
  const int D = codec.dim(), K = codec.shape().code_bits(), G = codec.shape().n_groups(), CB = codec.shape().code_bytes();
  const float* C = codec.codebook.data();
  std::vector<float> norms(K), cross(G);
  for (int j = 0; j < K; ++j) norms[j] = dot(C + static_cast<int64_t>(j) * D, C + static_cast<int64_t>(j) * D, D);
  for (int g = 0; g < G; ++g) cross[g] = dot(C + static_cast<int64_t>(2 * g) * D, C + static_cast<int64_t>(2 * g + 1) * D, D);

  ThreadPool::global().parallel_for(
      n,
      [&](int64_t t0, int64_t t1, int) {
        std::vector<float> y(D), cx(K);
        for (int64_t t = t0; t < t1; ++t) {
          const float* xb = xbar + t * D;
          uint8_t* code = codes + t * CB;
          std::fill(y.begin(), y.end(), 0.0f);
          for (int j = 0; j < K; ++j) {
            cx[j] = dot(C + static_cast<int64_t>(j) * D, xb, D);
            if (value_code_bit(code, j)) {
              const float* row = C + static_cast<int64_t>(j) * D;
              for (int i = 0; i < D; ++i) y[i] += row[i];
            }
          }
          for (int sweep = 0; sweep < sweeps; ++sweep) {
            // Exact dot and norm at the start of each sweep (no drift across sweeps).
            double yd = dot(y.data(), xb, D), yn = dot(y.data(), y.data(), D);
            bool changed = false;
            for (int g = 0; g < G; ++g) {
              const int j0 = 2 * g, j1 = 2 * g + 1;
              const float* c0 = C + static_cast<int64_t>(j0) * D;
              const float* c1 = C + static_cast<int64_t>(j1) * D;
              const int a0 = value_code_bit(code, j0), a1 = value_code_bit(code, j1);
              const double n0 = norms[j0], n1 = norms[j1], c01 = cross[g];
              double yc0, yc1;
              dot2(y.data(), c0, c1, D, &yc0, &yc1);
              // The rest r = y − u, u = a0·c0 + a1·c1: its dot with xbar, norm and dots with c0, c1.
              const double rd = yd - (a0 * cx[j0] + a1 * cx[j1]);
              const double rn = yn - 2.0 * (a0 * yc0 + a1 * yc1) + (a0 * n0 + a1 * n1 + 2.0 * a0 * a1 * c01);
              const double r0 = yc0 - (a0 * n0 + a1 * c01), r1 = yc1 - (a0 * c01 + a1 * n1);
              int best0 = a0, best1 = a1;
              double best_d = yd, best_n = yn;
              double best = direction_score(yd, yn);
              for (int o = 0; o < 4; ++o) {
                const int o0 = o & 1, o1 = o >> 1;
                if (o0 == a0 && o1 == a1) continue;
                const double d = rd + o0 * cx[j0] + o1 * cx[j1];
                const double nn = rn + 2.0 * (o0 * r0 + o1 * r1) + o0 * n0 + o1 * n1 + 2.0 * o0 * o1 * c01;
                const double sc = direction_score(d, nn);
                if (sc > best + 1e-9) {
                  best = sc;
                  best0 = o0;
                  best1 = o1;
                  best_d = d;
                  best_n = nn;
                }
              }
              if (best0 == a0 && best1 == a1) continue;
              const float f0 = static_cast<float>(best0 - a0), f1 = static_cast<float>(best1 - a1);
              for (int i = 0; i < D; ++i) y[i] += f0 * c0[i] + f1 * c1[i];
              set_bit(code, j0, best0);
              set_bit(code, j1, best1);
              yd = best_d;
              yn = best_n;
              changed = true;
            }
            if (!changed) break;
          }
        }
      },
      16);
}

void refit_value_codebook(ValueCodec& codec, const uint8_t* codes, const float* x, int64_t n, double ridge,
                          const float* row_weights) {
  const int D = codec.dim(), K = codec.shape().code_bits(), CB = codec.shape().code_bytes();
  if (n <= 0) throw Error("value codebook refit: no tokens");
  // Normal equations accumulated in row blocks: BᵀB [K x K] and BᵀX [K x D].
  constexpr int64_t kRows = 2048;
  std::vector<float> btb(static_cast<size_t>(K) * K, 0.0f), btx(static_cast<size_t>(K) * D, 0.0f);
  std::vector<float> b(static_cast<size_t>(kRows) * K), xw(static_cast<size_t>(kRows) * D);
  for (int64_t r0 = 0; r0 < n; r0 += kRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kRows, n - r0));
    for (int r = 0; r < rows; ++r) {
      const float w = row_weights ? std::sqrt(std::max(0.0f, row_weights[r0 + r])) : 1.0f;
      for (int j = 0; j < K; ++j) b[static_cast<size_t>(r) * K + j] = w * static_cast<float>(value_code_bit(codes + (r0 + r) * CB, j));
      for (int i = 0; i < D; ++i) xw[static_cast<size_t>(r) * D + i] = w * x[(r0 + r) * D + i];
    }
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, K, rows, 1.0f, b.data(), K, 1.0f, btb.data(), K);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, D, rows, 1.0f, b.data(), K, xw.data(), D, 1.0f,
                btx.data(), D);
  }
  Eigen::MatrixXd A(K, K);
  double trace = 0.0;
  for (int i = 0; i < K; ++i) {
    for (int j = i; j < K; ++j) A(i, j) = A(j, i) = btb[static_cast<size_t>(i) * K + j];
    trace += A(i, i);
  }
  const double lambda = ridge * std::max(trace / K, 1e-6);
  for (int i = 0; i < K; ++i) A(i, i) += lambda;
  Eigen::MatrixXd rhs(K, D);
  for (int i = 0; i < K; ++i)
    for (int j = 0; j < D; ++j) rhs(i, j) = btx[static_cast<size_t>(i) * D + j];
  const Eigen::MatrixXd sol = A.ldlt().solve(rhs);
  for (int i = 0; i < K; ++i)
    for (int j = 0; j < D; ++j) codec.codebook[static_cast<size_t>(i) * D + j] = static_cast<float>(sol(i, j));
}

}  // namespace cvq
