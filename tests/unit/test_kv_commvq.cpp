// The `commvq:` KV method: native attention on codes equals the simulated (decode-then-attend)
// path, memory is counted exactly, and a codebook for another model is refused.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <random>

#include "commvq/commvq_codebook.h"
#include "commvq/kv_methods.h"
#include "core/error.h"
#include "kv/kv_cache.h"
#include "kv/windowed_cache.h"
#include "model/llama_model.h"
#include "support/tiny_model.h"

namespace cvq {
namespace {

// ctest runs tests as parallel processes: every file name carries the test's name and the pid.
std::string tmp(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string unique =
      std::string(info->test_suite_name()) + "_" + info->name() + "_" + std::to_string(::getpid()) + "_" + name;
  for (char& c : unique)
    if (c == '/') c = '_';
  return (std::filesystem::temp_directory_path() / unique).string();
}

struct TinyCommvq {
  std::string model_path, cb_path;
  std::unique_ptr<LlamaModel> model;
  // centered: every layer gets a key mean of size comparable to the keys (a Qwen2-like key bias).
  TinyCommvq(const std::string& arch, bool structured, bool centered = false)
      : model_path(tmp(centered ? "commvq_tiny_c.gguf" : "commvq_tiny.gguf")),
        cb_path(tmp(centered ? "commvq_tiny_cb_c.safetensors" : "commvq_tiny_cb.safetensors")) {
    test::TinyModelSpec spec;
    spec.arch = arch;
    spec.n_ctx = 1024;
    test::write_tiny_model(model_path, spec);
    model = LlamaModel::load(model_path);
    CommvqCodebook cb = random_commvq_codebook(model->kv_geometry(), 2, structured, 7);
    if (centered) {
      std::mt19937 rng(11);
      std::normal_distribution<float> nd(0.0f, 1.5f);
      for (auto& k : cb.keys) {
        k.mean.resize(static_cast<size_t>(k.kv_dim()));
        for (float& m : k.mean) m = nd(rng);
      }
    }
    cb.save(cb_path);
  }
  ~TinyCommvq() {
    std::filesystem::remove(model_path);
    std::filesystem::remove(cb_path);
  }
  // Feeds n tokens in chunks and returns every logit row.
  std::vector<float> run(const std::string& spec, int n, int chunk, size_t* bytes = nullptr) {
    auto cache = make_kv_cache(spec, model->kv_geometry());
    std::vector<float> all;
    for (int s = 0; s < n; s += chunk) {
      const int m = std::min(chunk, n - s);
      std::vector<int32_t> toks(m), pos(m);
      for (int i = 0; i < m; ++i) {
        toks[i] = ((s + i) * 37 + 5) % 256;
        pos[i] = s + i;
      }
      auto lg = model->forward(toks.data(), pos.data(), m, *cache, LlamaModel::Logits::All);
      all.insert(all.end(), lg.begin(), lg.end());
    }
    if (bytes) *bytes = cache->bytes();
    return all;
  }
};

double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

class CommvqCacheTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CommvqCacheTest, NativeEqualsSimulatedAndDiffersFromFp16) {
  TinyCommvq s(GetParam(), true);
  const std::string base = "commvq:bits=2,codebook=" + s.cb_path + ",window=32";
  size_t native_bytes = 0, sim_bytes = 0;
  // chunk 16 <= window: older tokens are read back from codes; 200 tokens = 6 blocks + a window.
  auto native = s.run(base + ",mode=native", 200, 16, &native_bytes);
  auto simulated = s.run(base + ",mode=simulated", 200, 16, &sim_bytes);
  auto tables = s.run(base + ",mode=native,scores=table", 200, 16);
  auto fp16 = s.run("fp16", 200, 16);
  EXPECT_LT(rel_diff(tables, simulated), 1e-4);
  EXPECT_LT(rel_diff(native, simulated), 1e-4);
  EXPECT_GT(rel_diff(native, fp16), 1e-3) << "the compressed cache was not read back";
  EXPECT_EQ(native_bytes, sim_bytes);
}

INSTANTIATE_TEST_SUITE_P(Layouts, CommvqCacheTest, ::testing::Values("llama", "qwen2"));

// Centered keys (train --key-center): the q·RoPE_m(μ) term of native attention equals decoding
// μ + n·ΣC and attending, for both RoPE pairings; and the mean changes the result.
TEST_P(CommvqCacheTest, CenteredKeysNativeEqualsSimulated) {
  TinyCommvq centered(GetParam(), true, true);
  TinyCommvq plain(GetParam(), true, false);
  const std::string spec = ",window=32";
  auto native = centered.run("commvq:bits=2,codebook=" + centered.cb_path + spec + ",mode=native", 200, 16);
  auto simulated = centered.run("commvq:bits=2,codebook=" + centered.cb_path + spec + ",mode=simulated", 200, 16);
  auto tables =
      centered.run("commvq:bits=2,codebook=" + centered.cb_path + spec + ",mode=native,scores=table", 200, 16);
  auto uncentered = plain.run("commvq:bits=2,codebook=" + plain.cb_path + spec + ",mode=native", 200, 16);
  EXPECT_LT(rel_diff(native, simulated), 1e-4);
  EXPECT_LT(rel_diff(tables, simulated), 1e-4);
  EXPECT_GT(rel_diff(native, uncentered), 1e-3) << "the key mean was not used";
}

TEST(CommvqCache, CenteredPlainVqMatchesSimulated) {
  TinyCommvq s("llama", false, true);
  const std::string base = "commvq:bits=2,codebook=" + s.cb_path + ",window=32";
  EXPECT_LT(rel_diff(s.run(base + ",mode=native", 100, 16), s.run(base + ",mode=simulated", 100, 16)), 1e-4);
}

TEST(CommvqCache, PlainVqAblationRunsAndMatchesSimulated) {
  TinyCommvq s("llama", false);
  const std::string base = "commvq:bits=2,codebook=" + s.cb_path + ",window=32";
  auto native = s.run(base + ",mode=native", 100, 16);
  auto simulated = s.run(base + ",mode=simulated", 100, 16);
  EXPECT_LT(rel_diff(native, simulated), 1e-4);
}

TEST(CommvqCache, BytesAreExactAndMatchTheBitBudget) {
  TinyCommvq s("llama", true);
  const KvGeometry g = s.model->kv_geometry();
  auto cache = make_kv_cache("commvq:bits=2,codebook=" + s.cb_path + ",window=32", g);
  // 150 tokens fed at once then settled: 128 compressed, 22 in the fp16 window.
  std::vector<int32_t> toks(150), pos(150);
  for (int i = 0; i < 150; ++i) {
    toks[i] = i % 256;
    pos[i] = i;
  }
  s.model->forward(toks.data(), pos.data(), 150, *cache, LlamaModel::Logits::None);
  auto* w = dynamic_cast<WindowedCache*>(cache.get());
  ASSERT_NE(w, nullptr);
  w->settle();
  const int R = commvq_key_stages(2, g.head_dim);  // 16/12*... for d=16: round(2*16/12) = 3
  const int64_t key_bits = int64_t{128} * g.n_head_kv * R * 12, value_bits = int64_t{128} * g.kv_dim() * 2;
  const size_t compressed = static_cast<size_t>((key_bits + 7) / 8 + 128 * 2 + value_bits / 8 + 128 * 2);
  const size_t window = static_cast<size_t>(22) * g.kv_dim() * 2 * 2;
  EXPECT_EQ(cache->bytes(), g.n_layers * (compressed + window));
  EXPECT_EQ(cache->projected_bytes(150), cache->bytes());
}

TEST(CommvqCache, CodebookForAnotherModelIsRefused) {
  TinyCommvq s("llama", true);
  KvGeometry other = s.model->kv_geometry();
  other.model_name = "some-other-model";
  try {
    make_kv_cache("commvq:bits=2,codebook=" + s.cb_path, other);
    FAIL() << "accepted a codebook made for another model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another model"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(s.cb_path), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_kv_cache("commvq:bits=1,codebook=" + s.cb_path, s.model->kv_geometry()), Error);
  EXPECT_THROW(make_kv_cache("commvq:bits=2,codebook=/nonexistent.safetensors", s.model->kv_geometry()), Error);
}

// The fixed cost the method holds beside its per-token bytes: the codebook's parameters.
TEST(CommvqCache, FixedBytesAreTheCodebookParameters) {
  TinyCommvq s("llama", true);
  const KvGeometry g = s.model->kv_geometry();
  auto cache = make_kv_cache("commvq:bits=2,codebook=" + s.cb_path, g);
  const size_t params = CommvqCodebook::load(s.cb_path).param_bytes();
  EXPECT_GT(params, 0u);
  EXPECT_EQ(cache->fixed_bytes(), params);
  // Without codebook=: the same count from the shapes alone.
  EXPECT_EQ(make_kv_cache("commvq:bits=2", g)->fixed_bytes(), params);
  EXPECT_EQ(commvq_param_bytes(g, 1, commvq_key_stages(1, g.head_dim), true),
            random_commvq_codebook(g, 1, true, 3).param_bytes());
  EXPECT_EQ(make_kv_cache("fp16", g)->fixed_bytes(), 0u);
  EXPECT_EQ(make_kv_cache("kivi:k=2,v=2,group=16,window=32", g)->fixed_bytes(), 0u);
  // SmolLM2-135M at 2 bits: 30 layers × 3 KV heads × 11 stages × (64 × 32 × 2) key floats, and per
  // layer a value codec of D = 192: scale + LayerNorm 3·192, w1 768×192 + 768, w2 768×768 + 768,
  // codebook 384×192 — 113,794,560 bytes (the "114 MB" file).
  KvGeometry smol;
  smol.n_layers = 30, smol.n_head = 9, smol.n_head_kv = 3, smol.head_dim = 64;
  smol.rope = Rope(64, 100000.0, RopeLayout::HalfSplit);
  const size_t keys = 30ull * 3 * 11 * 64 * 32 * 2;
  const size_t values = 30ull * (3 * 192 + 768 * 192 + 768 + 768 * 768 + 768 + 384 * 192);
  EXPECT_EQ(make_kv_cache("commvq:bits=2", smol)->fixed_bytes(), 4 * (keys + values));
  EXPECT_EQ(4 * (keys + values), 113794560u);
}

TEST(CommvqCache, AccountingWithoutCodebookMatchesThePaperBudget) {
  KvGeometry g;
  g.n_layers = 32;
  g.n_head = 32;
  g.n_head_kv = 8;
  g.head_dim = 128;
  g.rope = Rope(128, 500000.0, RopeLayout::Adjacent);
  const int64_t n = 131072;  // a multiple of 128: no window tokens left
  const double elems = 2.0 * n * g.n_layers * g.kv_dim();
  auto two = make_kv_cache("commvq:bits=2", g);
  auto one = make_kv_cache("commvq:bits=1", g);
  EXPECT_NEAR(8.0 * static_cast<double>(two->projected_bytes(n)) / elems, 2.0,
              0.02);  // 21 stages: 2016 + 16 key bits, 2048 + 16 value bits per 2048 elements = 2.000
  EXPECT_NEAR(8.0 * static_cast<double>(one->projected_bytes(n)) / elems, 1.03, 0.01);  // 11 stages
}

}  // namespace
}  // namespace cvq
