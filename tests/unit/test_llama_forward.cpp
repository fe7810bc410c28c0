// The forward pass against a naive reference written from the architecture's definition, on tiny
// random models of both RoPE layouts; plus batch invariance (prefill == token-by-token decode).
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <filesystem>

#include "commvq/kv_methods.h"
#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/llama_model.h"
#include "support/tiny_model.h"

namespace cvq {
namespace {

using test::TinyModelSpec;
using test::TinyModelWeights;

// Straightforward float64 implementation: no caches, full causal attention recomputed.
std::vector<double> reference_logits(const TinyModelWeights& w, const TinyModelSpec& s,
                                     const std::vector<int32_t>& toks) {
  const int E = s.n_embd, H = s.n_head, Hkv = s.n_head_kv, d = E / H, F = s.n_ff, V = 256,
            T = static_cast<int>(toks.size());
  const bool neox = s.arch == "qwen2";
  auto matvec = [](const std::vector<float>& W, int rows, int cols, const std::vector<double>& x) {
    std::vector<double> y(rows, 0.0);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) y[r] += static_cast<double>(W[static_cast<size_t>(r) * cols + c]) * x[c];
    return y;
  };
  auto rmsnorm = [&](const std::vector<double>& x, const std::vector<float>& g) {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double sc = 1.0 / std::sqrt(ss / x.size() + 1e-5);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * sc * g[i];
    return y;
  };
  auto rope = [&](std::vector<double>& v, int n_heads, int pos) {
    for (int h = 0; h < n_heads; ++h)
      for (int f = 0; f < d / 2; ++f) {
        const int ix = h * d + (neox ? f : 2 * f), iy = h * d + (neox ? f + d / 2 : 2 * f + 1);
        const double ang = pos * std::pow(static_cast<double>(s.rope_theta), -2.0 * f / d);
        const double x = v[ix], y = v[iy];
        v[ix] = x * std::cos(ang) - y * std::sin(ang);
        v[iy] = x * std::sin(ang) + y * std::cos(ang);
      }
  };
  std::vector<std::vector<double>> x(T, std::vector<double>(E));
  const auto& emb = w.get("token_embd.weight");
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < E; ++i) x[t][i] = emb[static_cast<size_t>(toks[t]) * E + i];
  for (int l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (int t = 0; t < T; ++t) {
      auto h = rmsnorm(x[t], w.get(p + "attn_norm.weight"));
      q[t] = matvec(w.get(p + "attn_q.weight"), E, E, h);
      k[t] = matvec(w.get(p + "attn_k.weight"), Hkv * d, E, h);
      v[t] = matvec(w.get(p + "attn_v.weight"), Hkv * d, E, h);
      if (neox) {
        for (int i = 0; i < E; ++i) q[t][i] += w.get(p + "attn_q.bias")[i];
        for (int i = 0; i < Hkv * d; ++i) k[t][i] += w.get(p + "attn_k.bias")[i];
        for (int i = 0; i < Hkv * d; ++i) v[t][i] += w.get(p + "attn_v.bias")[i];
      }
      rope(q[t], H, t);
      rope(k[t], Hkv, t);
    }
    for (int t = 0; t < T; ++t) {
      std::vector<double> att(E, 0.0);
      for (int h = 0; h < H; ++h) {
        const int kvh = h / (H / Hkv);
        std::vector<double> sc(t + 1);
        double mx = -1e300;
        for (int j = 0; j <= t; ++j) {
          double dot = 0;
          for (int i = 0; i < d; ++i) dot += q[t][h * d + i] * k[j][kvh * d + i];
          sc[j] = dot / std::sqrt(static_cast<double>(d));
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (auto& z : sc) sum += (z = std::exp(z - mx));
        for (int j = 0; j <= t; ++j)
          for (int i = 0; i < d; ++i) att[h * d + i] += sc[j] / sum * v[j][kvh * d + i];
      }
      auto o = matvec(w.get(p + "attn_output.weight"), E, E, att);
      for (int i = 0; i < E; ++i) x[t][i] += o[i];
      auto h2 = rmsnorm(x[t], w.get(p + "ffn_norm.weight"));
      auto g = matvec(w.get(p + "ffn_gate.weight"), F, E, h2);
      auto u = matvec(w.get(p + "ffn_up.weight"), F, E, h2);
      for (int i = 0; i < F; ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
      auto down = matvec(w.get(p + "ffn_down.weight"), E, F, g);
      for (int i = 0; i < E; ++i) x[t][i] += down[i];
    }
  }
  std::vector<double> logits;
  const auto& out_w = s.tied_embeddings ? emb : w.get("output.weight");
  for (int t = 0; t < T; ++t) {
    auto h = rmsnorm(x[t], w.get("output_norm.weight"));
    auto y = matvec(out_w, V, E, h);
    logits.insert(logits.end(), y.begin(), y.end());
  }
  return logits;
}

class ForwardTest : public ::testing::TestWithParam<std::tuple<std::string, GgmlType, bool>> {
 protected:
  std::string path_ =
      (std::filesystem::temp_directory_path() / ("tiny_forward_" + std::to_string(::getpid()) + "_" +
                                                 std::to_string(reinterpret_cast<uintptr_t>(this)) + ".gguf"))
          .string();
  void TearDown() override { std::filesystem::remove(path_); }
};

TEST_P(ForwardTest, MatchesNaiveReferenceAndDecodeMatchesPrefill) {
  TinyModelSpec spec;
  spec.arch = std::get<0>(GetParam());
  spec.weight_type = std::get<1>(GetParam());
  spec.tied_embeddings = std::get<2>(GetParam());
  const TinyModelWeights w = write_tiny_model(path_, spec);
  auto model = LlamaModel::load(path_);
  EXPECT_EQ(model->config().rope_layout, spec.arch == "qwen2" ? RopeLayout::HalfSplit : RopeLayout::Adjacent);
  EXPECT_EQ(model->config().qkv_bias, spec.arch == "qwen2");

  std::vector<int32_t> toks;
  for (int i = 0; i < 37; ++i) toks.push_back((i * 73 + 11) % 256);
  std::vector<int32_t> pos(toks.size());
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i);
  const std::vector<double> ref = reference_logits(w, spec, toks);

  auto cache = make_kv_cache("fp16", model->kv_geometry());
  std::vector<float> prefill =
      model->forward(toks.data(), pos.data(), static_cast<int>(toks.size()), *cache, LlamaModel::Logits::All);
  ASSERT_EQ(prefill.size(), ref.size());
  // fp16 KV storage bounds the agreement: relative error ~1e-3 of the logit scale.
  double max_err = 0, max_ref = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_err = std::max(max_err, std::abs(prefill[i] - ref[i]));
    max_ref = std::max(max_ref, std::abs(ref[i]));
  }
  EXPECT_LT(max_err, 5e-3 * max_ref) << "max |err| " << max_err << " vs max |logit| " << max_ref;

  // Token-by-token decode through the same cache type gives the same logits as one prefill. For
  // quantized weights decode quantizes activations to int8 (as llama.cpp does) while prefill runs
  // float SGEMM on dequantized weights, so the two agree to the activation quantization error.
  auto cache2 = make_kv_cache("fp16", model->kv_geometry());
  double diff2 = 0, ref2 = 0;
  for (size_t t = 0; t < toks.size(); ++t) {
    std::vector<float> row = model->forward(&toks[t], &pos[t], 1, *cache2, LlamaModel::Logits::Last);
    for (int j = 0; j < 256; ++j) {
      const double e = row[j] - prefill[t * 256 + j];
      diff2 += e * e;
      ref2 += static_cast<double>(prefill[t * 256 + j]) * prefill[t * 256 + j];
    }
  }
  const double rel_rms = std::sqrt(diff2 / ref2);
  // Measured: ~2e-2 for q8_0 (int8 activations, two layers of a random model), ~1e-6 for float.
  EXPECT_LT(rel_rms, spec.weight_type == GgmlType::Q8_0 ? 5e-2 : 1e-4) << "decode vs prefill relative RMS " << rel_rms;
  EXPECT_EQ(cache2->bytes(), cache->bytes());
  EXPECT_EQ(cache->bytes(), toks.size() * 2 * spec.n_layers * (spec.n_head_kv * spec.n_embd / spec.n_head) * 2);
}

INSTANTIATE_TEST_SUITE_P(Layouts, ForwardTest,
                         ::testing::Values(std::make_tuple("llama", GgmlType::F32, true),
                                           std::make_tuple("qwen2", GgmlType::F32, false),
                                           std::make_tuple("llama", GgmlType::F16, false),
                                           std::make_tuple("llama", GgmlType::Q8_0, true)));

TEST(ForwardErrors, TokenOutsideVocabularyIsAnError) {
  const std::string path = (std::filesystem::temp_directory_path() / "tiny_forward_err.gguf").string();
  write_tiny_model(path, TinyModelSpec{});
  auto model = LlamaModel::load(path);
  auto cache = make_kv_cache("fp16", model->kv_geometry());
  int32_t bad = 999, pos = 0;
  EXPECT_THROW(model->forward(&bad, &pos, 1, *cache, LlamaModel::Logits::Last), Error);
  std::filesystem::remove(path);
}

// --arith llamacpp on a tiny q8_0 model: close to the fp32 forward (8-bit activations are the only
// difference of substance), prefill and token-by-token decode equal bit for bit, and what the mode
// cannot reproduce is refused.
TEST(ForwardLlamaCppArithmetic, CloseToNativeAndBatchIndependent) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("tiny_forward_llamacpp_" + std::to_string(::getpid()) + ".gguf"))
          .string();
  TinyModelSpec spec;
  spec.weight_type = GgmlType::Q8_0;
  write_tiny_model(path, spec);
  auto native = LlamaModel::load(path);
  auto model = LlamaModel::load(path);
  model->use_llamacpp_arithmetic();
  const std::vector<int32_t> tokens = {3, 17, 42, 5, 99, 7, 1, 64};
  std::vector<int32_t> pos(tokens.size());
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i);
  const int n = static_cast<int>(tokens.size());
  auto c0 = make_kv_cache("fp16", native->kv_geometry());
  const std::vector<float> ref = native->forward(tokens.data(), pos.data(), n, *c0, LlamaModel::Logits::All);
  auto c1 = make_kv_cache("fp16:arith=llamacpp", model->kv_geometry());
  const std::vector<float> all = model->forward(tokens.data(), pos.data(), n, *c1, LlamaModel::Logits::All);
  ASSERT_EQ(all.size(), ref.size());
  double err = 0.0, mag = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err += (all[i] - ref[i]) * (all[i] - ref[i]);
    mag += ref[i] * ref[i];
  }
  EXPECT_LT(std::sqrt(err / mag), 0.05);
  auto c2 = make_kv_cache("fp16:arith=llamacpp", model->kv_geometry());
  const int V = static_cast<int>(ref.size()) / n;
  for (int t = 0; t < n; ++t) {
    const std::vector<float> one = model->forward(&tokens[t], &pos[t], 1, *c2, LlamaModel::Logits::Last);
    for (int j = 0; j < V; ++j) ASSERT_EQ(one[j], all[static_cast<size_t>(t) * V + j]) << "token " << t;
  }
  auto plain = make_kv_cache("fp16", model->kv_geometry());
  EXPECT_THROW(model->forward(tokens.data(), pos.data(), 1, *plain, LlamaModel::Logits::Last), Error);
  std::filesystem::remove(path);

  write_tiny_model(path, TinyModelSpec{});  // f32 matrices: not what llama.cpp's quantized path computes
  auto f32 = LlamaModel::load(path);
  try {
    f32->use_llamacpp_arithmetic();
    ADD_FAILURE() << "f32 matrices accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q4_1 and q8_0"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace cvq
