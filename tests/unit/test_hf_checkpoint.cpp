// Hugging Face checkpoint folders: GGUF -> convert -> HF folder -> load gives the model back, and
// bad folders fail with one error naming the file at fault.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "commvq/kv_methods.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/safetensors.h"
#include "kv/kv_cache.h"
#include "model/hf_checkpoint.h"
#include "model/hf_config.h"
#include "model/hf_export.h"
#include "model/llama_model.h"
#include "model/model_identity.h"
#include "support/tiny_model.h"

namespace cvq {
namespace {

namespace fs = std::filesystem;

std::string tmp(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("cvq_hf_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  return p.string();
}

std::vector<float> all_logits(const LlamaModel& m, const std::vector<int32_t>& tokens) {
  auto cache = make_kv_cache("fp16", m.kv_geometry());
  std::vector<int32_t> pos(tokens.size());
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i);
  return m.forward(tokens.data(), pos.data(), static_cast<int>(tokens.size()), *cache, LlamaModel::Logits::All);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - double(b[i])));
  return d;
}

// The error message must name `file` (its last path component is enough for a folder's file).
template <typename F>
void expect_error_naming(F&& f, const std::string& file, const std::string& words) {
  try {
    f();
    FAIL() << "no error (expected one naming " << file << ")";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(file), std::string::npos) << what;
    EXPECT_NE(what.find(words), std::string::npos) << what;
  }
}

class HfRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(HfRoundTrip, ConvertedFolderGivesTheSameModel) {
  test::TinyModelSpec spec = test::kv_test_spec(GetParam());
  spec.tied_embeddings = GetParam() == "llama";
  const std::string gguf = tmp("model.gguf"), dir = tmp("folder");
  test::write_tiny_model(gguf, spec);
  auto a = LlamaModel::load(gguf);
  export_hf_checkpoint(*a, dir, StDtype::F32);
  ASSERT_TRUE(is_hf_checkpoint(dir));
  auto b = LlamaModel::load(dir);

  const LlamaConfig &ca = a->config(), &cb = b->config();
  EXPECT_EQ(cb.arch, ca.arch);
  EXPECT_EQ(cb.n_layers, ca.n_layers);
  EXPECT_EQ(cb.n_embd, ca.n_embd);
  EXPECT_EQ(cb.n_head_kv, ca.n_head_kv);
  EXPECT_EQ(cb.head_dim, ca.head_dim);
  EXPECT_EQ(cb.n_vocab, ca.n_vocab);
  EXPECT_EQ(cb.qkv_bias, ca.qkv_bias);
  EXPECT_EQ(cb.rope_layout, RopeLayout::HalfSplit);  // HF order, whatever the GGUF had
  EXPECT_EQ(b->gguf().find_tensor("output.weight") == nullptr, spec.tied_embeddings);
  EXPECT_EQ(b->gguf().tensor("blk.0.attn_q.weight").type, GgmlType::F32);

  const std::string text = "Hello, world! 12345 over   spaces\n";
  EXPECT_EQ(b->tokenizer().encode(text, false, true), a->tokenizer().encode(text, false, true));
  EXPECT_EQ(b->tokenizer().bos(), a->tokenizer().bos());
  EXPECT_EQ(b->tokenizer().eos(), a->tokenizer().eos());

  // Same weights, Q/K rows in the other order: the same attention up to float summation order.
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back((i * 37 + 11) % 256);
  const std::vector<float> la = all_logits(*a, tokens), lb = all_logits(*b, tokens);
  double scale = 0;
  for (float x : la) scale = std::max(scale, std::fabs(double(x)));
  EXPECT_LT(max_abs_diff(la, lb), 1e-4 * scale);

  // bf16 weights: the same model up to bf16 rounding of the weights.
  const std::string dir16 = tmp("folder16");
  export_hf_checkpoint(*a, dir16, StDtype::BF16);
  auto c = LlamaModel::load(dir16);
  EXPECT_EQ(c->gguf().tensor("blk.0.ffn_up.weight").type, GgmlType::BF16);
  const std::vector<float> lc = all_logits(*c, tokens);
  EXPECT_LT(max_abs_diff(la, lc), 0.05 * scale);
  EXPECT_GT(max_abs_diff(la, lc), 0.0);  // really rounded

  EXPECT_NE(model_sha256(dir), model_sha256(dir16));
  EXPECT_EQ(
      model_bytes(dir),
      static_cast<int64_t>(fs::file_size(dir + "/model.safetensors") + fs::file_size(dir + "/config.json") +
                           fs::file_size(dir + "/tokenizer.json") + fs::file_size(dir + "/tokenizer_config.json") +
                           fs::file_size(dir + "/generation_config.json")));
  expect_error_naming([&] { export_hf_checkpoint(*a, dir, StDtype::F32); }, dir, "already exists");
  for (const auto& p : {gguf, dir, dir16}) fs::remove_all(p);
}

INSTANTIATE_TEST_SUITE_P(Arch, HfRoundTrip, ::testing::Values("llama", "mistral", "qwen2"));

TEST(HfConfig, Llama3RopeFactorsMatchTransformersRewrite) {
  // LLaMA-3.1-8B: theta 5e5, factor 8, low 1, high 4, original 8192. transformers' rewritten inverse
  // frequency is theta_i / factor_i; spot values computed from its _compute_llama3_parameters.
  const auto f = llama3_rope_freq_factors(128, 500000.0, 8.0, 1.0, 4.0, 8192.0);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);   // wavelength 2*pi < 2048: unchanged
  EXPECT_FLOAT_EQ(f[63], 8.0f);  // longest wavelengths: divided by the factor
  // i = 40: wavelength 2*pi*5e5^(80/128) is above 8192 -> divided by the factor.
  const double w40 = 2 * M_PI * std::pow(500000.0, 80.0 / 128.0);
  EXPECT_GT(w40, 8192.0);
  EXPECT_FLOAT_EQ(f[40], 8.0f);
  // i = 30: wavelength ~ 3.2e3, in the blended band: 1 / ((1 - s)/8 + s), s = (8192/w - 1)/3.
  const double w30 = 2 * M_PI * std::pow(500000.0, 60.0 / 128.0);
  ASSERT_GT(w30, 2048.0);
  ASSERT_LT(w30, 8192.0);
  const double s = (8192.0 / w30 - 1.0) / 3.0;
  EXPECT_NEAR(f[30], 1.0 / ((1.0 - s) / 8.0 + s), 1e-5);
}

// A folder converted from the tiny model, then broken in one way per case.
class HfBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    gguf_ = tmp("bad.gguf");
    dir_ = tmp("bad");
    test::write_tiny_model(gguf_, test::kv_test_spec("qwen2"));
    export_hf_checkpoint(*LlamaModel::load(gguf_), dir_, StDtype::F32);
  }
  void TearDown() override {
    fs::remove_all(gguf_);
    fs::remove_all(dir_);
  }
  // Rewrites model.safetensors through `edit`, which may drop, rename or replace tensors.
  void rewrite_weights(const std::function<void(const StTensorView&, SafetensorsWriter&)>& edit,
                       const std::string& file = "model.safetensors") {
    const std::string path = dir_ + "/model.safetensors";
    SafetensorsWriter w;
    {
      SafetensorsReader r(path);
      for (const std::string& n : r.names()) edit(r.tensor(n), w);
    }
    w.write(dir_ + "/" + file);
  }
  void edit_json(const std::string& file, const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = read_json_file(dir_ + "/" + file);
    edit(j);
    write_file_atomic(dir_ + "/" + file, j.dump());
  }
  std::string gguf_, dir_;
};

void copy_tensor(const StTensorView& t, SafetensorsWriter& w) { w.add(t.name, t.dtype, t.shape, t.data, t.n_bytes); }

TEST_F(HfBadInput, WrongShapeNamesTheTensorAndTheShard) {
  rewrite_weights([](const StTensorView& t, SafetensorsWriter& w) {
    if (t.name == "model.layers.1.mlp.up_proj.weight") {
      std::vector<float> v(static_cast<size_t>(t.numel()), 0.0f);
      w.add_f32(t.name, {t.shape[1], t.shape[0]}, v);  // transposed
    } else {
      copy_tensor(t, w);
    }
  });
  expect_error_naming([&] { LlamaModel::load(dir_); }, dir_ + "/model.safetensors",
                      "'model.layers.1.mlp.up_proj.weight' has shape");
}

TEST_F(HfBadInput, WrongDtypeIsRefused) {
  rewrite_weights([](const StTensorView& t, SafetensorsWriter& w) {
    if (t.name == "model.norm.weight") {
      w.add_i32(t.name, t.shape, std::vector<int32_t>(static_cast<size_t>(t.numel()), 1));
    } else {
      copy_tensor(t, w);
    }
  });
  expect_error_naming([&] { LlamaModel::load(dir_); }, dir_ + "/model.safetensors", "dtype I32");
}

TEST_F(HfBadInput, MissingTensorIsNamed) {
  rewrite_weights([](const StTensorView& t, SafetensorsWriter& w) {
    if (t.name != "model.layers.0.self_attn.k_proj.bias") copy_tensor(t, w);
  });
  expect_error_naming([&] { LlamaModel::load(dir_); }, dir_ + "/model.safetensors",
                      "'model.layers.0.self_attn.k_proj.bias' is missing");
}

TEST_F(HfBadInput, ShardedFolderLoadsAndItsFaultsAreNamed) {
  // Split into two shards with an index, as save_pretrained does for large models.
  nlohmann::json map = nlohmann::json::object();
  {
    SafetensorsReader r(dir_ + "/model.safetensors");
    SafetensorsWriter a, b;
    for (const std::string& n : r.names()) {
      const bool first = n.find("layers.1.") == std::string::npos;
      copy_tensor(r.tensor(n), first ? a : b);
      map[n] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
    a.write(dir_ + "/model-00001-of-00002.safetensors");
    b.write(dir_ + "/model-00002-of-00002.safetensors");
  }
  const std::vector<float> want = all_logits(*LlamaModel::load(dir_), {1, 2, 3, 4});
  fs::remove(dir_ + "/model.safetensors");
  const std::string index = dir_ + "/model.safetensors.index.json";
  write_file_atomic(index, nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump());
  // The same numbers (the data sits at other addresses, which can change float summation order).
  EXPECT_LT(max_abs_diff(all_logits(*LlamaModel::load(dir_), {1, 2, 3, 4}), want), 1e-5);
  EXPECT_EQ(hf_checkpoint_files(dir_).size(), 7u);  // 4 json files, the index, 2 shards

  // The index names a tensor the shard does not hold.
  nlohmann::json moved = map;
  moved["model.norm.weight"] = "model-00002-of-00002.safetensors";
  write_file_atomic(index, nlohmann::json{{"weight_map", moved}}.dump());
  expect_error_naming([&] { LlamaModel::load(dir_); }, dir_ + "/model-00002-of-00002.safetensors",
                      "'model.norm.weight' is missing");
  // A shard is missing.
  write_file_atomic(index, nlohmann::json{{"weight_map", map}}.dump());
  fs::remove(dir_ + "/model-00002-of-00002.safetensors");
  expect_error_naming([&] { LlamaModel::load(dir_); }, index, "model-00002-of-00002.safetensors', which is missing");
}

TEST_F(HfBadInput, TruncatedSafetensorsHeaderNamesTheFile) {
  const std::string path = dir_ + "/model.safetensors";
  const std::string bytes = read_file(path);
  write_file_atomic(path, bytes.substr(0, 40));
  expect_error_naming([&] { LlamaModel::load(dir_); }, path, "truncated");
}

TEST_F(HfBadInput, UnsupportedTokenizerAndArchitectureAreNamed) {
  edit_json("tokenizer.json", [](nlohmann::json& j) { j["model"]["type"] = "Unigram"; });
  expect_error_naming([&] { LlamaModel::load(dir_); }, dir_ + "/tokenizer.json", "'Unigram' is not supported");
  edit_json("tokenizer.json", [](nlohmann::json& j) {
    j["model"]["type"] = "BPE";
    j["pre_tokenizer"] = {{"type", "Metaspace"}};
  });
  expect_error_naming([&] { LlamaModel::load(dir_); }, dir_ + "/tokenizer.json",
                      "neither a ByteLevel pre-tokenizer nor byte_fallback");
  edit_json("config.json", [](nlohmann::json& j) { j["model_type"] = "gpt_neox"; });
  expect_error_naming([&] { LlamaModel::load(dir_); }, dir_ + "/config.json", "'gpt_neox' is not supported");
  fs::remove(dir_ + "/config.json");
  EXPECT_FALSE(is_hf_checkpoint(dir_));
}

TEST_F(HfBadInput, ConfigShapeDisagreeingWithWeightsIsNamed) {
  edit_json("config.json", [](nlohmann::json& j) { j["intermediate_size"] = 100; });
  expect_error_naming([&] { LlamaModel::load(dir_); }, dir_ + "/model.safetensors", "from config.json");
}

// Random damage to a safetensors header: every case loads or throws cvq::Error, never crashes
// (the suite also runs this under ASan/UBSan).
TEST(SafetensorsFuzz, DamagedHeadersNeverCrash) {
  const std::string path = tmp("fuzz.safetensors");
  SafetensorsWriter w;
  w.add_f32("a", {4, 8}, std::vector<float>(32, 0.5f));
  w.add_i32("b", {3}, {1, 2, 3});
  w.set_metadata("k", "v");
  w.write(path);
  const std::string good = read_file(path);
  uint64_t header_len;
  std::memcpy(&header_len, good.data(), 8);
  std::mt19937 rng(7);
  const std::string alphabet = "{}[]\",:0123456789-eE.FIBUtruefalsnl \\x";
  int loaded = 0, refused = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string bad = good;
    const int kind = i % 4;
    if (kind == 0) {  // overwrite a few header bytes with JSON-ish characters
      for (int k = 0; k < 1 + i % 5; ++k) bad[8 + rng() % header_len] = alphabet[rng() % alphabet.size()];
    } else if (kind == 1) {  // truncate anywhere
      bad.resize(rng() % good.size());
    } else if (kind == 2) {  // a wrong header length
      const uint64_t len = (i % 8 == 2) ? rng() : header_len + (rng() % 64) - 32;
      std::memcpy(bad.data(), &len, 8);
    } else {  // delete a byte range of the header
      const size_t at = 8 + rng() % header_len, n = 1 + rng() % 16;
      bad.erase(at, std::min(n, bad.size() - at));
    }
    write_file_atomic(path, bad);
    try {
      SafetensorsReader r(path);
      unsigned sum = 0;  // touch every byte the reader hands out: it must lie inside the file
      for (const std::string& n : r.names()) {
        const StTensorView& t = r.tensor(n);
        for (size_t k = 0; k < t.n_bytes; ++k) sum += t.data[k];
      }
      volatile unsigned sink = sum;
      (void)sink;
      ++loaded;
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_EQ(loaded + refused, 1500);
  EXPECT_GT(refused, 1000);
  fs::remove(path);
}

}  // namespace
}  // namespace cvq
