#include "tasks/synthetic_retrieval.h"

#include <cmath>
#include <cstdio>
#include <random>

#include "core/error.h"
#include "model/llama_model.h"

namespace cvq {

const char* const kInfiniteBenchFiller =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n";

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// One generator per (seed, task kind, sample): samples do not depend on each other or on the length.
std::mt19937_64 sample_rng(uint64_t seed, SyntheticKind kind, int64_t i) {
  return std::mt19937_64(
      splitmix64(seed ^ splitmix64(static_cast<uint64_t>(kind) * 1000003ull + static_cast<uint64_t>(i))));
}

std::string uuid4(std::mt19937_64& rng) {
  const uint64_t a = rng(), b = rng();
  unsigned char bytes[16];
  for (int k = 0; k < 8; ++k) bytes[k] = static_cast<unsigned char>(a >> (8 * k));
  for (int k = 0; k < 8; ++k) bytes[8 + k] = static_cast<unsigned char>(b >> (8 * k));
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0F) | 0x40);  // version 4
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3F) | 0x80);  // RFC 4122 variant
  char buf[40];
  std::snprintf(buf, sizeof buf, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", bytes[0],
                bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10],
                bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]);
  return buf;
}

const char* kind_name(SyntheticKind k) {
  switch (k) {
    case SyntheticKind::Passkey:
      return "passkey";
    case SyntheticKind::NumberString:
      return "number_string";
    case SyntheticKind::KvRetrieval:
      return "kv_retrieval";
  }
  return "?";
}

int default_max_new(SyntheticKind k) {
  switch (k) {
    case SyntheticKind::Passkey:
      return 6;
    case SyntheticKind::NumberString:
      return 12;
    case SyntheticKind::KvRetrieval:
      return 50;
  }
  return 16;
}

struct KvPairs {
  std::vector<std::pair<std::string, std::string>> pairs;
};

KvPairs make_pairs(uint64_t seed, SyntheticKind kind, int64_t i, int n) {
  auto rng = sample_rng(seed, kind, i);
  KvPairs p;
  for (int k = 0; k < n; ++k) {
    std::string key = uuid4(rng);
    std::string value = uuid4(rng);
    p.pairs.emplace_back(std::move(key), std::move(value));
  }
  return p;
}

}  // namespace

SyntheticOptions SyntheticOptions::parse(SyntheticKind kind, const TaskOptions& o) {
  o.allow_only({"context_tokens", "depths", "per_depth", "seed", "chat", "max_new_tokens"});
  SyntheticOptions s;
  s.kind = kind;
  s.context_tokens = static_cast<int>(o.get_int("context_tokens", 2048, 64, 1 << 24));
  s.depths = static_cast<int>(o.get_int("depths", 5, 1, 1000));
  s.per_depth = static_cast<int>(o.get_int("per_depth", 2, 1, 100000));
  s.seed = static_cast<uint64_t>(o.get_int("seed", 1234, 0));
  s.chat = o.get_bool("chat", false);
  s.max_new_tokens = static_cast<int>(o.get_int("max_new_tokens", 0, 0, 1 << 16));
  return s;
}

SyntheticRetrievalTask::SyntheticRetrievalTask(SyntheticOptions o) : o_(o) {
  if (o_.max_new_tokens == 0) o_.max_new_tokens = default_max_new(o_.kind);
}

std::string SyntheticRetrievalTask::family() const { return kind_name(o_.kind); }

double SyntheticRetrievalTask::depth_of(int64_t i) const {
  const int64_t d = i % o_.depths;  // depth fastest: any prefix of the samples covers the depths
  return o_.depths == 1 ? 0.5 : static_cast<double>(d) / (o_.depths - 1);
}

std::string SyntheticRetrievalTask::sample_id(int64_t i) const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "depth%03d-%lld", static_cast<int>(std::lround(100 * depth_of(i))),
                static_cast<long long>(i / o_.depths));
  return buf;
}

nlohmann::json SyntheticRetrievalTask::identity() const {
  return {{"task", family()},
          {"context_tokens", o_.context_tokens},
          {"depths", o_.depths},
          {"per_depth", o_.per_depth},
          {"seed", o_.seed},
          {"chat", o_.chat},
          {"max_new_tokens", o_.max_new_tokens},
          {"recipe", "infinitebench-v1"}};
}

std::string SyntheticRetrievalTask::key_of(int64_t i) const {
  auto rng = sample_rng(o_.seed, o_.kind, i);
  if (o_.kind == SyntheticKind::Passkey) {
    return std::to_string(std::uniform_int_distribution<int>(10000, 99999)(rng));
  }
  if (o_.kind == SyntheticKind::NumberString) {
    // 10 digits in runs (InfiniteBench's strings look like "3000077442"): a digit, repeated 1-4 times.
    std::string s;
    int prev = -1;
    while (s.size() < 10) {
      int d;
      do d = std::uniform_int_distribution<int>(s.empty() ? 1 : 0, 9)(rng);
      while (d == prev);
      const int run = std::uniform_int_distribution<int>(1, 4)(rng);
      for (int k = 0; k < run && s.size() < 10; ++k) s += static_cast<char>('0' + d);
      prev = d;
    }
    return s;
  }
  throw Error("kv_retrieval: key_of needs the pair count; use prompt()");
}

TaskPrompt SyntheticRetrievalTask::build(int64_t i, int units) const {
  TaskPrompt p;
  p.id = sample_id(i);
  p.chat = o_.chat;
  p.max_new_tokens = o_.max_new_tokens;
  const double depth = depth_of(i);
  p.meta = {{"depth", depth}, {"context_tokens", o_.context_tokens}};
  char group[32];
  std::snprintf(group, sizeof group, "depth=%.2f", depth);
  p.meta["group"] = group;
  if (o_.kind == SyntheticKind::KvRetrieval) {
    const KvPairs kv = make_pairs(o_.seed, o_.kind, i, units);
    const int target = static_cast<int>(std::lround(depth * (units - 1)));
    std::string context = "JSON data:\n{";
    for (int k = 0; k < units; ++k) {
      if (k) context += ", ";
      context += "\"" + kv.pairs[k].first + "\": \"" + kv.pairs[k].second + "\"";
    }
    context += "}";
    const std::string input =
        "\nKey: \"" + kv.pairs[target].first + "\"\nThe value associated with the specified key is: ";
    p.text =
        "Extract the value corresponding to the specified key in the JSON object below.\n\n" + context + "\n\n" + input;
    p.gold = kv.pairs[target].second;
    p.meta["pairs"] = units;
    p.meta["target_index"] = target;
    return p;
  }
  const std::string key = key_of(i);
  const int j = static_cast<int>(std::lround(depth * units));
  std::string needle, input, tail;
  if (o_.kind == SyntheticKind::Passkey) {
    needle = "The pass key is " + key + ". Remember it. " + key + " is the pass key.\n";
    input = "What is the pass key?";
    tail = "The pass key is";
  } else {
    needle = "The sequence of digits is " + key + ". Remember it. " + key + " is the sequence of digits.\n";
    input = "What is the sequence of digits?";
    tail = "The sequence of digits is";
  }
  std::string context;
  context.reserve(static_cast<size_t>(units + 1) * 100);
  for (int k = 0; k < j; ++k) context += kInfiniteBenchFiller;
  context += needle;
  for (int k = j; k < units; ++k) context += kInfiniteBenchFiller;
  p.text =
      "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you "
      "about the important information.\n\n" +
      context + "\n\n" + input + "\n\n" + tail;
  p.gold = key;
  p.meta["filler_lines"] = units;
  return p;
}

int SyntheticRetrievalTask::units_for(const LlamaModel& model) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (units_ >= 0) return units_;
  // The largest count whose prompt (sample 0, template included) leaves a little slack under the
  // target; tokens grow monotonically with the count, so bisect.
  const int limit = std::min(o_.context_tokens, model.config().n_ctx_train - o_.max_new_tokens) - 4;
  auto tokens_at = [&](int units) { return count_prompt_tokens(model, build(0, units)); };
  if (tokens_at(1) > limit) {
    throw Error(family() + ": context_tokens " + std::to_string(o_.context_tokens) +
                " is too small for one unit of context");
  }
  int lo = 1, hi = 2;
  while (tokens_at(hi) <= limit) lo = hi, hi *= 2;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    (tokens_at(mid) <= limit ? lo : hi) = mid;
  }
  units_ = lo;
  return units_;
}

TaskPrompt SyntheticRetrievalTask::prompt(int64_t i, const LlamaModel& model) const {
  if (i < 0 || i >= size()) throw Error(family() + ": sample index out of range");
  return build(i, units_for(model));
}

}  // namespace cvq
