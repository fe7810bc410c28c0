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

// direction_score(d, n) > thr, with the square root and division only where the answer is close:
// for d > 0 and thr > 0, d² < thr²·n·(1 − 1e-10) puts the exact quotient below thr by far more than
// the rounding of either computation, so the answer is "no" whichever way it is computed.
bool scores_above(double d, double n, double thr) {
  if (n > 1e-20 && d > 0.0 && thr > 0.0 && d * d < thr * thr * n * (1.0 - 1e-10)) return false;
  return direction_score(d, n) > thr;
}

// One token: cx[j] = C_j·xbar, yc[j] = C_j·y for the current code (y = bᵀC), b[j] the code's bits
// (one byte each), all refined in place. Cloned per instruction set (the O(K) updates vectorize; the
// sums' order is the same in every clone). Terms that a bit switches off are added as 0·x instead of
// skipped, which leaves every sum unchanged and avoids a mispredicted branch per bit.
__attribute__((target_clones("avx512f", "avx2", "default"))) void refine_token(const ValueRefineTables& tb, int G,
                                                                               const float* cx, double* yc, uint8_t* b,
                                                                               int sweeps) {
  const int K = tb.K;
  const float* gram = tb.gram.data();
  for (int sweep = 0; sweep < sweeps; ++sweep) {
    // y·xbar and y·y from the dots (y is a sum of codewords).
    double yd = 0.0, yn = 0.0;
    for (int j = 0; j < K; ++j) {
      const double on = b[j];
      yd += on * static_cast<double>(cx[j]);
      yn += on * yc[j];
    }
    bool changed = false;
    double current = direction_score(yd, yn);  // the score of y, carried from one group to the next
    for (int g = 0; g < G; ++g) {
      const int j0 = 2 * g, j1 = 2 * g + 1;
      const int a0 = b[j0], a1 = b[j1];
      const double* pr = tb.pairs.data() + 3 * static_cast<int64_t>(g);
      const double n0 = pr[0], n1 = pr[1], c01 = pr[2];
      const double yc0 = yc[j0], yc1 = yc[j1];
      // The rest r = y − u, u = a0·c0 + a1·c1: its dot with xbar, norm and dots with c0, c1.
      const double rd = yd - (a0 * cx[j0] + a1 * cx[j1]);
      const double rn = yn - 2.0 * (a0 * yc0 + a1 * yc1) + (a0 * n0 + a1 * n1 + 2.0 * a0 * a1 * c01);
      const double r0 = yc0 - (a0 * n0 + a1 * c01), r1 = yc1 - (a0 * c01 + a1 * n1);
      int best0 = a0, best1 = a1;
      double best_d = yd, best_n = yn;
      double best = current;
      for (int o = 0; o < 4; ++o) {
        const int o0 = o & 1, o1 = o >> 1;
        if (o0 == a0 && o1 == a1) continue;
        const double d = rd + o0 * cx[j0] + o1 * cx[j1];
        const double nn = rn + 2.0 * (o0 * r0 + o1 * r1) + o0 * n0 + o1 * n1 + 2.0 * o0 * o1 * c01;
        if (scores_above(d, nn, best + 1e-9)) {
          best = direction_score(d, nn);
          best0 = o0;
          best1 = o1;
          best_d = d;
          best_n = nn;
        }
      }
      if (best0 == a0 && best1 == a1) continue;
      const double f0 = best0 - a0, f1 = best1 - a1;
      const float* g0 = gram + static_cast<int64_t>(j0) * K;
      const float* g1 = gram + static_cast<int64_t>(j1) * K;
      for (int j = 0; j < K; ++j) yc[j] += f0 * static_cast<double>(g0[j]) + f1 * static_cast<double>(g1[j]);
      b[j0] = static_cast<uint8_t>(best0);
      b[j1] = static_cast<uint8_t>(best1);
      yd = best_d;
      yn = best_n;
      current = best;
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
  t.gram.resize(static_cast<size_t>(K) * K);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, K, D, 1.0f, codec.codebook.data(), D, codec.codebook.data(),
              D, 0.0f, t.gram.data(), K);
  const int G = K / 2;
  t.pairs.resize(static_cast<size_t>(G) * 3);
  for (int g = 0; g < G; ++g) {
    const int64_t j0 = 2 * g, j1 = 2 * g + 1;
    t.pairs[3 * g] = t.gram[j0 * K + j0];
    t.pairs[3 * g + 1] = t.gram[j1 * K + j1];
    t.pairs[3 * g + 2] = t.gram[j0 * K + j1];
  }
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
    std::vector<uint8_t> bits(K);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t t0 = b * kBlock;
      const int rows = static_cast<int>(std::min<int64_t>(kBlock, n - t0));
      codec.code_vectors(codes + t0 * CB, rows, y.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, K, D, 1.0f, xbar + t0 * D, D, C, D, 0.0f, cx.data(),
                  K);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, K, D, 1.0f, y.data(), D, C, D, 0.0f, ycf.data(), K);
      for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < K; ++j) yc[j] = ycf[static_cast<size_t>(r) * K + j];
        uint8_t* code = codes + (t0 + r) * CB;
        for (int j = 0; j < K; ++j) bits[j] = static_cast<uint8_t>(value_code_bit(code, j));
        refine_token(*tables, G, cx.data() + static_cast<size_t>(r) * K, yc.data(), bits.data(), sweeps);
        std::fill(code, code + CB, uint8_t{0});
        for (int j = 0; j < K; ++j) code[j >> 3] = static_cast<uint8_t>(code[j >> 3] | (bits[j] << (j & 7)));
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
