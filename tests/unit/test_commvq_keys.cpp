// CommVQ keys (docs/METHOD.md §3, §4): the commutative codebook, factorized distances and encoding,
// attention scores on codes, and the EM trainer.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <vector>

#include "commvq/key_codebook.h"
#include "commvq/key_em.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "core/thread_pool.h"
#include "kernels/cpu/commvq_assign.h"
#include "kernels/cpu/commvq_scores.h"
#include "kernels/cpu/rope.h"

namespace cvq {
namespace {

constexpr int kSub = 64;
constexpr int kCodes = 4096;

std::vector<float> randn(size_t n, float sd, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

KeyCodebook random_codebook(int d, RopeLayout layout, int stages, uint32_t seed, float sd = 0.1f) {
  std::mt19937 rng(seed);
  KeyCodebook cb(d, layout);
  for (int j = 0; j < stages; ++j) {
    const float s = sd / static_cast<float>(1 + j);
    cb.add_stage(randn(static_cast<size_t>(kSub) * d / 2, s, rng), randn(static_cast<size_t>(kSub) * d / 2, s, rng));
  }
  return cb;
}

double norm2(const float* v, int n) {
  double s = 0.0;
  for (int i = 0; i < n; ++i) s += static_cast<double>(v[i]) * v[i];
  return s;
}

std::vector<SimdLevel> levels() {
  std::vector<SimdLevel> out = {SimdLevel::Scalar};
  if (cpu_supports(SimdLevel::Avx512)) out.push_back(SimdLevel::Avx512);
  return out;
}

TEST(CommvqKeys, StageCountsFollowTheBitBudget) {
  EXPECT_EQ(commvq_key_stages(2, 64), 11);
  EXPECT_EQ(commvq_key_stages(1, 64), 5);
  EXPECT_EQ(commvq_key_stages(2, 128), 21);
  EXPECT_EQ(commvq_key_stages(1, 128), 11);
}

TEST(CommvqKeys, PairSplitRoundTripsForBothLayouts) {
  std::mt19937 rng(1);
  for (RopeLayout layout : {RopeLayout::Adjacent, RopeLayout::HalfSplit}) {
    const std::vector<float> v = randn(3 * 64, 1.0f, rng);
    std::vector<float> p(v.size()), back(v.size());
    to_pair_split(v.data(), 3, 64, layout, p.data());
    from_pair_split(p.data(), 3, 64, layout, back.data());
    EXPECT_EQ(v, back);
    const Rope rope(64, 10000.0, layout);
    EXPECT_EQ(p[5], v[rope.pair_x(5)]);
    EXPECT_EQ(p[32 + 5], v[rope.pair_y(5)]);
  }
}

// Every codeword is Σ M(a,b)·e: rotating it by RoPE equals rotating the basis vectors e1, e2 and then
// applying the same M blocks — RoPE_m·M(a,b) = M(a,b)·RoPE_m, pair by pair.
TEST(CommvqKeys, CodewordsCommuteWithRope) {
  for (RopeLayout layout : {RopeLayout::Adjacent, RopeLayout::HalfSplit}) {
    const int d = 64, h = 32;
    const KeyCodebook cb = random_codebook(d, layout, 2, 7);
    const Rope rope(d, 10000.0, layout);
    std::vector<float> cw(d), cs(h), sn(h);
    for (int32_t pos : {0, 1, 17, 4095, 30000}) {
      rope.angles(pos, cs.data(), sn.data());
      for (int c : {0, 1, 64, 4095, 1234}) {
        cb.codeword(1, c, cw.data());
        rope.apply(cw.data(), 1, pos);
        const float* x = cb.stage_x(1);
        const float* y = cb.stage_y(1);
        const int a = c >> 6, b = c & 63;
        for (int f = 0; f < h; ++f) {
          // M(X_A, Y_A)·(cos, sin) + M(X_B, Y_B)·(−sin, cos)
          const double ex =
              x[a * h + f] * cs[f] - y[a * h + f] * sn[f] + (x[b * h + f] * -sn[f] - y[b * h + f] * cs[f]);
          const double ey =
              y[a * h + f] * cs[f] + x[a * h + f] * sn[f] + (y[b * h + f] * -sn[f] + x[b * h + f] * cs[f]);
          EXPECT_NEAR(cw[rope.pair_x(f)], ex, 1e-6);
          EXPECT_NEAR(cw[rope.pair_y(f)], ey, 1e-6);
        }
      }
    }
    // And the 2×2 identity itself.
    const double a = 0.3, b = -1.7, c = std::cos(0.9), s = std::sin(0.9);
    const double mr[2][2] = {{a * c - b * s, -a * s - b * c}, {b * c + a * s, -b * s + a * c}};  // M(a,b)·R
    const double rm[2][2] = {{c * a - s * b, -c * b - s * a}, {s * a + c * b, -s * b + c * a}};  // R·M(a,b)
    for (int i = 0; i < 2; ++i) {
      for (int k = 0; k < 2; ++k) EXPECT_NEAR(mr[i][k], rm[i][k], 1e-12);
    }
  }
}

TEST(CommvqKeys, FactorizedDistancesEqualBruteForce) {
  std::mt19937 rng(3);
  for (int d : {64, 128}) {
    const KeyCodebook cb = random_codebook(d, RopeLayout::HalfSplit, 1, 11 + d);
    const std::vector<float> cw = cb.explicit_codewords(0);
    for (int trial = 0; trial < 8; ++trial) {
      const std::vector<float> r = randn(d, 0.2f, rng);
      std::vector<float> pq(2 * kSub, 0.0f);
      for (int k = 0; k < d; ++k) {
        for (int s = 0; s < 2 * kSub; ++s) pq[s] += r[k] * cb.proj(0)[k * 2 * kSub + s];
      }
      const float xx = static_cast<float>(norm2(r.data(), d));
      std::vector<std::vector<float>> out;
      std::vector<CommvqArgmin> am;
      for (SimdLevel level : levels()) {
        out.emplace_back(kCodes);
        am.push_back(commvq_pair_sum_argmin_at(level, cb.gfull(0), pq.data(), pq.data() + kSub, xx, out.back().data()));
      }
      double worst = 0.0;
      int brute_best = 0;
      double brute_min = 1e300;
      for (int c = 0; c < kCodes; ++c) {
        double s = 0.0;
        for (int k = 0; k < d; ++k) {
          const double e = static_cast<double>(r[k]) - cw[static_cast<size_t>(c) * d + k];
          s += e * e;
        }
        if (s < brute_min) {
          brute_min = s;
          brute_best = c;
        }
        worst = std::max(worst, std::abs(out[0][c] - s) / s);
        for (size_t l = 1; l < out.size(); ++l) EXPECT_EQ(out[l][c], out[0][c]);  // same association
      }
      EXPECT_LE(worst, 1e-4) << "d=" << d;
      EXPECT_EQ(am[0].index, brute_best);
      for (size_t l = 1; l < am.size(); ++l) {
        EXPECT_EQ(am[l].index, am[0].index);
        EXPECT_EQ(am[l].value, am[0].value);
      }
    }
  }
}

TEST(CommvqKeys, GreedyEncodeFactorizedMatchesBruteForce) {
  for (RopeLayout layout : {RopeLayout::Adjacent, RopeLayout::HalfSplit}) {
    for (int d : {64, 128}) {
      const int stages = 5;
      const KeyCodebook cb = random_codebook(d, layout, stages, 21 + d, 0.08f);
      std::mt19937 rng(5 + d);
      const int n = 60;
      std::vector<float> u = randn(static_cast<size_t>(n) * d, 1.0f, rng);
      for (int t = 0; t < n; ++t) {
        const float inv = 1.0f / static_cast<float>(std::sqrt(norm2(u.data() + t * d, d)));
        for (int k = 0; k < d; ++k) u[t * d + k] *= inv;
      }
      std::vector<uint16_t> batch(static_cast<size_t>(n) * stages);
      cb.encode_batch(u.data(), n, d, batch.data(), stages);
      int ties = 0;
      for (int t = 0; t < n; ++t) {
        std::vector<uint16_t> fast(stages), brute(stages);
        cb.encode(u.data() + t * d, fast.data());
        cb.encode_bruteforce(u.data() + t * d, brute.data());
        for (int j = 0; j < stages; ++j) EXPECT_EQ(batch[t * stages + j], fast[j]);
        // Equal, except where two codewords are at (float-)equal distance: then the paths may split.
        std::vector<double> r(u.begin() + t * d, u.begin() + (t + 1) * d);
        std::vector<float> head(d), pairs(d);
        for (int j = 0; j < stages; ++j) {
          if (fast[j] == brute[j]) {
            cb.codeword(j, fast[j], head.data());
            for (int k = 0; k < d; ++k) r[k] -= head[k];
            continue;
          }
          double df = 0.0, db = 0.0;
          std::vector<float> cf(d), cbw(d);
          cb.codeword(j, fast[j], cf.data());
          cb.codeword(j, brute[j], cbw.data());
          for (int k = 0; k < d; ++k) {
            df += (r[k] - cf[k]) * (r[k] - cf[k]);
            db += (r[k] - cbw[k]) * (r[k] - cbw[k]);
          }
          EXPECT_NEAR(df, db, 1e-5 * db) << "t=" << t << " stage " << j;
          ++ties;
          break;
        }
      }
      EXPECT_LE(ties, 2);
      // Decoding sums the codewords.
      std::vector<float> dec(d), sum(d, 0.0f), cw(d);
      cb.decode(batch.data(), dec.data());
      for (int j = 0; j < stages; ++j) {
        cb.codeword(j, batch[j], cw.data());
        for (int k = 0; k < d; ++k) sum[k] += cw[k];
      }
      for (int k = 0; k < d; ++k) EXPECT_NEAR(dec[k], sum[k], 1e-6);
    }
  }
}

// docs/METHOD.md §6.1: scores computed on codes equal q̃·RoPE_m(k̂_m)/√d, k̂_m decoded and rotated the plain way.
TEST(CommvqKeys, ScoresOnCodesEqualDecodeRopeDot) {
  for (RopeLayout layout : {RopeLayout::Adjacent, RopeLayout::HalfSplit}) {
    for (int d : {64, 128}) {
      const int stages = d == 64 ? 11 : 21;
      const int G = 3;
      const KeyCodebook cb = random_codebook(d, layout, stages, 31 + d);
      const Rope rope(d, d == 64 ? 10000.0 : 500000.0, layout);
      std::mt19937 rng(41 + d);
      const std::vector<int32_t> positions = {0,    1,    2,     63,    127,   128,   1000,
                                              4097, 8191, 20000, 30000, 32767, 65535, 131071};
      const int n = static_cast<int>(positions.size()) + 50;
      std::vector<int32_t> pos(positions);
      std::uniform_int_distribution<int32_t> upos(0, 40000);
      while (static_cast<int>(pos.size()) < n) pos.push_back(upos(rng));
      std::uniform_int_distribution<int> ucode(0, 4095);
      std::vector<uint16_t> codes(static_cast<size_t>(n) * stages);
      for (auto& c : codes) c = static_cast<uint16_t>(ucode(rng));
      std::uniform_real_distribution<float> unorm(0.5f, 30.0f);
      std::vector<float> norms(n);
      for (float& x : norms) x = unorm(rng);
      const std::vector<float> q = randn(static_cast<size_t>(G) * d, 1.0f, rng);  // post-RoPE, head layout
      std::vector<float> q_pairs(q.size());
      to_pair_split(q.data(), G, d, layout, q_pairs.data());

      // Plain reference in double: decode, scale, RoPE (Rope::apply), dot.
      std::vector<double> ref(static_cast<size_t>(G) * n), bound(static_cast<size_t>(G) * n);
      std::vector<float> k(d);
      for (int t = 0; t < n; ++t) {
        cb.decode(codes.data() + t * stages, k.data());
        for (float& x : k) x *= norms[t];
        rope.apply(k.data(), 1, pos[t]);
        for (int g = 0; g < G; ++g) {
          double s = 0.0;
          for (int i = 0; i < d; ++i) s += static_cast<double>(q[g * d + i]) * k[i];
          ref[g * n + t] = s / std::sqrt(static_cast<double>(d));
          bound[g * n + t] = std::sqrt(norm2(q.data() + g * d, d) * norm2(k.data(), d) / d);
        }
      }

      std::vector<float> cos_sin(static_cast<size_t>(n) * d);
      rope_cos_sin_table(rope, pos.data(), n, cos_sin.data());
      std::vector<float> table(commvq_query_table_floats(stages, d, G));
      commvq_query_table(cb.params(), stages, d, q_pairs.data(), G, table.data());

      auto check = [&](const std::vector<float>& s, const char* what) {
        double worst = 0.0, worst_rel = 0.0;
        for (int g = 0; g < G; ++g) {
          for (int t = 0; t < n; ++t) {
            const double e = std::abs(s[g * n + t] - ref[g * n + t]);
            worst = std::max(worst, e / bound[g * n + t]);
            if (std::abs(ref[g * n + t]) > 0.05 * bound[g * n + t])
              worst_rel = std::max(worst_rel, e / std::abs(ref[g * n + t]));
          }
        }
        EXPECT_LE(worst, 1e-5) << what << " d=" << d;      // relative to |q|·|k̂|/√d
        EXPECT_LE(worst_rel, 1e-4) << what << " d=" << d;  // relative to the score
      };
      std::vector<float> s(static_cast<size_t>(G) * n);
      commvq_scores_reference(cb.params(), stages, d, q_pairs.data(), G, codes.data(), stages, norms.data(),
                              cos_sin.data(), n, s.data(), n);
      check(s, "reference");
      for (SimdLevel level : levels()) {
        std::fill(s.begin(), s.end(), 0.0f);
        commvq_scores_codes_at(level, table.data(), stages, d, G, codes.data(), stages, norms.data(), cos_sin.data(), n,
                               s.data(), n);
        check(s, simd_level_name(level));
        std::fill(s.begin(), s.end(), 0.0f);
        commvq_scores_decode_at(level, cb.params(), stages, d, q_pairs.data(), G, codes.data(), stages, norms.data(),
                                cos_sin.data(), n, s.data(), n);
        check(s, "decode");
      }
    }
  }
}

TEST(CommvqKeys, BlockCosSinTableMatchesDirectAngles) {
  for (int d : {64, 128}) {
    const Rope rope(d, d == 64 ? 10000.0 : 500000.0, RopeLayout::HalfSplit);
    const RopeBlockTable blocks(rope, 128);
    std::vector<float> direct(static_cast<size_t>(128) * d), fast(direct.size());
    for (int32_t p0 : {0, 128, 4096, 30000, 131072 - 128}) {
      rope_cos_sin_table(rope, p0, 128, direct.data());
      blocks.fill(p0, 128, fast.data());
      for (size_t i = 0; i < direct.size(); ++i) EXPECT_NEAR(fast[i], direct[i], 5e-7) << p0 << " " << i;
    }
    EXPECT_THROW(blocks.fill(0, 129, fast.data()), Error);
  }
}

TEST(CommvqKeys, SoftAssignmentPrunesOnlyNegligibleWeights) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(0.2f, 2.0f);
  std::vector<float> dist2(kCodes);
  for (float& x : dist2) x = u(rng);
  dist2[1234] = 0.05f;
  dist2[77] = 0.0500001f;
  const float dmin2 = 0.05f;
  for (float tau : {1e-3f, 1e-2f, 0.3f, 1.0f}) {
    std::vector<float> dense_ref(kCodes);
    double z = 0.0;
    for (int c = 0; c < kCodes; ++c) z += std::exp(-(std::sqrt(dist2[c]) - std::sqrt(dmin2)) / tau);
    for (int c = 0; c < kCodes; ++c)
      dense_ref[c] = static_cast<float>(std::exp(-(std::sqrt(dist2[c]) - std::sqrt(dmin2)) / tau) / z);
    for (SimdLevel level : levels()) {
      for (float cutoff : {30.0f, INFINITY}) {
        std::vector<float> counts(kCodes, 0.0f), wa(kSub, 0.0f), wb(kSub, 0.0f), dense(kCodes);
        CommvqSoftScratch scratch;
        commvq_soft_accumulate_at(level, dist2.data(), dmin2, tau, cutoff, counts.data(), wa.data(), wb.data(),
                                  dense.data(), scratch);
        double sum = 0.0, sa = 0.0, sb = 0.0;
        for (int c = 0; c < kCodes; ++c) {
          EXPECT_NEAR(dense[c], dense_ref[c], 1e-6 * (1.0 + dense_ref[c] * 10)) << c;
          EXPECT_EQ(counts[c], dense[c]);
          sum += counts[c];
        }
        for (int s = 0; s < kSub; ++s) {
          sa += wa[s];
          sb += wb[s];
          double row = 0.0;
          for (int b = 0; b < kSub; ++b) row += dense[s * kSub + b];
          EXPECT_NEAR(wa[s], row, 1e-6);
        }
        EXPECT_NEAR(sum, 1.0, 1e-5);
        EXPECT_NEAR(sa, 1.0, 1e-5);
        EXPECT_NEAR(sb, 1.0, 1e-5);
      }
    }
  }
}

// The fused E-step kernel (row minima, only rows within the cutoff) equals argmin + soft assignment.
TEST(CommvqKeys, FusedSoftAssignMatchesTwoStepComposition) {
  std::mt19937 rng(19);
  const KeyCodebook cb = random_codebook(64, RopeLayout::HalfSplit, 1, 23, 0.1f);
  for (int trial = 0; trial < 20; ++trial) {
    const std::vector<float> r = randn(64, trial < 10 ? 0.05f : 0.3f, rng);
    std::vector<float> pq(2 * kSub, 0.0f);
    for (int k = 0; k < 64; ++k) {
      for (int c = 0; c < 2 * kSub; ++c) pq[c] += r[k] * cb.proj(0)[k * 2 * kSub + c];
    }
    std::vector<float> g(cb.gfull(0), cb.gfull(0) + kCodes);
    if (trial % 3 == 0) {  // exact ties: the first index must win everywhere
      const CommvqArgmin am =
          commvq_pair_sum_argmin_at(SimdLevel::Scalar, g.data(), pq.data(), pq.data() + kSub, 0.0f, nullptr);
      const int a = am.index >> 6, b = am.index & 63;
      if (b + 1 < kSub) g[a * kSub + b + 1] = g[a * kSub + b] + pq[kSub + b] - pq[kSub + b + 1];
      if (a + 1 < kSub) g[(a + 1) * kSub + b] = g[a * kSub + b] + pq[a] - pq[a + 1];
    }
    const float xx = static_cast<float>(norm2(r.data(), 64));
    for (float tau : {1e-5f, 1e-3f, 0.05f, 1.0f}) {
      std::vector<std::vector<float>> counts, wa, wb;
      std::vector<CommvqArgmin> ams;
      for (SimdLevel level : levels()) {
        counts.emplace_back(kCodes, 0.0f);
        wa.emplace_back(kSub, 0.0f);
        wb.emplace_back(kSub, 0.0f);
        CommvqSoftScratch scratch;
        ams.push_back(commvq_pair_soft_assign_at(level, g.data(), pq.data(), pq.data() + kSub, xx, tau, 30.0f,
                                                 counts.back().data(), wa.back().data(), wb.back().data(), scratch));
        std::vector<float> out(kCodes);
        const CommvqArgmin with_out =
            commvq_pair_sum_argmin_at(level, g.data(), pq.data(), pq.data() + kSub, xx, out.data());
        const CommvqArgmin without =
            commvq_pair_sum_argmin_at(level, g.data(), pq.data(), pq.data() + kSub, xx, nullptr);
        EXPECT_EQ(with_out.index, ams.back().index);
        EXPECT_EQ(without.index, ams.back().index);
        EXPECT_EQ(with_out.value, ams.back().value);
        EXPECT_EQ(without.value, ams.back().value);
        // Row pruning by the bounds changes nothing, bit for bit.
        std::vector<float> bound(kCommvqBoundFloats);
        commvq_row_bounds(g.data(), bound.data());
        std::vector<float> pc(kCodes, 0.0f), pwa(kSub, 0.0f), pwb(kSub, 0.0f);
        const CommvqArgmin pruned =
            commvq_pair_soft_assign_at(level, g.data(), pq.data(), pq.data() + kSub, xx, tau, 30.0f, pc.data(),
                                       pwa.data(), pwb.data(), scratch, bound.data());
        const CommvqArgmin pruned_min =
            commvq_pair_sum_argmin_at(level, g.data(), pq.data(), pq.data() + kSub, xx, nullptr, bound.data());
        EXPECT_EQ(pruned.index, ams.back().index);
        EXPECT_EQ(pruned.value, ams.back().value);
        EXPECT_EQ(pruned_min.index, ams.back().index);
        EXPECT_EQ(pruned_min.value, ams.back().value);
        EXPECT_EQ(pc, counts.back());
        EXPECT_EQ(pwa, wa.back());
        EXPECT_EQ(pwb, wb.back());
      }
      for (size_t l = 1; l < ams.size(); ++l) {
        EXPECT_EQ(ams[l].index, ams[0].index);
        for (int c = 0; c < kCodes; ++c) EXPECT_NEAR(counts[l][c], counts[0][c], 1e-5) << c;
        for (int s = 0; s < kSub; ++s) {
          EXPECT_NEAR(wa[l][s], wa[0][s], 1e-5);
          EXPECT_NEAR(wb[l][s], wb[0][s], 1e-5);
        }
      }
    }
  }
}

TEST(CommvqKeys, ArgminTakesTheFirstOfEqualMinima) {
  std::vector<float> g(kCodes, 1.0f), p(kSub, 0.0f), q(kSub, 0.0f);
  for (SimdLevel level : levels()) {
    EXPECT_EQ(commvq_pair_sum_argmin_at(level, g.data(), p.data(), q.data(), 0.0f, nullptr).index, 0);
  }
  g[3000] = 0.0f;
  g[100] = 0.0f;
  g[4095] = 0.0f;
  std::vector<float> out(kCodes);
  for (SimdLevel level : levels()) {
    EXPECT_EQ(commvq_pair_sum_argmin_at(level, g.data(), p.data(), q.data(), 0.0f, nullptr).index, 100);
    EXPECT_EQ(commvq_pair_sum_argmin_at(level, g.data(), p.data(), q.data(), 0.0f, out.data()).index, 100);
    std::vector<float> bound(kCommvqBoundFloats);
    commvq_row_bounds(g.data(), bound.data());
    EXPECT_EQ(commvq_pair_sum_argmin_at(level, g.data(), p.data(), q.data(), 0.0f, nullptr, bound.data()).index, 100);
    CommvqSoftScratch scratch;
    std::vector<float> counts(kCodes, 0.0f), wa(kSub, 0.0f), wb(kSub, 0.0f);
    const CommvqArgmin am = commvq_pair_soft_assign_at(level, g.data(), p.data(), q.data(), 0.0f, 1e-3f, 30.0f,
                                                       counts.data(), wa.data(), wb.data(), scratch);
    EXPECT_EQ(am.index, 100);
    EXPECT_NEAR(counts[100], 1.0f / 3, 1e-6);
    EXPECT_NEAR(counts[4095], 1.0f / 3, 1e-6);
    EXPECT_NEAR(wa[63], 1.0f / 3, 1e-6);
    EXPECT_NEAR(wb[63], 1.0f / 3, 1e-6);
  }
  EXPECT_EQ(commvq_argmin4096(g.data()).index, 100);
}

// The M step's right-hand side wabᵀX, in both regimes: sparse marginals (axpys) and dense (GEMM).
TEST(CommvqKeys, MarginalSumsEqualTheDenseProduct) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (int d : {64, 128}) {
    for (double density : {0.03, 0.5}) {
      const int64_t m = 300;
      std::vector<float> wab(static_cast<size_t>(m) * 2 * kSub, 0.0f);
      for (float& w : wab) w = u(rng) < density ? u(rng) : 0.0f;
      const std::vector<float> x = randn(static_cast<int>(m) * d, 1.0f, rng);
      std::vector<float> sab(static_cast<size_t>(2 * kSub) * d, -1.0f);
      key_marginal_sums(wab.data(), x.data(), m, d, sab.data());
      for (int c = 0; c < 2 * kSub; ++c) {
        for (int k = 0; k < d; ++k) {
          double ref = 0.0;
          for (int64_t i = 0; i < m; ++i) ref += static_cast<double>(wab[i * 2 * kSub + c]) * x[i * d + k];
          ASSERT_NEAR(sab[c * d + k], ref, 1e-4) << "d " << d << " density " << density << " c " << c << " k " << k;
        }
      }
    }
  }
}

// The M step (marginal sums + one 128×128 system for all pairs) equals the explicit weighted least
// squares of the reference: θ_f = (TᵀWT)⁻¹ TᵀW m_f with the 8192×128 design matrix T.
TEST(CommvqKeys, MStepEqualsExplicitWeightedLeastSquares) {
  const int d = 8, h = 4, n = 400;
  std::mt19937 rng(13);
  const std::vector<float> data = randn(static_cast<size_t>(n) * d, 0.5f, rng);
  KeyStageEm em(data.data(), nullptr, n, d, true, nullptr);
  const KeyCodebook init = random_codebook(d, RopeLayout::HalfSplit, 1, 17, 0.3f);
  em.set_params(std::vector<float>(init.stage_x(0), init.stage_x(0) + kSub * h),
                std::vector<float>(init.stage_y(0), init.stage_y(0) + kSub * h));
  const double tau = 0.05;
  em.e_step(tau, 30.0);

  // Explicit soft weights in double.
  const std::vector<float> cw = init.explicit_codewords(0);
  std::vector<double> nc(kCodes, 0.0), sums(static_cast<size_t>(kCodes) * d, 0.0);
  std::vector<double> dist(kCodes);
  for (int i = 0; i < n; ++i) {
    double dmin = 1e300;
    for (int c = 0; c < kCodes; ++c) {
      double s = 0.0;
      for (int k = 0; k < d; ++k) {
        const double e = static_cast<double>(data[i * d + k]) - cw[c * d + k];
        s += e * e;
      }
      dist[c] = std::sqrt(s);
      dmin = std::min(dmin, dist[c]);
    }
    double z = 0.0;
    for (int c = 0; c < kCodes; ++c) z += std::exp(-(dist[c] - dmin) / tau);
    for (int c = 0; c < kCodes; ++c) {
      const double w = std::exp(-(dist[c] - dmin) / tau) / z;
      nc[c] += w;
      for (int k = 0; k < d; ++k) sums[c * d + k] += w * data[i * d + k];
    }
  }
  for (int c = 0; c < kCodes; ++c) ASSERT_NEAR(em.counts()[c], nc[c], 2e-4 * (1 + nc[c])) << c;

  em.m_step(0.0);
  // T: row 2c (x of codeword c) = X_A − Y_B, row 2c+1 (y) = Y_A + X_B; columns X_0..63, Y_0..63.
  Eigen::MatrixXd T = Eigen::MatrixXd::Zero(2 * kCodes, 2 * kSub);
  for (int a = 0; a < kSub; ++a) {
    for (int b = 0; b < kSub; ++b) {
      const int c = a * kSub + b;
      T(2 * c, a) += 1;
      T(2 * c, kSub + b) -= 1;
      T(2 * c + 1, kSub + a) += 1;
      T(2 * c + 1, b) += 1;
    }
  }
  Eigen::VectorXd w(2 * kCodes);
  for (int c = 0; c < kCodes; ++c) w(2 * c) = w(2 * c + 1) = nc[c] + 1e-8;
  const Eigen::MatrixXd TtW = T.transpose() * w.asDiagonal();
  const Eigen::MatrixXd H = TtW * T;
  for (int f = 0; f < h; ++f) {
    Eigen::VectorXd m(2 * kCodes);
    for (int c = 0; c < kCodes; ++c) {
      m(2 * c) = sums[c * d + f] / (nc[c] + 1e-8);
      m(2 * c + 1) = sums[c * d + h + f] / (nc[c] + 1e-8);
    }
    const Eigen::VectorXd theta = H.ldlt().solve(TtW * m);
    for (int s = 0; s < kSub; ++s) {
      EXPECT_NEAR(em.x()[s * h + f], theta(s), 2e-3 * (1 + std::abs(theta(s)))) << "X s=" << s << " f=" << f;
      EXPECT_NEAR(em.y()[s * h + f], theta(kSub + s), 2e-3 * (1 + std::abs(theta(kSub + s)))) << "Y s=" << s;
    }
  }
}

// Synthetic keys: a few hundred clusters of unit-ish vectors, with per-token norms.
struct Clustered {
  std::vector<float> u, norms;
  int64_t n;
};
Clustered clustered(int64_t n, int d, int clusters, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<float> centres = randn(static_cast<size_t>(clusters) * d, 1.0f, rng);
  std::uniform_int_distribution<int> pick(0, clusters - 1);
  std::normal_distribution<float> noise(0.0f, 0.15f);
  std::uniform_real_distribution<float> un(5.0f, 15.0f);
  Clustered c;
  c.n = n;
  c.u.resize(static_cast<size_t>(n) * d);
  c.norms.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int k = pick(rng);
    for (int j = 0; j < d; ++j) c.u[i * d + j] = centres[k * d + j] + noise(rng);
    const float inv = 1.0f / static_cast<float>(std::sqrt(norm2(c.u.data() + i * d, d)));
    for (int j = 0; j < d; ++j) c.u[i * d + j] *= inv;
    c.norms[i] = un(rng);
  }
  return c;
}

TEST(CommvqKeys, EmBeatsRandomInitAndStagesLowerTheError) {
  const int d = 64;
  const Clustered data = clustered(6000, d, 300, 5);
  std::vector<float> lw(data.n);
  for (int64_t i = 0; i < data.n; ++i) lw[i] = data.norms[i] * data.norms[i];
  std::vector<float> pairs(data.u.size());
  to_pair_split(data.u.data(), data.n, d, RopeLayout::HalfSplit, pairs.data());
  KeyStageEm em(pairs.data(), lw.data(), data.n, d, true, nullptr);
  em.init_random(3, 2048, 1.0, 30.0, 1e-6);
  const double init_loss = em.hard_loss();

  KeyEmOptions opts;
  opts.iterations = 16;
  opts.seed = 3;
  KeyEmHeadReport rep;
  train_key_head(data.u.data(), d, data.norms.data(), data.n, d, 4, RopeLayout::HalfSplit, opts, 0, &rep);
  ASSERT_EQ(rep.stages.size(), 4u);
  const double trained = rep.stages[0].residual_mse;
  EXPECT_LE(trained, 0.7 * init_loss) << "random-init " << init_loss << " trained " << trained;
  double prev = rep.initial_mse;
  for (const KeyEmStageReport& s : rep.stages) {
    EXPECT_LT(s.residual_mse, prev);
    EXPECT_NEAR(s.residual_mse, s.best_loss, 1e-4 * s.best_loss);
    prev = s.residual_mse;
  }
}

TEST(CommvqKeys, EmIsDeterministicAndThreadCountIndependent) {
  const int d = 64;
  const Clustered data = clustered(3000, d, 100, 8);
  KeyEmOptions opts;
  opts.iterations = 6;
  opts.seed = 42;
  opts.threads = 1;
  const KeyCodebook a = train_key_head(data.u.data(), d, data.norms.data(), data.n, d, 2, RopeLayout::Adjacent, opts);
  opts.threads = 2;
  const KeyCodebook b = train_key_head(data.u.data(), d, data.norms.data(), data.n, d, 2, RopeLayout::Adjacent, opts);
  opts.seed = 43;
  const KeyCodebook c = train_key_head(data.u.data(), d, data.norms.data(), data.n, d, 2, RopeLayout::Adjacent, opts);
  const size_t np = static_cast<size_t>(2) * 2 * kSub * d / 2;
  EXPECT_TRUE(std::equal(a.params(), a.params() + np, b.params()));
  EXPECT_FALSE(std::equal(a.params(), a.params() + np, c.params()));
}

TEST(CommvqKeys, UnstructuredAblationTrainsAndEncodes) {
  const int d = 64;
  const Clustered data = clustered(3000, d, 100, 9);
  KeyEmOptions opts;
  opts.iterations = 6;
  opts.unstructured = true;
  KeyEmHeadReport rep;
  const KeyCodebook cb =
      train_key_head(data.u.data(), d, data.norms.data(), data.n, d, 2, RopeLayout::HalfSplit, opts, 0, &rep);
  EXPECT_FALSE(cb.structured());
  EXPECT_EQ(cb.stages(), 2);
  EXPECT_LT(rep.stages[1].residual_mse, rep.stages[0].residual_mse);
  EXPECT_LT(rep.stages[0].residual_mse, 0.5 * rep.initial_mse);
  std::vector<uint16_t> c1(2), c2(2);
  cb.encode(data.u.data(), c1.data());
  cb.encode_bruteforce(data.u.data(), c2.data());
  EXPECT_EQ(c1, c2);
}

TEST(CommvqKeys, LayerEncodeDecodeAndFileRoundTrip) {
  const int n_kv = 3, d = 64, n = 40;
  KeyLayerCodebook layer;
  layer.n_kv = n_kv;
  layer.head_dim = d;
  for (int h = 0; h < n_kv; ++h) layer.heads.push_back(random_codebook(d, RopeLayout::HalfSplit, 3, 50 + h, 0.05f));
  std::mt19937 rng(2);
  const std::vector<float> k = randn(static_cast<size_t>(n) * n_kv * d, 3.0f, rng);
  std::vector<float> norms(n);
  std::vector<uint16_t> codes(static_cast<size_t>(n) * n_kv * 3);
  layer.encode(k.data(), n, norms.data(), codes.data());
  for (int t = 0; t < n; ++t)
    EXPECT_NEAR(norms[t], std::sqrt(norm2(k.data() + t * n_kv * d, n_kv * d)), 1e-4 * norms[t]);
  // Head h of token t uses codes (t, h, ·) and equals that head's own encoding of u's slice.
  std::vector<float> u(k.size());
  key_norms(k.data(), n, n_kv * d, norms.data(), u.data());
  std::vector<uint16_t> own(3);
  layer.heads[1].encode(u.data() + 5 * n_kv * d + d, own.data());
  for (int j = 0; j < 3; ++j) EXPECT_EQ(codes[(5 * n_kv + 1) * 3 + j], own[j]);
  std::vector<float> dec(k.size()), one(d);
  layer.decode(codes.data(), norms.data(), n, dec.data());
  layer.heads[2].decode(codes.data() + (7 * n_kv + 2) * 3, one.data());
  for (int i = 0; i < d; ++i) EXPECT_NEAR(dec[7 * n_kv * d + 2 * d + i], norms[7] * one[i], 1e-5);

  const std::string path = (std::filesystem::temp_directory_path() / "cvq_test_key_codebook.safetensors").string();
  SafetensorsWriter w;
  for (int h = 0; h < n_kv; ++h) layer.heads[h].write_tensors(w, "layer0.head" + std::to_string(h));
  w.write(path);
  SafetensorsReader r(path);
  for (int h = 0; h < n_kv; ++h) {
    const KeyCodebook back = KeyCodebook::read_tensors(r, "layer0.head" + std::to_string(h), d, RopeLayout::HalfSplit);
    ASSERT_EQ(back.stages(), 3);
    EXPECT_TRUE(std::equal(back.params(), back.params() + 3 * 2 * kSub * d / 2, layer.heads[h].params()));
  }
  EXPECT_THROW(KeyCodebook::read_tensors(r, "layer0.head0", 128, RopeLayout::HalfSplit), Error);
  EXPECT_THROW(KeyCodebook::read_tensors(r, "layer9.head0", 64, RopeLayout::HalfSplit), Error);
  std::filesystem::remove(path);
}

// Centered layer (train --key-center): encoding k equals encoding k − μ with the plain layer, decoding
// adds μ back, and the mean is the per-channel average.
TEST(CommvqKeys, CenteredLayerEncodesTheDeviationAndAddsTheMeanBack) {
  const int n_kv = 2, d = 64, n = 30, D = n_kv * d;
  KeyLayerCodebook plain;
  plain.n_kv = n_kv;
  plain.head_dim = d;
  for (int h = 0; h < n_kv; ++h) plain.heads.push_back(random_codebook(d, RopeLayout::HalfSplit, 3, 70 + h, 0.05f));
  std::mt19937 rng(5);
  std::vector<float> k = randn(static_cast<size_t>(n) * D, 1.0f, rng);
  const std::vector<float> bias = randn(D, 8.0f, rng);
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < D; ++i) k[t * D + i] += bias[i];
  KeyLayerCodebook centered = plain;
  centered.mean = key_channel_mean(k.data(), n, D);
  for (int i = 0; i < D; ++i) {
    double m = 0;
    for (int t = 0; t < n; ++t) m += k[t * D + i];
    EXPECT_NEAR(centered.mean[i], m / n, 1e-4);
  }
  std::vector<float> dev(k.size());
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < D; ++i) dev[t * D + i] = k[t * D + i] - centered.mean[i];
  std::vector<float> norms_c(n), norms_p(n);
  std::vector<uint16_t> codes_c(static_cast<size_t>(n) * n_kv * 3), codes_p(codes_c.size());
  centered.encode(k.data(), n, norms_c.data(), codes_c.data());
  plain.encode(dev.data(), n, norms_p.data(), codes_p.data());
  EXPECT_EQ(codes_c, codes_p);
  for (int t = 0; t < n; ++t) EXPECT_NEAR(norms_c[t], norms_p[t], 1e-5f * norms_p[t]);
  std::vector<float> dec_c(k.size()), dec_p(k.size());
  centered.decode(codes_c.data(), norms_c.data(), n, dec_c.data());
  plain.decode(codes_p.data(), norms_p.data(), n, dec_p.data());
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < D; ++i) EXPECT_NEAR(dec_c[t * D + i], dec_p[t * D + i] + centered.mean[i], 1e-4f);
}

}  // namespace
}  // namespace cvq
