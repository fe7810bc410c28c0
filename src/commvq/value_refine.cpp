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

// Cosine-like score d/sqrt(n) of a candidate; an all-zero y scores below every real direction.
double direction_score(double d, double n) { return n > 1e-20 ? d / std::sqrt(n) : -2.0; }

void set_bit(uint8_t* code, int j, int b) {
  const uint8_t mask = static_cast<uint8_t>(1u << (j & 7));
  code[j >> 3] = static_cast<uint8_t>(b ? (code[j >> 3] | mask) : (code[j >> 3] & ~mask));
}

// One token: cx[j] = C_j·xbar, yc[j] = C_j·y for the current code (y = bᵀC), refined in place.
// Cloned per instruction set (the O(K) updates vectorize; the sums' order is the same in every clone).
__attribute__((target_clones("avx512f", "avx2", "default"))) void refine_token(const ValueRefineTables& tb, int G,
                                                                               const float* cx, double* yc,
                                                                               uint8_t* code, int sweeps) {
  const int K = tb.K;
  const double* gram = tb.gram.data();
  for (int sweep = 0; sweep < sweeps; ++sweep) {
    // y·xbar and y·y from the dots (y is a sum of codewords).
    double yd = 0.0, yn = 0.0;
    for (int j = 0; j < K; ++j) {
      if (!value_code_bit(code, j)) continue;
      yd += cx[j];
      yn += yc[j];
    }
    bool changed = false;
    for (int g = 0; g < G; ++g) {
      const int j0 = 2 * g, j1 = 2 * g + 1;
      const int a0 = value_code_bit(code, j0), a1 = value_code_bit(code, j1);
      const double n0 = gram[static_cast<int64_t>(j0) * K + j0], n1 = gram[static_cast<int64_t>(j1) * K + j1];
      const double c01 = gram[static_cast<int64_t>(j0) * K + j1];
      const double yc0 = yc[j0], yc1 = yc[j1];
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
      const double f0 = best0 - a0, f1 = best1 - a1;
      const double* g0 = gram + static_cast<int64_t>(j0) * K;
      const double* g1 = gram + static_cast<int64_t>(j1) * K;
      for (int j = 0; j < K; ++j) yc[j] += f0 * g0[j] + f1 * g1[j];
      set_bit(code, j0, best0);
      set_bit(code, j1, best1);
      yd = best_d;
      yn = best_n;
      changed = true;
    }
    if (!changed) break;
  }
}

}  // namespace

uint64_t value_codebook_fingerprint(const ValueCodec& codec) {
  uint64_t h = 1469598103934665603ull;
  const auto* bytes = reinterpret_cast<const uint8_t*>(codec.codebook.data());
  const size_t n = codec.codebook.size() * sizeof(float);
  for (size_t i = 0; i < n; ++i) h = (h ^ bytes[i]) * 1099511628211ull;
  return h ^ static_cast<uint64_t>(codec.codebook.size());
}

ValueRefineTables make_value_refine_tables(const ValueCodec& codec) {
  const int D = codec.dim(), K = codec.shape().code_bits();
  ValueRefineTables t;
  t.K = K;
  t.fingerprint = value_codebook_fingerprint(codec);
  std::vector<float> g(static_cast<size_t>(K) * K);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, K, D, 1.0f, codec.codebook.data(), D, codec.codebook.data(),
              D, 0.0f, g.data(), K);
  t.gram.assign(g.begin(), g.end());
  return t;
}

void refine_value_codes(const ValueCodec& codec, const float* xbar, int64_t n, uint8_t* codes, int sweeps,
                        const ValueRefineTables* tables) {
  if (sweeps <= 0 || n <= 0) return;
  ValueRefineTables own;
  if (!tables || tables->fingerprint != value_codebook_fingerprint(codec) || tables->K != codec.shape().code_bits()) {
    own = make_value_refine_tables(codec);
    tables = &own;
  }
  const int D = codec.dim(), K = codec.shape().code_bits(), G = codec.shape().n_groups(),
            CB = codec.shape().code_bytes();
  const float* C = codec.codebook.data();
  constexpr int64_t kBlock = 64;
  const int64_t n_blocks = (n + kBlock - 1) / kBlock;
  ThreadPool::global().parallel_for(n_blocks, [&](int64_t b0, int64_t b1, int) {
    std::vector<float> y(static_cast<size_t>(kBlock) * D), cx(static_cast<size_t>(kBlock) * K), ycf(cx.size());
    std::vector<double> yc(K);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t t0 = b * kBlock;
      const int rows = static_cast<int>(std::min<int64_t>(kBlock, n - t0));
      codec.code_vectors(codes + t0 * CB, rows, y.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, K, D, 1.0f, xbar + t0 * D, D, C, D, 0.0f, cx.data(),
                  K);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, K, D, 1.0f, y.data(), D, C, D, 0.0f, ycf.data(), K);
      for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < K; ++j) yc[j] = ycf[static_cast<size_t>(r) * K + j];
        refine_token(*tables, G, cx.data() + static_cast<size_t>(r) * K, yc.data(), codes + (t0 + r) * CB, sweeps);
      }
    }
  });
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
      for (int j = 0; j < K; ++j)
        b[static_cast<size_t>(r) * K + j] = w * static_cast<float>(value_code_bit(codes + (r0 + r) * CB, j));
      for (int i = 0; i < D; ++i) xw[static_cast<size_t>(r) * D + i] = w * x[(r0 + r) * D + i];
    }
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, K, rows, 1.0f, b.data(), K, 1.0f, btb.data(), K);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, D, rows, 1.0f, b.data(), K, xw.data(), D, 1.0f, btx.data(),
                D);
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
