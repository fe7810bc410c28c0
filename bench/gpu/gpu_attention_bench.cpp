#include "bench/gpu/gpu_attention_bench.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/error.h"
#include "core/fp16.h"
#include "device/device.h"
#include "gpu/gpu_commvq_cache.h"
#include "gpu/rope_tables.h"
#include "kernels/cuda/attention_gpu.h"
#include "kernels/cuda/commvq_attention_gpu.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/norm_act_gpu.h"

namespace cvq::gpu {
namespace {

constexpr int kSub = 64;

// Median milliseconds of fn over reps runs (after one warm-up), timed with CUDA events.
double time_ms(const std::function<void()>& fn, int reps) {
  fn();
  cuda::synchronize();
  cudaEvent_t a, b;
  cuda::check(cudaEventCreate(&a), "cudaEventCreate");
  cuda::check(cudaEventCreate(&b), "cudaEventCreate");
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    cuda::check(cudaEventRecord(a), "cudaEventRecord");
    fn();
    cuda::check(cudaEventRecord(b), "cudaEventRecord");
    cuda::check(cudaEventSynchronize(b), "cudaEventSynchronize");
    float t = 0.0f;
    cuda::check(cudaEventElapsedTime(&t, a, b), "cudaEventElapsedTime");
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

std::vector<AttentionBenchRow> bench_decode_attention(const AttentionBenchShape& s,
                                                      const std::vector<int64_t>& contexts, int reps, uint64_t seed) {
  require_cuda("bench gpu-attention");
  if (reps < 1) throw Error("bench gpu-attention: reps must be at least 1");
  const int d = s.head_dim, D = s.n_head_kv * d, q_dim = s.n_head * d;
  GpuCommvqShape cs;
  cs.bits = s.bits;
  const int R = cs.key_stages(d), code_bits = cs.value_code_bits(D);
  const Rope rope(d, s.rope_theta, RopeLayout::HalfSplit);
  std::vector<AttentionBenchRow> rows;
  for (const int64_t n : contexts) {
    if (n <= 0) throw Error("bench gpu-attention: contexts must be positive");
    uint64_t sd = seed;
    cuda::DeviceBuffer<float> q(static_cast<size_t>(q_dim)), out_fp16(q.size()), out_dec(q.size()), out_codes(q.size());
    cuda::fill_uniform_float(q.get(), q_dim, ++sd, 1.0f);
    AttentionBenchRow row;
    row.context = n;
    {  // fp16 store
      cuda::DeviceBuffer<uint16_t> k(static_cast<size_t>(n) * D), v(k.size());
      cuda::fill_uniform_half(k.get(), n * D, ++sd, 1.0f);
      cuda::fill_uniform_half(v.get(), n * D, ++sd, 1.0f);
      const int32_t nv = static_cast<int32_t>(n);
      auto visible = cuda::upload(std::vector<int32_t>{nv});
      cuda::AttentionHalfArgs a;
      a.q = q.get();
      a.n_q = 1;
      a.q_stride = q_dim;
      a.n_head = s.n_head;
      a.n_head_kv = s.n_head_kv;
      a.head_dim = d;
      a.k = k.get();
      a.v = v.get();
      a.kv_stride = D;
      a.n_ctx = n;
      a.n_visible = visible.get();
      a.out = out_fp16.get();
      a.out_stride = q_dim;
      row.fp16_ms = time_ms([&] { cuda::attention_half(a); }, reps);
    }
    {  // CommVQ store: random codes and codebooks
      cuda::DeviceBuffer<float> key_xy(static_cast<size_t>(s.n_head_kv) * R * 2 * kSub * (d / 2));
      cuda::DeviceBuffer<float> cb(static_cast<size_t>(code_bits) * D), scale(static_cast<size_t>(D));
      cuda::DeviceBuffer<uint16_t> cb16(cb.size()), codes(static_cast<size_t>(n) * s.n_head_kv * R);
      cuda::DeviceBuffer<uint8_t> vcodes(static_cast<size_t>(n) * code_bits / 8);
      cuda::fill_uniform_float(key_xy.get(), static_cast<int64_t>(key_xy.size()), ++sd, 1.0f / std::sqrt(float(R * d)));
      cuda::fill_uniform_float(cb.get(), static_cast<int64_t>(cb.size()), ++sd, 1.0f / std::sqrt(float(code_bits)));
      cuda::float_to_half(cb.get(), cb16.get(), static_cast<int64_t>(cb.size()));
      cuda::fill_uniform_float(scale.get(), D, ++sd, 1.0f);
      cuda::fill_random_codes12(codes.get(), static_cast<int64_t>(codes.size()), ++sd);
      cuda::fill_random_bytes(vcodes.get(), static_cast<int64_t>(vcodes.size()), ++sd);
      auto ones = cuda::upload(std::vector<uint16_t>(static_cast<size_t>(n), float_to_fp16(1.0f)));
      RopeTablesGpu tables = make_rope_tables(rope, n + 1);
      cuda::CommvqLayerView v;
      v.n_head = s.n_head;
      v.n_head_kv = s.n_head_kv;
      v.head_dim = d;
      v.half_split = true;
      v.key_stages = R;
      v.key_xy = key_xy.get();
      v.key_codes = codes.get();
      v.key_norms = ones.get();
      v.value_code_bits = code_bits;
      v.value_codes = vcodes.get();
      v.value_p = ones.get();
      v.value_codebook = cb.get();
      v.value_codebook16 = cb16.get();
      v.value_scale = scale.get();
      v.angles.coarse = tables.coarse.get();
      v.angles.fine = tables.fine.get();
      v.n_tokens = n;
      row.decoded_ms = time_ms([&] { cuda::commvq_attend_decoded(v, q.get(), out_dec.get()); }, reps);
      row.codes_ms = time_ms([&] { cuda::commvq_attend_codes(v, q.get(), out_codes.get()); }, reps);
      const auto a = cuda::download(out_dec.get(), q.size()), b = cuda::download(out_codes.get(), q.size());
      for (size_t i = 0; i < a.size(); ++i) {
        row.max_abs_diff_codes_vs_decoded = std::max(row.max_abs_diff_codes_vs_decoded, double(std::fabs(a[i] - b[i])));
        row.max_abs_output = std::max(row.max_abs_output, double(std::fabs(b[i])));
      }
    }
    rows.push_back(row);
  }
  return rows;
}

}  // namespace cvq::gpu
