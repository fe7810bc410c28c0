// Value code refinement and codebook refit (commvq/value_refine.h): refined codes are a local
// optimum of the cosine that is never worse than the encoder's argmax; the refit solves the ridge
// normal equations; refine_sweeps persists with the codec; the trainer's refit stage helps.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "commvq/value_codec.h"
#include "commvq/value_refine.h"
#include "commvq/value_trainer.h"
#include "core/safetensors.h"

namespace cvq {
namespace {

std::vector<float> normal_vec(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

double cosine_of(const ValueCodec& c, const uint8_t* code, const float* xbar) {
  std::vector<float> y(c.dim());
  c.code_vectors(code, 1, y.data());
  double d = 0, n = 0;
  for (int i = 0; i < c.dim(); ++i) {
    d += static_cast<double>(y[i]) * xbar[i];
    n += static_cast<double>(y[i]) * y[i];
  }
  return n > 1e-20 ? d / std::sqrt(n) : -2.0;
}

struct Encoded {
  std::vector<float> xbar;
  std::vector<uint8_t> codes;
};

Encoded encode_with(const ValueCodec& c, const std::vector<float>& v, int n) {
  Encoded e;
  const int D = c.dim();
  e.xbar.resize(static_cast<size_t>(n) * D);
  std::vector<float> rho(n);
  for (int t = 0; t < n; ++t)
    c.normalize(v.data() + static_cast<size_t>(t) * D, e.xbar.data() + static_cast<size_t>(t) * D, &rho[t]);
  e.codes.resize(static_cast<size_t>(n) * c.shape().code_bytes());
  std::vector<uint16_t> p(n);
  c.encode(v.data(), n, e.codes.data(), p.data());
  return e;
}

TEST(ValueRefine, RefinedCodesAreALocalOptimumNoWorseThanTheArgmax) {
  for (int bits : {1, 2}) {
    const int D = 32, n = 50;
    ValueCodec c(D, bits);
    c.init_random(7 + bits);
    std::mt19937 rng(3);
    const auto v = normal_vec(static_cast<size_t>(n) * D, rng);
    const Encoded plain = encode_with(c, v, n);
    c.refine_sweeps = 50;
    const Encoded refined = encode_with(c, v, n);
    const int CB = c.shape().code_bytes();
    double gain = 0;
    for (int t = 0; t < n; ++t) {
      const float* xb = refined.xbar.data() + static_cast<size_t>(t) * D;
      const double before = cosine_of(c, plain.codes.data() + static_cast<size_t>(t) * CB, xb);
      std::vector<uint8_t> code(refined.codes.begin() + static_cast<ptrdiff_t>(t) * CB,
                                refined.codes.begin() + static_cast<ptrdiff_t>(t + 1) * CB);
      const double after = cosine_of(c, code.data(), xb);
      EXPECT_GE(after, before - 1e-6) << "token " << t;
      gain += after - before;
      // No single group change improves the refined code (checked by brute force).
      for (int g = 0; g < c.shape().n_groups(); ++g) {
        std::vector<uint8_t> alt = code;
        for (int o = 0; o < 4; ++o) {
          for (int b = 0; b < 2; ++b) {
            const int j = 2 * g + b;
            const uint8_t mask = static_cast<uint8_t>(1u << (j & 7));
            alt[j >> 3] = static_cast<uint8_t>(((o >> b) & 1) ? (alt[j >> 3] | mask) : (alt[j >> 3] & ~mask));
          }
          EXPECT_LE(cosine_of(c, alt.data(), xb), after + 1e-5) << "bits " << bits << " token " << t << " group " << g;
        }
      }
    }
    EXPECT_GT(gain / n, 0.05) << "refinement should raise the mean cosine of a random codec's codes";
  }
}

TEST(ValueRefine, RefitSolvesTheRidgeNormalEquations) {
  const int D = 16, bits = 2, n = 400;
  ValueCodec c(D, bits);
  c.init_random(5);
  std::mt19937 rng(9);
  const auto x = normal_vec(static_cast<size_t>(n) * D, rng);
  const Encoded e = encode_with(c, x, n);
  const int K = c.shape().code_bits(), CB = c.shape().code_bytes();
  auto residual = [&](const ValueCodec& cc) {
    std::vector<float> y(static_cast<size_t>(n) * D);
    cc.code_vectors(e.codes.data(), n, y.data());
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += (y[i] - x[i]) * (y[i] - x[i]);
    return s;
  };
  const double before = residual(c);
  const double ridge = 1e-3;
  refit_value_codebook(c, e.codes.data(), x.data(), n, ridge);
  EXPECT_LT(residual(c), 0.9 * before);
  // Gradient of ||B C − X||² + λ||C||² vanishes: Bᵀ(B C − X) + λ C = 0, λ = ridge · mean diag(BᵀB).
  std::vector<float> y(static_cast<size_t>(n) * D);
  c.code_vectors(e.codes.data(), n, y.data());
  double diag = 0;
  for (int t = 0; t < n; ++t)
    for (int j = 0; j < K; ++j) diag += value_code_bit(e.codes.data() + static_cast<size_t>(t) * CB, j);
  const double lambda = ridge * diag / K;
  for (int j = 0; j < K; ++j)
    for (int i = 0; i < D; ++i) {
      double g = lambda * c.codebook[static_cast<size_t>(j) * D + i];
      for (int t = 0; t < n; ++t)
        if (value_code_bit(e.codes.data() + static_cast<size_t>(t) * CB, j))
          g += y[static_cast<size_t>(t) * D + i] - x[static_cast<size_t>(t) * D + i];
      EXPECT_NEAR(g, 0.0, 2e-3) << "row " << j << " col " << i;
    }
}

TEST(ValueRefine, RowWeightsPullTheFitTowardsHeavyRows) {
  const int D = 16, n = 300;
  ValueCodec c(D, 2);
  c.init_random(8);
  std::mt19937 rng(4);
  const auto x = normal_vec(static_cast<size_t>(n) * D, rng);
  const Encoded e = encode_with(c, x, n);
  auto row_error = [&](const ValueCodec& cc, int t) {
    std::vector<float> y(D);
    cc.code_vectors(e.codes.data() + static_cast<size_t>(t) * c.shape().code_bytes(), 1, y.data());
    double s = 0;
    for (int i = 0; i < D; ++i)
      s += (y[i] - x[static_cast<size_t>(t) * D + i]) * (y[i] - x[static_cast<size_t>(t) * D + i]);
    return s;
  };
  ValueCodec plain = c, heavy = c;
  refit_value_codebook(plain, e.codes.data(), x.data(), n);
  std::vector<float> w(n, 1.0f);
  w[0] = 1e4f;
  refit_value_codebook(heavy, e.codes.data(), x.data(), n, 1e-3, w.data());
  EXPECT_LT(row_error(heavy, 0), 0.05 * row_error(plain, 0));
  // Uniform weights are the unweighted fit (up to rounding).
  ValueCodec uniform = c;
  std::vector<float> ones(n, 1.0f);
  refit_value_codebook(uniform, e.codes.data(), x.data(), n, 1e-3, ones.data());
  for (size_t i = 0; i < plain.codebook.size(); ++i) EXPECT_NEAR(uniform.codebook[i], plain.codebook[i], 1e-4);
}

TEST(ValueRefine, SweepsPersistWithTheCodec) {
  ValueCodec c(24, 2);
  c.init_random(1);
  c.refine_sweeps = 3;
  SafetensorsWriter w;
  c.save(w, "layer_00.values.");
  const std::string path =
      (std::filesystem::temp_directory_path() / ("cvq_refine_" + std::to_string(::getpid()) + ".safetensors")).string();
  w.write(path);
  SafetensorsReader r(path);
  EXPECT_EQ(ValueCodec::load(r, "layer_00.values.").refine_sweeps, 3);
  std::filesystem::remove(path);
}

TEST(ValueRefine, TrainerRefitBeatsGradientDescentAlone) {
  ValueLayerData d;
  d.n_head = d.n_head_kv = 2;
  d.head_dim = 16;
  const int D = d.dim(), n = 2000;
  d.n_tokens = n;
  std::mt19937 rng(2);
  d.values = normal_vec(static_cast<size_t>(n) * D, rng);
  d.seq_starts = {0, 1000, 2000};
  ValueTrainOptions o;
  o.steps = 100;
  o.batch = 32;
  o.seed = 3;
  ValueTrainReport rep;
  const ValueCodec c = train_value_codec(d, Rope(d.head_dim, 10000.0, RopeLayout::Adjacent), nullptr, o, &rep);
  EXPECT_EQ(c.refine_sweeps, o.refine_sweeps);
  EXPECT_LT(rep.trained.rel_mse_values, 0.8 * rep.gradient_only.rel_mse_values)
      << "gradient only " << rep.gradient_only.rel_mse_values << " with refit " << rep.trained.rel_mse_values;
}

}  // namespace
}  // namespace cvq

namespace cvq {
namespace {

// Tables made for another codebook are never used: the result equals refinement without tables.
TEST(ValueRefine, TablesOfAnotherCodebookAreIgnored) {
  const int D = 32, n = 40;
  ValueCodec a(D, 2), b(D, 2);
  a.init_random(11);
  b.init_random(12);
  std::mt19937 rng(5);
  const auto xbar = normal_vec(static_cast<size_t>(n) * D, rng);
  std::vector<uint8_t> start(static_cast<size_t>(n) * a.shape().code_bytes());
  for (auto& byte : start) byte = static_cast<uint8_t>(rng());
  std::vector<uint8_t> own = start, stale = start, none = start;
  const ValueRefineTables ta = make_value_refine_tables(a), tb = make_value_refine_tables(b);
  refine_value_codes(a, xbar.data(), n, own.data(), 8, &ta);
  refine_value_codes(a, xbar.data(), n, stale.data(), 8, &tb);
  refine_value_codes(a, xbar.data(), n, none.data(), 8, nullptr);
  EXPECT_EQ(own, none);
  EXPECT_EQ(stale, none);
  EXPECT_NE(own, start);
}

}  // namespace
}  // namespace cvq
