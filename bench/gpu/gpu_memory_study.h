#pragma once
// Peak device memory of decoding at a long context with the model resident: weights + KV cache
// (fp16 or CommVQ) + activations, measured (our allocator's peak and the driver's used-memory
// delta, cudaMemGetInfo) next to the analytical count. Random weights of a preset's shapes stand in
// for the real file (`--arch llama-3.1-8b --random-weights`); the cache is filled with random
// contents to `context` tokens, then `decode_steps` tokens are decoded one at a time.
#include <cstdint>
#include <string>

#include "model/llama_config.h"

namespace cvq::gpu {

struct GpuMemoryReport {
  std::string kv;  // "fp16", "commvq-1", "commvq-2"
  int64_t context = 0;
  // Analytical (bytes): weights as stored on the device, cache at context + decoded tokens
  // (stored bytes), cache as allocated for its capacity, codebooks.
  size_t weights_bytes = 0, cache_bytes = 0, cache_allocated_bytes = 0, codebook_bytes = 0;
  size_t analytic_total = 0;  // weights + cache allocated + codebooks
  // Measured.
  size_t allocator_peak_bytes = 0;     // everything allocated through DeviceBuffer (incl. activations)
  size_t driver_used_delta_bytes = 0;  // cudaMemGetInfo used, after the run minus before loading
  double decode_ms_per_token = 0.0;    // median
  std::string device;
};

// kv: "fp16" or "commvq-1" / "commvq-2". Run one report per process for clean driver numbers.
GpuMemoryReport gpu_decode_memory(const LlamaConfig& config, const std::string& kv, int64_t context, int decode_steps,
                                  uint64_t seed);

}  // namespace cvq::gpu
