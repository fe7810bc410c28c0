#pragma once
// `eval --task perplexity --device cuda`: the CPU task's windowing and scoring
// (tasks/perplexity.h) over the GPU model with an fp16/bf16 device cache sized to one window.
#include <cstdint>
#include <vector>

#include "tasks/perplexity.h"

namespace cvq {
class LlamaModel;
}

namespace cvq::gpu {

class GpuLlamaModel;

// opt.kv_spec must be "fp16" or "bf16" (the device caches the forward supports); others throw.
PerplexityResult run_perplexity_gpu(GpuLlamaModel& model, const std::vector<int32_t>& tokens,
                                    const PerplexityOptions& opt);

}  // namespace cvq::gpu
