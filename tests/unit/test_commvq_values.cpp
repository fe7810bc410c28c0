// CommVQ values (docs/METHOD.md §5): codec shapes and bit packing, the decode formula, the docs/METHOD.md §6.2 kernel
// against decode-then-attend, hand-written gradients against finite differences, training on
// synthetic data, determinism; and `collect` (activation recording, manifest, resume) on a tiny model.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "collect/collect.h"
#include "commvq/kv_methods.h"
#include "commvq/value_codec.h"
#include "commvq/value_loss.h"
#include "commvq/value_rng.h"
#include "commvq/value_trainer.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/safetensors.h"
#include "core/thread_pool.h"
#include "kernels/cpu/commvq_values.h"
#include "model/llama_model.h"
#include "support/tiny_model.h"

namespace cvq {
namespace {
namespace fs = std::filesystem;

std::string tmp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("cvq_values_" + std::to_string(::getpid()) + "_" + name)).string();
}

std::vector<float> random_vec(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

ValueCodec random_codec(int D, int bits, uint64_t seed) {
  ValueCodec c(D, bits);
  c.init_random(seed);
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::uniform_real_distribution<float> u(0.5f, 2.0f);
  for (auto& s : c.scale) s = u(rng);
  for (auto& g : c.ln_gamma) g = u(rng);
  for (auto& b : c.ln_beta) b = 0.1f * (u(rng) - 1.0f);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Codec

TEST(ValueCodec, ShapesFollowTheBitBudget) {
  ValueCodecShape s{192, 2};
  EXPECT_EQ(s.n_groups(), 192);
  EXPECT_EQ(s.n_logits(), 768);
  EXPECT_EQ(s.hidden(), 768);
  EXPECT_EQ(s.code_bits(), 384);
  EXPECT_EQ(s.code_bytes(), 48);
  ValueCodecShape one{192, 1};
  EXPECT_EQ(one.n_groups(), 96);
  EXPECT_EQ(one.hidden(), 384);
  EXPECT_EQ(one.code_bits(), 192);
  EXPECT_EQ((ValueCodecShape{1024, 2}.hidden()), 4096);  // LLaMA-3.1-8B: D = 8·128
  EXPECT_EQ((ValueCodecShape{2048, 2}.hidden()), 4096);  // capped
  ValueCodec c(192, 2);
  EXPECT_EQ(c.w1.size(), size_t{768} * 192);
  EXPECT_EQ(c.w2.size(), size_t{768} * 768);
  EXPECT_EQ(c.codebook.size(), size_t{384} * 192);
  EXPECT_THROW(ValueCodec(7, 1), Error);  // D·bits must be even
  // Choices {10, 01, 11, 00}.
  EXPECT_EQ(value_choice_b1(0), 1);
  EXPECT_EQ(value_choice_b2(0), 0);
  EXPECT_EQ(value_choice_b1(1), 0);
  EXPECT_EQ(value_choice_b2(1), 1);
  EXPECT_EQ(value_choice_b1(2), 1);
  EXPECT_EQ(value_choice_b2(2), 1);
  EXPECT_EQ(value_choice_b1(3), 0);
  EXPECT_EQ(value_choice_b2(3), 0);
}

TEST(ValueCodec, EncodePacksTheArgmaxOfEachGroup) {
  for (int bits : {1, 2}) {
    const int D = 24, n = 37;
    ValueCodec c = random_codec(D, bits, 11 + bits);
    const auto& S = c.shape();
    std::mt19937 rng(5);
    auto v = random_vec(static_cast<size_t>(n) * D, rng);
    std::vector<uint8_t> codes(static_cast<size_t>(n) * S.code_bytes(), 0xAB);
    std::vector<uint16_t> p(n);
    c.encode(v.data(), n, codes.data(), p.data());
    std::vector<float> xbar(static_cast<size_t>(n) * D), rho(n), lg(static_cast<size_t>(n) * S.n_logits());
    for (int t = 0; t < n; ++t) c.normalize(v.data() + t * D, xbar.data() + t * D, &rho[t]);
    c.logits(xbar.data(), n, lg.data());
    int counts[4] = {0, 0, 0, 0};
    for (int t = 0; t < n; ++t) {
      const uint8_t* ct = codes.data() + t * S.code_bytes();
      for (int g = 0; g < S.n_groups(); ++g) {
        const float* z = lg.data() + static_cast<size_t>(t) * S.n_logits() + 4 * g;
        const int best = static_cast<int>(std::max_element(z, z + 4) - z);
        ++counts[best];
        EXPECT_EQ(value_code_bit(ct, 2 * g), value_choice_b1(best));
        EXPECT_EQ(value_code_bit(ct, 2 * g + 1), value_choice_b2(best));
      }
      for (int j = S.code_bits(); j < S.code_bytes() * 8; ++j) EXPECT_EQ(value_code_bit(ct, j), 0);  // padding
    }
    for (int k = 0; k < 4; ++k) EXPECT_GT(counts[k], 0) << "choice " << k << " never taken";
  }
}

TEST(ValueCodec, DecodeIsScaleTimesCodeVectorTimesP) {
  const int D = 16, bits = 2, n = 20;
  ValueCodec c = random_codec(D, bits, 3);
  std::mt19937 rng(9);
  auto v = random_vec(static_cast<size_t>(n) * D, rng, 3.0f);
  std::vector<uint8_t> codes(static_cast<size_t>(n) * c.shape().code_bytes());
  std::vector<uint16_t> p(n);
  c.encode(v.data(), n, codes.data(), p.data());
  std::vector<float> dec(static_cast<size_t>(n) * D);
  c.decode(codes.data(), p.data(), n, dec.data());
  for (int t = 0; t < n; ++t) {
    std::vector<double> y(D, 0.0);
    for (int j = 0; j < c.shape().code_bits(); ++j)
      if (value_code_bit(codes.data() + t * c.shape().code_bytes(), j))
        for (int i = 0; i < D; ++i) y[i] += c.codebook[j * D + i];
    double ny = 0, rho = 0;
    for (int i = 0; i < D; ++i) {
      ny += y[i] * y[i];
      const double x = v[t * D + i] / (c.scale[i] + 1e-6);
      rho += x * x;
    }
    ny = std::sqrt(ny);
    rho = std::sqrt(rho);
    const double p_exact = (rho + 1e-6) / (ny + 1e-6);
    EXPECT_EQ(p[t], float_to_fp16(static_cast<float>(p_exact))) << "token " << t;
    const double pf = fp16_to_float(p[t]);
    for (int i = 0; i < D; ++i)
      EXPECT_NEAR(dec[t * D + i], c.scale[i] * y[i] * pf, 1e-5 * (1 + std::fabs(c.scale[i] * y[i] * pf)));
    // The decoded vector carries the input's normalized magnitude: ||v̂ / s|| == rho (up to fp16 p).
    double nd = 0;
    for (int i = 0; i < D; ++i) nd += std::pow(dec[t * D + i] / c.scale[i], 2);
    EXPECT_NEAR(std::sqrt(nd), rho, 2e-3 * rho);
  }
}

TEST(ValueCodec, SaveLoadRoundTrips) {
  ValueCodec c = random_codec(24, 2, 4);
  SafetensorsWriter w;
  c.save(w, "layer_00.values.");
  const std::string path = tmp_path("codec.safetensors");
  w.write(path);
  SafetensorsReader r(path);
  ValueCodec d = ValueCodec::load(r, "layer_00.values.");
  EXPECT_EQ(d.shape().dim, 24);
  EXPECT_EQ(d.shape().bits, 2);
  EXPECT_EQ(d.w2, c.w2);
  EXPECT_EQ(d.codebook, c.codebook);
  EXPECT_EQ(d.scale, c.scale);
  EXPECT_THROW(ValueCodec::load(r, "layer_01.values."), Error);
  fs::remove(path);
}

// ---------------------------------------------------------------------------------------------
// docs/METHOD.md §6.2 kernel

struct KernelCase {
  int D, bits, head_dim, rows;
  int64_t n_tokens;
};

void check_kernel_case(const KernelCase& k, SimdLevel level) {
  const int code_bits = k.D * k.bits, code_bytes = (code_bits + 7) / 8;
  const int64_t stride = code_bytes + 3;  // codes need not be dense
  std::mt19937 rng(static_cast<unsigned>(k.D * 31 + k.rows));
  std::vector<uint8_t> codes(static_cast<size_t>(k.n_tokens) * stride);
  for (auto& b : codes) b = static_cast<uint8_t>(rng());
  std::vector<uint16_t> p(k.n_tokens);
  std::uniform_real_distribution<float> u(0.1f, 3.0f);
  for (auto& x : p) x = float_to_fp16(u(rng));
  const int64_t ws = k.n_tokens + 5;
  std::vector<float> w(static_cast<size_t>(k.rows) * ws);
  for (int r = 0; r < k.rows; ++r) {
    const int64_t visible = k.n_tokens - r;  // causal-like: later tokens masked with zeros
    double sum = 0;
    for (int64_t t = 0; t < k.n_tokens; ++t) sum += (w[r * ws + t] = t < visible ? u(rng) : 0.0f);
    for (int64_t t = 0; t < k.n_tokens; ++t) w[r * ws + t] = static_cast<float>(w[r * ws + t] / sum);
  }
  auto cb = random_vec(static_cast<size_t>(code_bits) * k.D, rng, 0.3f);
  std::vector<float> scale(k.D);
  for (auto& s : scale) s = u(rng);
  const int n_kv = k.D / k.head_dim;
  for (int g = 0; g < n_kv; ++g) {
    const int64_t os = k.head_dim + 2;
    std::vector<float> ref(static_cast<size_t>(k.rows) * os), out(ref.size());
    commvq_values_reference(codes.data(), stride, p.data(), k.n_tokens, code_bits, w.data(), ws, k.rows, cb.data(),
                            scale.data(), k.D, g, k.head_dim, ref.data(), os);
    // Two blocks accumulated into one acc, then one projection.
    std::vector<float> acc(static_cast<size_t>(k.rows) * code_bits, 0.0f);
    const int64_t split = k.n_tokens / 3;
    commvq_values_accumulate_at(level, codes.data(), stride, p.data(), split, code_bits, w.data(), ws, k.rows,
                                acc.data());
    commvq_values_accumulate_at(level, codes.data() + split * stride, stride, p.data() + split, k.n_tokens - split,
                                code_bits, w.data() + split, ws, k.rows, acc.data());
    commvq_values_project(acc.data(), k.rows, code_bits, cb.data(), scale.data(), k.D, g, k.head_dim, out.data(), os);
    double err = 0, nrm = 0;
    for (int r = 0; r < k.rows; ++r)
      for (int i = 0; i < k.head_dim; ++i) {
        const double a = out[r * os + i], b = ref[r * os + i];
        err = std::max(err, std::fabs(a - b));
        nrm = std::max(nrm, std::fabs(b));
      }
    EXPECT_LE(err, 1e-5 * nrm) << "D " << k.D << " bits " << k.bits << " head " << g << " level "
                               << simd_level_name(level);
  }
}

TEST(CommvqValuesKernel, MatchesDecodeThenAttend) {
  const KernelCase cases[] = {{192, 2, 64, 3, 128},
                              {192, 2, 64, 12, 300},
                              {192, 1, 64, 3, 257},
                              {256, 2, 128, 4, 130},
                              {12, 2, 4, 2, 19} /* 24 code bits: no SIMD path */};
  for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512}) {
    if (!cpu_supports(level)) continue;
    for (const auto& k : cases) check_kernel_case(k, level);
  }
}

TEST(CommvqValuesKernel, AgreesWithTheCodecsDecode) {
  // The kernel on the codec's own codes equals attention over codec.decode() values.
  const int D = 192, bits = 2, d = 64, n = 100, rows = 3;
  ValueCodec c = random_codec(D, bits, 21);
  std::mt19937 rng(2);
  auto v = random_vec(static_cast<size_t>(n) * D, rng);
  std::vector<uint8_t> codes(static_cast<size_t>(n) * c.shape().code_bytes());
  std::vector<uint16_t> p(n);
  c.encode(v.data(), n, codes.data(), p.data());
  std::vector<float> dec(static_cast<size_t>(n) * D);
  c.decode(codes.data(), p.data(), n, dec.data());
  std::vector<float> w(static_cast<size_t>(rows) * n);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (auto& x : w) x = u(rng) / n;
  for (int g = 0; g < D / d; ++g) {
    std::vector<float> out(static_cast<size_t>(rows) * d);
    commvq_values_attend(codes.data(), c.shape().code_bytes(), p.data(), n, c.shape().code_bits(), w.data(), n, rows,
                         c.codebook.data(), c.scale.data(), D, g, d, out.data(), d);
    for (int r = 0; r < rows; ++r)
      for (int i = 0; i < d; ++i) {
        double ref = 0, mag = 0;
        for (int t = 0; t < n; ++t) {
          ref += static_cast<double>(w[r * n + t]) * dec[t * D + g * d + i];
          mag += std::fabs(w[r * n + t] * dec[t * D + g * d + i]);
        }
        EXPECT_NEAR(out[r * d + i], ref, 1e-5 * mag + 1e-7);
      }
  }
}

// ---------------------------------------------------------------------------------------------
// Gradients

struct GradFixture {
  int D = 8, bits = 2, n = 5;
  int n_head = 4, n_head_kv = 2, head_dim = 4, n_embd = 6;
  ValueCodec codec;
  std::vector<float> v, xbar, rho, gram, noise, w_o;
  ValueAttnProj attn;
  ValueBatch batch;

  explicit GradFixture(uint64_t seed) : codec(random_codec(8, 2, seed)) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    v = random_vec(static_cast<size_t>(n) * D, rng, 2.0f);
    xbar.resize(v.size());
    rho.resize(n);
    for (int t = 0; t < n; ++t) codec.normalize(v.data() + t * D, xbar.data() + t * D, &rho[t]);
    // Gram matrices of nonnegative "attention" columns: G = A Aᵀ with A [H x 7] >= 0.
    std::uniform_real_distribution<float> u(0.0f, 0.5f);
    gram.assign(static_cast<size_t>(n) * n_head * n_head, 0.0f);
    for (int t = 0; t < n; ++t) {
      std::vector<float> a(static_cast<size_t>(n_head) * 7);
      for (auto& x : a) x = u(rng);
      for (int h = 0; h < n_head; ++h)
        for (int h2 = 0; h2 < n_head; ++h2)
          for (int i = 0; i < 7; ++i) gram[(t * n_head + h) * n_head + h2] += a[h * 7 + i] * a[h2 * 7 + i];
    }
    noise.resize(static_cast<size_t>(n) * codec.shape().n_logits());
    for (size_t i = 0; i < noise.size(); ++i) noise[i] = gumbel_noise(seed, 0, i);
    w_o = random_vec(static_cast<size_t>(n_embd) * n_head * head_dim, rng, 0.5f);
    attn.w_o = w_o.data();
    attn.n_embd = n_embd;
    attn.n_head = n_head;
    attn.n_head_kv = n_head_kv;
    attn.head_dim = head_dim;
    batch.n = n;
    batch.v = v.data();
    batch.xbar = xbar.data();
    batch.rho = rho.data();
    batch.gram = gram.data();
    batch.noise = noise.data();
    batch.norm_rows = n;
  }
};

// Central differences on every coordinate of the chosen tensors.
void check_gradients(GradFixture& f, ValueRelaxation mode, const std::vector<int>& tensors, double h) {
  ValueCodec grads = value_codec_zeros_like(f.codec);
  const ValueLossTerms base = value_loss_and_grad(f.codec, f.batch, &f.attn, mode, &grads);
  ASSERT_GT(base.value_mse, 0.0);
  ASSERT_GT(base.attn_mse, 0.0);
  auto params = value_trainable_params(f.codec);
  auto gparams = value_trainable_params(grads);
  const char* names[] = {"ln_gamma", "ln_beta", "w1", "b1", "w2", "b2", "codebook"};
  for (int ti : tensors) {
    std::vector<float>& p = *params[ti];
    const std::vector<float>& g = *gparams[ti];
    double gmax = 0;
    for (float x : g) gmax = std::max(gmax, static_cast<double>(std::fabs(x)));
    ASSERT_GT(gmax, 0.0) << names[ti];
    int bad = 0;
    for (size_t i = 0; i < p.size(); ++i) {
      const float keep = p[i];
      p[i] = keep + static_cast<float>(h);
      const double lp = value_loss_and_grad(f.codec, f.batch, &f.attn, mode, nullptr).total();
      p[i] = keep - static_cast<float>(h);
      const double lm = value_loss_and_grad(f.codec, f.batch, &f.attn, mode, nullptr).total();
      p[i] = keep;
      const double fd = (lp - lm) / (2 * h);
      if (std::fabs(fd - g[i]) > 2e-2 * std::fabs(g[i]) + 2e-3 * gmax) {
        if (++bad <= 5)
          ADD_FAILURE() << names[ti] << "[" << i << "]: analytic " << g[i] << " vs finite difference " << fd;
      }
    }
    EXPECT_EQ(bad, 0) << names[ti];
  }
}

TEST(ValueTrainerGradients, MatchFiniteDifferencesSoft) {
  // Smooth relaxation (forward through the Gumbel softmax, noise fixed): every parameter.
  GradFixture f(7);
  check_gradients(f, ValueRelaxation::Soft, {0, 1, 2, 3, 4, 5, 6}, 1e-2);
  f.batch.tau = 0.7f;  // the temperature enters the softmax backward
  check_gradients(f, ValueRelaxation::Soft, {2, 4, 5}, 1e-2);
}

TEST(ValueTrainerGradients, CodebookMatchesFiniteDifferencesHard) {
  // Hard one-hot forward: the loss is smooth in the codebook (bits fixed), so that gradient is exact.
  GradFixture f(8);
  check_gradients(f, ValueRelaxation::HardStraightThrough, {6}, 1e-2);
}

TEST(ValueTrainerGradients, StraightThroughUsesTheSoftBackward) {
  // Straight-through: encoder gradients in hard mode are the soft-mode backward formulas evaluated at
  // the hard forward; check they are nonzero, finite and differ from soft mode only through the forward.
  GradFixture f(9);
  ValueCodec gh = value_codec_zeros_like(f.codec), gs = value_codec_zeros_like(f.codec);
  value_loss_and_grad(f.codec, f.batch, &f.attn, ValueRelaxation::HardStraightThrough, &gh);
  value_loss_and_grad(f.codec, f.batch, &f.attn, ValueRelaxation::Soft, &gs);
  double nh = 0, ns = 0;
  for (float x : gh.w1) {
    ASSERT_TRUE(std::isfinite(x));
    nh += x * x;
  }
  for (float x : gs.w1) ns += x * x;
  EXPECT_GT(nh, 0.0);
  EXPECT_GT(ns, 0.0);
}

// ---------------------------------------------------------------------------------------------
// Training

// Low-rank values with unequal channel scales, in sequences, with random queries/keys and o_proj.
ValueLayerData synthetic_layer(int n_seq, int seq_len, unsigned seed) {
  ValueLayerData d;
  d.layer = 0;
  d.n_head = 4;
  d.n_head_kv = 2;
  d.head_dim = 16;
  const int D = d.dim(), qd = d.q_dim(), rank = 4;
  d.n_tokens = static_cast<int64_t>(n_seq) * seq_len;
  std::mt19937 rng(seed);
  auto basis = random_vec(static_cast<size_t>(rank) * D, rng);
  std::vector<float> chan(D);
  std::uniform_real_distribution<float> u(0.2f, 3.0f);
  for (auto& c : chan) c = u(rng);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  d.values.resize(static_cast<size_t>(d.n_tokens) * D);
  for (int64_t t = 0; t < d.n_tokens; ++t) {
    float coef[rank];
    for (auto& c : coef) c = nd(rng);
    for (int i = 0; i < D; ++i) {
      float x = 0.05f * nd(rng);
      for (int k = 0; k < rank; ++k) x += coef[k] * basis[k * D + i];
      d.values[t * D + i] = chan[i] * x;
    }
  }
  d.keys_pre_rope = random_vec(static_cast<size_t>(d.n_tokens) * D, rng);
  d.queries = random_vec(static_cast<size_t>(d.n_tokens) * qd, rng, 2.0f);
  for (int s = 0; s <= n_seq; ++s) d.seq_starts.push_back(static_cast<int64_t>(s) * seq_len);
  for (int64_t t = 0; t < d.n_tokens; ++t) d.positions.push_back(static_cast<int32_t>(t % seq_len));
  return d;
}

TEST(ValueTrainer, LearnsLowRankDataAndIsDeterministic) {
  ValueLayerData d = synthetic_layer(5, 400, 3);
  std::mt19937 rng(4);
  auto w_o = random_vec(static_cast<size_t>(24) * d.q_dim(), rng, 0.3f);
  ValueAttnProj attn{w_o.data(), 24, d.n_head, d.n_head_kv, d.head_dim};
  const Rope rope(d.head_dim, 10000.0, RopeLayout::Adjacent);
  ValueTrainOptions o;
  o.steps = 300;
  o.batch = 32;
  o.seed = 17;
  o.holdout = 0.2;
  ValueTrainReport rep;
  ValueCodec c = train_value_codec(d, rope, &attn, o, &rep);
  EXPECT_EQ(rep.train_tokens, 1600);
  EXPECT_EQ(rep.trained.tokens, 400);
  EXPECT_GT(rep.untrained.rel_mse_values, 0.5);
  EXPECT_LT(rep.trained.rel_mse_values, 0.25 * rep.untrained.rel_mse_values)
      << "untrained " << rep.untrained.rel_mse_values << " trained " << rep.trained.rel_mse_values;
  EXPECT_LT(rep.trained.rel_mse_attn, 0.25 * rep.untrained.rel_mse_attn)
      << "untrained " << rep.untrained.rel_mse_attn << " trained " << rep.trained.rel_mse_attn;
  ASSERT_GE(rep.loss_curve.size(), 2u);
  EXPECT_LT(rep.loss_curve.back().second, rep.loss_curve.front().second);

  // Same seed: identical parameters and metrics. Another seed: different parameters.
  ValueTrainReport rep2;
  ValueCodec c2 = train_value_codec(d, rope, &attn, o, &rep2);
  EXPECT_EQ(c.w1, c2.w1);
  EXPECT_EQ(c.codebook, c2.codebook);
  EXPECT_EQ(rep.trained.rel_mse_values, rep2.trained.rel_mse_values);
  // The thread count does not change the numbers (fixed shards, per-sequence reductions).
  const int threads = ThreadPool::global().size();
  ThreadPool::set_global_threads(threads == 1 ? 2 : 1);
  ValueCodec c4 = train_value_codec(d, rope, &attn, o, nullptr);
  ThreadPool::set_global_threads(threads);
  EXPECT_EQ(c.codebook, c4.codebook);
  EXPECT_EQ(c.w2, c4.w2);
  o.seed = 18;
  ValueCodec c3 = train_value_codec(d, rope, &attn, o, nullptr);
  EXPECT_NE(c.codebook, c3.codebook);
}

TEST(ValueTrainer, ValueOnlyLossWorksWithoutAttentionData) {
  ValueLayerData d = synthetic_layer(1, 1500, 5);
  d.keys_pre_rope.clear();
  d.queries.clear();
  ValueTrainOptions o;
  o.steps = 200;
  o.batch = 32;
  ValueTrainReport rep;
  train_value_codec(d, Rope(d.head_dim, 10000.0, RopeLayout::Adjacent), nullptr, o, &rep);
  EXPECT_EQ(rep.trained.rel_mse_attn, 0.0);
  EXPECT_LT(rep.trained.rel_mse_values, 0.3 * rep.untrained.rel_mse_values);
}

TEST(ValueTrainer, AttentionGramMatchesDirectSum) {
  ValueLayerData d = synthetic_layer(2, 50, 6);
  const Rope rope(d.head_dim, 10000.0, RopeLayout::HalfSplit);
  const int H = d.n_head, hd = d.head_dim, D = d.dim(), qd = d.q_dim();
  std::vector<float> gram(static_cast<size_t>(d.n_tokens) * H * H, -1.0f);
  value_attention_gram(d, rope, {1}, gram.data());
  EXPECT_EQ(gram[0], -1.0f);  // sequence 0 untouched
  // Direct: P_h[i,t] for sequence 1 in double.
  const int64_t s0 = 50, L = 50;
  std::vector<double> P(static_cast<size_t>(H) * L * L, 0.0);
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < L; ++i) {
      std::vector<double> sc(i + 1);
      double mx = -1e300;
      for (int t = 0; t <= i; ++t) {
        std::vector<float> k(d.keys_pre_rope.begin() + (s0 + t) * D, d.keys_pre_rope.begin() + (s0 + t + 1) * D);
        rope.apply(k.data(), d.n_head_kv, d.positions[s0 + t]);
        double dot = 0;
        for (int j = 0; j < hd; ++j)
          dot += static_cast<double>(d.queries[(s0 + i) * qd + h * hd + j]) * k[(h / 2) * hd + j];
        sc[t] = dot / std::sqrt(static_cast<double>(hd));
        mx = std::max(mx, sc[t]);
      }
      double sum = 0;
      for (auto& x : sc) sum += (x = std::exp(x - mx));
      for (int t = 0; t <= i; ++t) P[(static_cast<size_t>(h) * L + i) * L + t] = sc[t] / sum;
    }
  for (int t = 0; t < L; ++t)
    for (int h = 0; h < H; ++h)
      for (int h2 = 0; h2 < H; ++h2) {
        double g = 0;
        for (int i = t; i < L; ++i)
          g += P[(static_cast<size_t>(h) * L + i) * L + t] * P[(static_cast<size_t>(h2) * L + i) * L + t];
        EXPECT_NEAR(gram[((s0 + t) * H + h) * H + h2], g, 1e-4 * (1 + g));
      }
}

// ---------------------------------------------------------------------------------------------
// collect on a tiny model

struct TinyCollect {
  std::string dir, model_path;
  std::unique_ptr<LlamaModel> model;
  test::TinyModelWeights weights;
  std::vector<std::string> texts;

  TinyCollect() {
    dir = tmp_path("collect");
    fs::remove_all(dir);
    fs::create_directories(dir);
    model_path = dir + "/tiny.gguf";
    test::TinyModelSpec spec;
    spec.n_layers = 2;
    weights = test::write_tiny_model(model_path, spec);
    model = LlamaModel::load(model_path);
    const char* docs[] = {
        "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want "
        "of a wife. However little known the feelings or views of such a man may be on his first entering a "
        "neighbourhood, this truth is so well fixed in the minds of the surrounding families.",
        "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, seemed to unite "
        "some of the best blessings of existence; and had lived nearly twenty-one years in the world with very "
        "little to distress or vex her. She was the youngest of the two daughters of a most affectionate father."};
    for (int i = 0; i < 2; ++i) {
      texts.push_back(dir + "/doc" + std::to_string(i) + ".txt");
      write_file_atomic(texts.back(), docs[i]);
    }
  }
  ~TinyCollect() { fs::remove_all(dir); }

  CollectOptions options(const std::string& out) const {
    CollectOptions o;
    o.sources = texts;
    o.tokens = 450;
    o.ctx = 100;
    o.out_dir = out;
    o.dtype = StDtype::F32;
    o.chunk_tokens = 150;
    return o;
  }
};

TEST(Collect, WritesWhatTheObserverSawWithManifest) {
  TinyCollect tc;
  const auto& cfg = tc.model->config();
  const CollectOptions o = tc.options(tc.dir + "/full");
  const CollectResult r = collect_activations(*tc.model, o);
  ASSERT_TRUE(r.complete);
  EXPECT_EQ(r.n_tokens, 450);
  EXPECT_EQ(r.chunks_total, 3);

  // The same plan run by hand, observing the forward pass.
  std::vector<std::string> texts;
  for (const auto& t : tc.texts) texts.push_back(read_file(t));
  const auto seqs = plan_collect_sequences(tc.model->tokenizer(), texts, o.tokens, o.ctx);
  ASSERT_EQ(static_cast<int>(seqs.size()), r.n_sequences);
  EXPECT_EQ(seqs[0].doc, 0);  // round-robin over the documents
  EXPECT_EQ(seqs[1].doc, 1);
  const KvGeometry geo = tc.model->kv_geometry();
  std::vector<std::vector<float>> seen_k(cfg.n_layers), seen_v(cfg.n_layers), seen_q(cfg.n_layers);
  LayerObserver obs = [&](int l, const float* q, const float* k, const float* v, const int32_t*, int n) {
    seen_q[l].insert(seen_q[l].end(), q, q + static_cast<int64_t>(n) * geo.q_dim());
    seen_k[l].insert(seen_k[l].end(), k, k + static_cast<int64_t>(n) * geo.kv_dim());
    seen_v[l].insert(seen_v[l].end(), v, v + static_cast<int64_t>(n) * geo.kv_dim());
  };
  std::vector<int64_t> starts{0};
  for (const auto& s : seqs) {
    auto cache = make_kv_cache("fp16", geo);
    std::vector<int32_t> pos(s.tokens.size());
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i);
    tc.model->forward(s.tokens.data(), pos.data(), static_cast<int>(pos.size()), *cache, LlamaModel::Logits::None,
                      &obs);
    starts.push_back(starts.back() + static_cast<int64_t>(s.tokens.size()));
  }
  for (int l = 0; l < cfg.n_layers; ++l) {
    SafetensorsReader f(collect_layer_file(o.out_dir, l));
    EXPECT_EQ(f.tensor("keys").shape, (std::vector<int64_t>{450, geo.kv_dim()}));
    EXPECT_EQ(f.tensor("queries").shape, (std::vector<int64_t>{450, geo.q_dim()}));
    EXPECT_EQ(f.floats("keys"), seen_k[l]) << "layer " << l;  // pre-RoPE, exactly as observed
    EXPECT_EQ(f.floats("values"), seen_v[l]);
    EXPECT_EQ(f.floats("queries"), seen_q[l]);
    const auto& ts = f.tensor("seq_starts", StDtype::I64, {static_cast<int64_t>(starts.size())});
    EXPECT_EQ(std::vector<int64_t>(reinterpret_cast<const int64_t*>(ts.data),
                                   reinterpret_cast<const int64_t*>(ts.data) + starts.size()),
              starts);
    const auto& tp = f.tensor("positions", StDtype::I32, {450});
    const auto* pp = reinterpret_cast<const int32_t*>(tp.data);
    for (size_t s = 0; s + 1 < starts.size(); ++s)
      for (int64_t t = starts[s]; t < starts[s + 1]; ++t) ASSERT_EQ(pp[t], t - starts[s]);
    // The trainer's loader reads it back.
    ValueLayerData d = load_value_layer_data(collect_layer_file(o.out_dir, l), cfg.n_head, cfg.n_head_kv, cfg.head_dim);
    EXPECT_EQ(d.layer, l);
    EXPECT_EQ(d.seq_starts, starts);
    EXPECT_THROW(load_value_layer_data(collect_layer_file(o.out_dir, l), cfg.n_head, cfg.n_head_kv * 2, cfg.head_dim),
                 Error);
  }
  const nlohmann::json m = nlohmann::json::parse(read_file(r.manifest_path));
  EXPECT_EQ(m["n_tokens"], 450);
  EXPECT_EQ(m["ctx"], 100);
  EXPECT_EQ(m["dtype"], "F32");
  EXPECT_EQ(m["geometry"]["n_layers"], cfg.n_layers);
  EXPECT_EQ(m["geometry"]["n_head"], cfg.n_head);
  EXPECT_EQ(m["geometry"]["n_head_kv"], cfg.n_head_kv);
  EXPECT_EQ(m["geometry"]["head_dim"], cfg.head_dim);
  EXPECT_EQ(m["geometry"]["rope"]["layout"], "adjacent");
  EXPECT_EQ(m["model"]["sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(m["sources"].size(), 2u);
  EXPECT_FALSE(fs::exists(o.out_dir + "/.parts"));
  SafetensorsReader toks(o.out_dir + "/tokens.safetensors");
  EXPECT_EQ(toks.tensor("tokens").shape, (std::vector<int64_t>{450}));

  // o_proj as the trainer takes it from the model.
  for (int l = 0; l < cfg.n_layers; ++l) {
    EXPECT_EQ(tc.model->dense_attn_output(l), tc.weights.get("blk." + std::to_string(l) + ".attn_output.weight"));
  }
  EXPECT_THROW(tc.model->dense_attn_output(cfg.n_layers), Error);

  // Running again is a no-op; other settings into the same folder are refused.
  EXPECT_TRUE(collect_activations(*tc.model, o).was_complete);
  CollectOptions other = o;
  other.tokens = 451;
  EXPECT_THROW(collect_activations(*tc.model, other), Error);
}

TEST(Collect, ResumesAfterAnInterruption) {
  TinyCollect tc;
  const CollectOptions full = tc.options(tc.dir + "/full");
  ASSERT_TRUE(collect_activations(*tc.model, full).complete);

  CollectOptions o = tc.options(tc.dir + "/resumed");
  o.stop_after_chunks = 1;
  CollectResult r1 = collect_activations(*tc.model, o);
  EXPECT_FALSE(r1.complete);
  EXPECT_EQ(r1.chunks_run, 1);
  EXPECT_FALSE(fs::exists(r1.manifest_path));
  o.stop_after_chunks = -1;
  CollectResult r2 = collect_activations(*tc.model, o);
  EXPECT_TRUE(r2.complete);
  EXPECT_EQ(r2.chunks_skipped, 1);
  EXPECT_EQ(r2.chunks_run, 2);
  for (int l = 0; l < tc.model->config().n_layers; ++l) {
    EXPECT_EQ(read_file(collect_layer_file(full.out_dir, l)), read_file(collect_layer_file(o.out_dir, l)))
        << "layer " << l;
  }
  EXPECT_EQ(read_file(full.out_dir + "/tokens.safetensors"), read_file(o.out_dir + "/tokens.safetensors"));
}

TEST(Collect, RefusesAFolderAnotherRunIsWritingInto) {
  TinyCollect tc;
  const CollectOptions o = tc.options(tc.dir + "/locked");
  fs::create_directories(o.out_dir);
  const int fd = ::open(o.out_dir.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  try {
    collect_activations(*tc.model, o);
    ADD_FAILURE() << "a locked folder was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another `collect`"), std::string::npos) << e.what();
  }
  ::close(fd);
  EXPECT_TRUE(collect_activations(*tc.model, o).complete);
}

TEST(Collect, F16StorageRoundsWhatWasObserved) {
  TinyCollect tc;
  CollectOptions o = tc.options(tc.dir + "/f16");
  o.dtype = StDtype::F16;
  o.tokens = 120;
  ASSERT_TRUE(collect_activations(*tc.model, o).complete);
  CollectOptions o32 = tc.options(tc.dir + "/f32");
  o32.tokens = 120;
  ASSERT_TRUE(collect_activations(*tc.model, o32).complete);
  SafetensorsReader a(collect_layer_file(o.out_dir, 1)), b(collect_layer_file(o32.out_dir, 1));
  EXPECT_EQ(a.tensor("keys").dtype, StDtype::F16);
  const auto ka = a.floats("keys"), kb = b.floats("keys");
  ASSERT_EQ(ka.size(), kb.size());
  for (size_t i = 0; i < ka.size(); ++i) ASSERT_EQ(ka[i], fp16_to_float(float_to_fp16(kb[i])));
}

}  // namespace
}  // namespace cvq
