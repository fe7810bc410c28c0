#include "tasks/kv_footprint.h"

#include <algorithm>
#include <random>

#include "core/error.h"
#include "kv/kv_cache.h"
#include "model/llama_model.h"

namespace cvq {

FootprintOptions FootprintOptions::parse(const TaskOptions& o) {
  o.allow_only({"lengths", "measure_up_to", "chunk", "seed"});
  FootprintOptions f;
  f.lengths = o.get_int_list("lengths", f.lengths, 1);
  f.measure_up_to = o.get_int("measure_up_to", f.measure_up_to, 0);
  f.chunk = static_cast<int>(o.get_int("chunk", f.chunk, 1, 1 << 20));
  f.seed = static_cast<uint64_t>(o.get_int("seed", 1234, 0));
  return f;
}

nlohmann::json KvFootprintTask::identity() const {
  return {{"task", "memory"},
          {"lengths", o_.lengths},
          {"measure_up_to", o_.measure_up_to},
          {"chunk", o_.chunk},
          {"seed", o_.seed}};
}

int64_t try_projected_bytes(const KvCache& cache, int64_t n_tokens) {
  try {
    return static_cast<int64_t>(cache.projected_bytes(n_tokens));
  } catch (const Error&) {
    return -1;
  }
}

double bits_per_element(double bytes, int64_t tokens, const KvGeometry& g) {
  const double elements = static_cast<double>(tokens) * g.n_layers * 2.0 * g.kv_dim();
  return elements > 0 ? bytes * 8.0 / elements : 0.0;
}

nlohmann::json KvFootprintTask::run_sample(int64_t i, const LlamaModel& model, KvCache& cache) {
  const int64_t L = o_.lengths.at(static_cast<size_t>(i));
  const KvGeometry g = model.kv_geometry();
  const int D = g.kv_dim();
  nlohmann::json rec = {
      {"id", sample_id(i)}, {"length", L}, {"fp16_bytes", static_cast<double>(L) * g.n_layers * 2.0 * D * 2.0}};
  const int64_t projected = try_projected_bytes(cache, L);
  if (projected >= 0) {
    rec["projected_bytes"] = projected;
    rec["projected_bits_per_element"] = bits_per_element(static_cast<double>(projected), L, g);
  }
  if (L <= o_.measure_up_to) {
    std::mt19937_64 rng(o_.seed + static_cast<uint64_t>(L));
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> k, v;
    std::vector<int32_t> pos;
    // L tokens, then one more: methods that compress lazily at the next append settle the first L.
    for (int64_t start = 0; start < L + 1; start += o_.chunk) {
      const int n = static_cast<int>(std::min<int64_t>(o_.chunk, L + 1 - start));
      k.resize(static_cast<size_t>(n) * D);
      v.resize(k.size());
      pos.resize(n);
      for (int t = 0; t < n; ++t) pos[t] = static_cast<int32_t>(start + t);
      for (int layer = 0; layer < g.n_layers; ++layer) {
        for (auto& x : k) x = nd(rng);
        for (auto& x : v) x = nd(rng);
        cache.append(layer, k.data(), v.data(), pos.data(), n);
      }
    }
    const auto measured = static_cast<double>(cache.bytes());
    rec["measured_bytes"] = measured;
    rec["measured_tokens"] = L + 1;
    rec["measured_bits_per_element"] = bits_per_element(measured, L + 1, g);
  }
  if (!rec.contains("measured_bytes") && !rec.contains("projected_bytes")) {
    throw Error("memory: length " + std::to_string(L) + " is above measure_up_to and '" + cache.spec() +
                "' has no projected_bytes()");
  }
  rec["bits_per_element"] =
      rec.contains("projected_bits_per_element") ? rec["projected_bits_per_element"] : rec["measured_bits_per_element"];
  rec["bits_source"] = rec.contains("projected_bits_per_element") ? "projected" : "measured";
  // The fixed cost (codebooks, value encoders) beside the per-token bytes, and its share at L tokens.
  const double fixed = static_cast<double>(cache.fixed_bytes());
  const double kv_bytes =
      rec.contains("projected_bytes") ? rec["projected_bytes"].get<double>() : rec["measured_bytes"].get<double>();
  rec["fixed_bytes"] = fixed;
  rec["fixed_share"] = fixed > 0 ? fixed / (fixed + kv_bytes) : 0.0;
  rec["score"] = rec["bits_per_element"];
  return rec;
}

}  // namespace cvq
