#include "bench/gpu/gpu_memory_study.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "core/error.h"
#include "device/device.h"
#include "gpu/gpu_commvq_cache.h"
#include "gpu/gpu_llama_model.h"

namespace cvq::gpu {

GpuMemoryReport gpu_decode_memory(const LlamaConfig& config, const std::string& kv, int64_t context, int decode_steps,
                                  uint64_t seed) {
  require_cuda("bench gpu-memory");
  if (context <= 0 || decode_steps <= 0) throw Error("bench gpu-memory: context and decode steps must be positive");
  int bits = 0;
  if (kv == "commvq-1")
    bits = 1;
  else if (kv == "commvq-2")
    bits = 2;
  else if (kv != "fp16")
    throw Error("bench gpu-memory: unknown --kv '" + kv + "' (fp16, commvq-1, commvq-2)");
  GpuMemoryReport r;
  r.kv = kv;
  r.context = context;
  const auto devices = cuda_devices();
  if (!devices.empty()) r.device = devices.front().name;
  cuda::synchronize();
  const size_t used_before = cuda::driver_memory().used_bytes();
  cuda::reset_allocator_peak();
  const size_t alloc_before = cuda::allocator_stats().current_bytes;

  auto model = GpuLlamaModel::random(config, seed);
  r.weights_bytes = model->weight_bytes();
  std::unique_ptr<GpuKvCache> cache;
  if (bits == 0) {
    auto c = std::make_unique<GpuFp16Cache>(model->kv_geometry(), context + decode_steps);
    c->fill_random(context, seed + 1);
    cache = std::move(c);
  } else {
    GpuCommvqShape shape;
    shape.bits = bits;
    if (decode_steps > shape.window)
      throw Error("bench gpu-memory: at most " + std::to_string(shape.window) + " decode steps with CommVQ");
    auto c = std::make_unique<GpuCommvqCache>(model->kv_geometry(), shape, context);
    c->fill_random(context, seed + 1);
    r.codebook_bytes = c->codebook_bytes();
    cache = std::move(c);
  }
  r.cache_allocated_bytes = cache->allocated_bytes();

  std::vector<double> ms;
  for (int i = 0; i < decode_steps; ++i) {
    const int32_t token =
        static_cast<int32_t>((seed + static_cast<uint64_t>(i)) % static_cast<uint64_t>(config.n_vocab));
    const int32_t pos = static_cast<int32_t>(context + i);
    const auto t0 = std::chrono::steady_clock::now();
    model->forward(&token, &pos, 1, *cache, LlamaModel::Logits::Last);  // returns after the logits are copied back
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  r.decode_ms_per_token = ms[ms.size() / 2];
  r.cache_bytes = cache->bytes();
  r.analytic_total = r.weights_bytes + r.cache_allocated_bytes + r.codebook_bytes;
  r.allocator_peak_bytes = cuda::allocator_stats().peak_bytes - alloc_before;
  const size_t used_after = cuda::driver_memory().used_bytes();
  r.driver_used_delta_bytes = used_after > used_before ? used_after - used_before : 0;
  return r;
}

}  // namespace cvq::gpu
