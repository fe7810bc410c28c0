#pragma once
// Greedy decoding with the GPU model: greedy_decode of tasks/generation.h (prefill the prompt, then one
// token per forward until max_new_tokens or an end-of-generation token), for `bench engine
// --device cuda`.
#include <vector>

#include "tasks/generation.h"

namespace cvq {
class Tokenizer;
}

namespace cvq::gpu {

class GpuLlamaModel;
class GpuKvCache;

GenerationResult generate_greedy_gpu(GpuLlamaModel& model, GpuKvCache& cache, const Tokenizer& tok,
                                     const std::vector<int32_t>& prompt, int max_new_tokens);

}  // namespace cvq::gpu
