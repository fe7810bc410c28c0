#include "support/shared_prefill_check.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "commvq/commvq_codebook.h"
#include "commvq/kv_methods.h"
#include "kv/kv_cache.h"
#include "kv/kvquant_calib.h"
#include "kv/shared_prefill_cache.h"
#include "model/llama_model.h"
#include "tasks/generation.h"

namespace cvq::test {

std::vector<std::string> every_method_spec(const LlamaModel& model, const std::vector<int32_t>& tokens,
                                           const std::string& prefix, int window) {
  const KvGeometry g = model.kv_geometry();
  KvQuantCalibrator cal(g, 0.01, 1 << 12);
  const LayerObserver observe = [&](int layer, const float*, const float* k, const float* v, const int32_t*, int n) {
    cal.add(layer, k, v, n);
  };
  std::vector<int32_t> pos(tokens.size());
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i);
  auto fp16 = make_kv_cache("fp16", g);
  model.forward(tokens.data(), pos.data(), static_cast<int>(tokens.size()), *fp16, LlamaModel::Logits::None, &observe);
  const std::string calib = prefix + ".kvquant.safetensors";
  cal.finish({2, 3, 4}, g.model_name).save(calib);
  const std::string cb2 = prefix + ".cb2.safetensors", cb1 = prefix + ".cb1.safetensors";
  random_commvq_codebook(g, 2, true, 11).save(cb2);
  random_commvq_codebook(g, 1, true, 12).save(cb1);
  const std::string w = std::to_string(window);
  return {"fp16",
          "q8_0",
          "q4_0",
          "kivi:k=2,v=2,group=32,window=" + w,
          "kivi:k=1,v=1,group=32,window=" + w,
          "kvquant:bits=2,calib=" + calib + ",window=" + w,
          "commvq:bits=2,codebook=" + cb2 + ",window=" + w,
          "commvq:bits=1,codebook=" + cb1 + ",window=" + w};
}

void expect_shared_equals_separate(const LlamaModel& model, const std::vector<std::string>& specs,
                                   const std::vector<std::string>& own, const std::vector<int32_t>& prompt,
                                   int max_new_tokens) {
  const KvGeometry g = model.kv_geometry();
  const int n = static_cast<int>(prompt.size()), V = model.config().n_vocab;
  std::vector<int32_t> pos(prompt.size());
  for (int i = 0; i < n; ++i) pos[i] = i;
  const int32_t next = prompt[n / 2];  // any token, the same for every method

  // Alone: prefill logits and one decode step per method.
  std::vector<std::vector<float>> pre(specs.size()), step(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    auto c = make_kv_cache(specs[i], g);
    pre[i] = model.forward(prompt.data(), pos.data(), n, *c, LlamaModel::Logits::Last);
    step[i] = model.forward(&next, &n, 1, *c, LlamaModel::Logits::Last);
  }
  // Together: one prefill per signature group, one batched step for all.
  std::vector<std::unique_ptr<KvCache>> owned;
  std::vector<KvCache*> caches;
  for (const auto& s : specs) {
    owned.push_back(make_kv_cache(s, g));
    caches.push_back(owned.back().get());
  }
  const auto groups = prefill_groups(caches);
  for (const auto& group : groups) {
    std::vector<KvCache*> members;
    for (size_t i : group) members.push_back(caches[i]);
    const bool alone = std::find(own.begin(), own.end(), specs[group[0]]) != own.end();
    EXPECT_EQ(group.size() == 1, alone) << specs[group[0]] << ": prefill group of " << group.size();
    SharedPrefillCache shared(members);
    const std::vector<float> lg = model.forward(prompt.data(), pos.data(), n, shared, LlamaModel::Logits::Last);
    for (size_t i : group) EXPECT_TRUE(lg == pre[i]) << specs[i] << ": shared prefill logits differ from its own";
  }
  const std::vector<int32_t> tokens(specs.size(), next), positions(specs.size(), n);
  const std::vector<float> batch = model.forward_batch(tokens.data(), positions.data(), caches);
  ASSERT_EQ(batch.size(), specs.size() * static_cast<size_t>(V));
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::vector<float> row(batch.begin() + static_cast<std::ptrdiff_t>(i * V),
                                 batch.begin() + static_cast<std::ptrdiff_t>((i + 1) * V));
    EXPECT_TRUE(row == step[i]) << specs[i] << ": batched decode step differs from its own";
  }

  // Whole generations.
  for (KvCache* c : caches) c->clear();
  const BatchGeneration b = generate_greedy_batch(model, caches, prompt, max_new_tokens, {});
  for (size_t i = 0; i < specs.size(); ++i) {
    auto c = make_kv_cache(specs[i], g);
    const GenerationResult r = generate_greedy_ids(model, *c, prompt, max_new_tokens, {}, StopPredicate{});
    EXPECT_EQ(b.results[i].tokens, r.tokens) << specs[i];
    EXPECT_EQ(b.results[i].text, r.text) << specs[i];
    EXPECT_EQ(b.results[i].kv_bytes, r.kv_bytes) << specs[i];
    EXPECT_EQ(caches[i]->n_tokens(0), c->n_tokens(0)) << specs[i];
    const bool alone = std::find(own.begin(), own.end(), specs[i]) != own.end();
    EXPECT_EQ(b.prefill_group_size[i] == 1, alone) << specs[i];
  }
}

}  // namespace cvq::test
