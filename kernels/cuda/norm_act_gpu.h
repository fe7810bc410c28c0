#pragma once
// Elementwise ops of a llama block on the device (the CUDA side of kernels/cpu/norm_act.h), plus
// the small glue the GPU forward needs. All pointers are device pointers; launches go to the
// default stream.
#include <cstdint>

namespace cvq::cuda {

// y[t] = x[t] / rms(x[t]) * weight (y may alias x); the sum of squares is accumulated in double,
// as on the CPU.
void rmsnorm_rows(const float* x, const float* weight, int64_t n, int64_t dim, float eps, float* y);
// gate[i] = silu(gate[i]) * up[i]
void swiglu_inplace(float* gate, const float* up, int64_t count);
// x[i] += y[i]
void add_inplace(float* x, const float* y, int64_t count);
// x[t*dim + i] += bias[i] for n rows
void add_bias_rows(float* x, const float* bias, int64_t n, int64_t dim);
// Half-precision storage <-> float. `bf16` selects bfloat16 instead of IEEE fp16.
void float_to_half(const float* x, uint16_t* y, int64_t count, bool bf16 = false);
void half_to_float(const uint16_t* x, float* y, int64_t count, bool bf16 = false);
// out[t] = table[ids[t]] (rows of dim fp16/bf16 values, converted to float).
void embed_rows(const uint16_t* table, int64_t dim, const int32_t* ids, int n, float* out, bool bf16 = false);
// Deterministic pseudo-random fill (a hash of seed and index), uniform in [-scale, scale).
void fill_uniform_half(uint16_t* x, int64_t count, uint64_t seed, float scale, bool bf16 = false);
void fill_uniform_float(float* x, int64_t count, uint64_t seed, float scale);
void fill_random_bytes(uint8_t* x, int64_t count, uint64_t seed);
// Random 12-bit codes (uint16 holding 0..4095).
void fill_random_codes12(uint16_t* x, int64_t count, uint64_t seed);

}  // namespace cvq::cuda
