#pragma once
// Perplexity over non-overlapping windows of `ctx` tokens. Each window starts with an empty cache;
// within a window, every token after the first is scored. Tokens are fed `chunk` at a time, so a
// cache with a full-precision window shorter than the context reads older tokens back from its
// compressed store.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cvq {

class LlamaModel;

struct PerplexityOptions {
  int ctx = 2048;
  int64_t max_tokens = -1;  // use at most this many tokens of the text (-1: all)
  int chunk = 512;          // tokens per forward call
  std::string kv_spec = "fp16";
  bool keep_top1 = false;  // record the argmax prediction at every scored position
};

struct PerplexityResult {
  std::string kv_spec;
  double perplexity = 0.0;
  double nll_sum = 0.0;
  int64_t n_scored = 0;
  int64_t n_tokens = 0;
  int n_windows = 0;
  double seconds = 0.0;
  size_t kv_bytes_at_ctx = 0;  // cache bytes after a full window
  std::vector<int32_t> top1;   // per scored position, window-major (when keep_top1)
  std::vector<double> window_nll;
};

PerplexityResult run_perplexity(const LlamaModel& model, const std::vector<int32_t>& tokens,
                                const PerplexityOptions& opt);

// The same windowing and scoring for any engine (e.g. the GPU model, src/gpu/gpu_perplexity.h):
// reset() starts a window with an empty cache, forward() returns logits [n × n_vocab] for tokens at
// the given positions, cache_bytes() is the cache's size after a window.
struct PerplexityEngine {
  int n_vocab = 0;
  std::function<void()> reset;
  std::function<std::vector<float>(const int32_t* tokens, const int32_t* positions, int n)> forward;
  std::function<size_t()> cache_bytes;
};
PerplexityResult run_perplexity(const PerplexityEngine& engine, const std::vector<int32_t>& tokens,
                                const PerplexityOptions& opt);

}  // namespace cvq
