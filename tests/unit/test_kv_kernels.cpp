// Attention kernels: every SIMD level this CPU has against the scalar reference, on random data
// with unaligned token ranges, odd row counts and several head dims.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kernels/cpu/kivi_attention.h"
#include "kernels/cpu/kv_attention.h"
#include "kernels/cpu/qblock_attention.h"
#include "kernels/cpu/quant_blocks.h"
#include "kv/minmax_quant.h"

namespace cvq {
namespace {

std::vector<SimdLevel> levels() {
  std::vector<SimdLevel> l;
  for (SimdLevel s : {SimdLevel::Avx2, SimdLevel::Avx512})
    if (cpu_supports(s)) l.push_back(s);
  return l;
}

std::vector<float> randn(size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> x(n);
  for (auto& v : x) v = scale * nd(rng);
  return x;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, float tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol * (1.0f + std::fabs(b[i]))) << what << " at " << i;
}

TEST(KvKernels, HalfScoresAndValues) {
  for (SimdLevel lvl : levels()) {
    for (HalfKind kind : {HalfKind::F16, HalfKind::BF16}) {
      for (int d : {16, 32, 48, 64, 128, 40}) {
        for (int rows : {1, 3, 4, 5, 9}) {
          const int64_t n = 37, stride = d * 3 + 8, ld = n + 5;
          auto kf = randn(size_t(n) * stride, 1);
          std::vector<uint16_t> k(kf.size());
          for (size_t i = 0; i < k.size(); ++i)
            k[i] = kind == HalfKind::F16 ? float_to_fp16(kf[i]) : float_to_bf16(kf[i]);
          auto q = randn(size_t(rows) * d, 2);
          std::vector<float> s_ref(rows * ld, -7.0f), s_simd(rows * ld, -7.0f);
          kv_scores_half_at(SimdLevel::Scalar, kind, q.data(), rows, d, k.data() + 3, stride, n, 0.125f, s_ref.data(),
                            ld);
          kv_scores_half_at(lvl, kind, q.data(), rows, d, k.data() + 3, stride, n, 0.125f, s_simd.data(), ld);
          expect_close(s_simd, s_ref, 1e-5f, "scores d=" + std::to_string(d));
          auto p = randn(size_t(rows) * ld, 3);
          auto o_ref = randn(size_t(rows) * d, 4), o_simd = o_ref;
          kv_values_half_at(SimdLevel::Scalar, kind, p.data(), ld, rows, d, k.data() + 3, stride, n, o_ref.data());
          kv_values_half_at(lvl, kind, p.data(), ld, rows, d, k.data() + 3, stride, n, o_simd.data());
          expect_close(o_simd, o_ref, 1e-5f, "values d=" + std::to_string(d));
        }
      }
    }
  }
}

TEST(KvKernels, ExpSum) {
  for (SimdLevel lvl : levels()) {
    for (int64_t n : {1, 5, 16, 33, 1000, 5000}) {
      auto x = randn(size_t(n), 5, 8.0f);
      float m = x[0];
      for (float v : x) m = std::max(m, v);
      auto a = x, b = x;
      const float sa = kv_exp_sum_at(SimdLevel::Scalar, a.data(), n, m);
      const float sb = kv_exp_sum_at(lvl, b.data(), n, m);
      EXPECT_NEAR(sb, sa, 2e-6f * sa);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(b[i], a[i], 1e-6f * a[i] + 1e-30f) << i;
    }
  }
}

TEST(KvKernels, KiviMatchesReferenceOnUnalignedRanges) {
  for (SimdLevel lvl : levels()) {
    for (int bits : {1, 2, 4}) {
      for (int G : {8, 16, 32, 64}) {
        for (int d : {32, 64, 128}) {
          if (d % G != 0) continue;
          const int heads = 2, D = heads * d, n_groups = 5, T = n_groups * G;
          const int words = packed_words(G, bits);
          auto kx = randn(size_t(T) * D, 11);
          std::vector<uint32_t> kc(size_t(n_groups) * D * words);
          std::vector<uint16_t> ks(size_t(n_groups) * D), kz(ks.size());
          for (int g = 0; g < n_groups; ++g)
            for (int c = 0; c < D; ++c)
              minmax_quantize_pack(kx.data() + size_t(g) * G * D + c, D, G, bits,
                                   kc.data() + (size_t(g) * D + c) * words, &ks[size_t(g) * D + c],
                                   &kz[size_t(g) * D + c]);
          const int ng = D / G;
          std::vector<uint32_t> vc(size_t(T) * ng * words);
          std::vector<uint16_t> vs(size_t(T) * ng), vz(vs.size());
          for (int t = 0; t < T; ++t)
            for (int j = 0; j < ng; ++j)
              minmax_quantize_pack(kx.data() + size_t(t) * D + j * G, 1, G, bits,
                                   vc.data() + (size_t(t) * ng + j) * words, &vs[size_t(t) * ng + j],
                                   &vz[size_t(t) * ng + j]);
          for (int head = 0; head < heads; ++head) {
            KiviKeyView kv{
                bits, G, words, d, kc.data() + size_t(head) * d * words, ks.data() + head * d, kz.data() + head * d, D};
            KiviValueView vv{bits,
                             G,
                             words,
                             d,
                             vc.data() + size_t(head) * (d / G) * words,
                             vs.data() + head * (d / G),
                             vz.data() + head * (d / G),
                             int64_t(ng) * words,
                             ng};
            for (int rows : {1, 3, 4, 6}) {
              for (auto [t0, t1] : {std::pair<int64_t, int64_t>{0, T}, {3, T - 5}, {G + 1, G + 2}, {7, 7 + 2 * G}}) {
                const int64_t ld = t1 - t0 + 3;
                auto q = randn(size_t(rows) * d, 12);
                std::vector<float> a(rows * ld, -9.0f), b(rows * ld, -9.0f);
                kivi_scores_at(SimdLevel::Scalar, kv, q.data(), rows, 0.2f, t0, t1, a.data(), ld);
                kivi_scores_at(lvl, kv, q.data(), rows, 0.2f, t0, t1, b.data(), ld);
                expect_close(b, a, 2e-5f, "kivi scores b" + std::to_string(bits) + " G" + std::to_string(G));
                auto p = randn(size_t(rows) * ld, 13);
                auto oa = randn(size_t(rows) * d, 14), ob = oa;
                kivi_values_at(SimdLevel::Scalar, vv, p.data(), ld, rows, t0, t1, oa.data());
                kivi_values_at(lvl, vv, p.data(), ld, rows, t0, t1, ob.data());
                expect_close(ob, oa, 2e-5f, "kivi values b" + std::to_string(bits) + " G" + std::to_string(G));
              }
            }
          }
        }
      }
    }
  }
}

TEST(KvKernels, QBlockMatchesReference) {
  for (SimdLevel lvl : levels()) {
    for (QBlockKind kind : {QBlockKind::Q8_0, QBlockKind::Q4_0}) {
      for (int d : {32, 64, 128}) {
        const int heads = 3, D = heads * d, T = 45;
        const int64_t row_bytes = D / 32 * qblock_bytes(kind);
        auto x = randn(size_t(T) * D, 21);
        std::vector<uint8_t> data(size_t(T) * row_bytes);
        for (int t = 0; t < T; ++t) {
          if (kind == QBlockKind::Q8_0) {
            quantize_row_q8_0(x.data() + size_t(t) * D, data.data() + t * row_bytes, D);
          } else {
            quantize_row_q4_0(x.data() + size_t(t) * D, data.data() + t * row_bytes, D);
          }
        }
        for (int rows : {1, 4, 7}) {
          const uint8_t* base = data.data() + 1 * (d / 32) * qblock_bytes(kind);  // head 1
          const int64_t ld = T + 2;
          auto q = randn(size_t(rows) * d, 22);
          std::vector<float> a(rows * ld, 0.0f), b(rows * ld, 0.0f);
          qblock_scores_at(SimdLevel::Scalar, kind, q.data(), rows, d, base, row_bytes, T, 0.3f, a.data(), ld);
          qblock_scores_at(lvl, kind, q.data(), rows, d, base, row_bytes, T, 0.3f, b.data(), ld);
          expect_close(b, a, 2e-5f, "qblock scores");
          auto p = randn(size_t(rows) * ld, 23);
          auto oa = randn(size_t(rows) * d, 24), ob = oa;
          qblock_values_at(SimdLevel::Scalar, kind, p.data(), ld, rows, d, base, row_bytes, T, oa.data());
          qblock_values_at(lvl, kind, p.data(), ld, rows, d, base, row_bytes, T, ob.data());
          expect_close(ob, oa, 2e-5f, "qblock values");
        }
      }
    }
  }
}

}  // namespace
}  // namespace cvq
