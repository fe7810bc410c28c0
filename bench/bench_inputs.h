#pragma once
// The prompts the benchmarks time: cut from a text file, WikiText-2 test by default.
#include <cstdint>
#include <string>
#include <vector>

namespace cvq {

class KvCache;
class LlamaModel;

// The benches' --text: the given file, or WikiText-2 test from the data folder when empty.
std::string bench_text_path(const std::string& text);
// The first n tokens of that file (no BOS); throws naming the file when it is shorter.
std::vector<int32_t> bench_prompt_tokens(const LlamaModel& model, const std::string& text_path, int n);
// Every token of the file (no BOS); throws naming the file when it has none.
std::vector<int32_t> bench_text_tokens(const LlamaModel& model, const std::string& text_path);
// n tokens: ids repeated from their start as often as needed (long-context prompts).
std::vector<int32_t> repeat_tokens(const std::vector<int32_t>& ids, int n);
// 0, 1, ..., n-1
std::vector<int32_t> bench_positions(int n);
// Prefills `prompt` into every cache, once per group that can share a prefill
// (kv/shared_prefill_cache.h); returns each cache's greedy next token.
std::vector<int32_t> prefill_shared(const LlamaModel& model, const std::vector<int32_t>& prompt,
                                    const std::vector<KvCache*>& caches);

}  // namespace cvq
