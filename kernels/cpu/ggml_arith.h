#pragma once
// llama.cpp's CPU arithmetic, reproduced bit for bit, for the `--arith llamacpp` mode of the engine
// (the llama.cpp fixture test: tests/integration/test_llamacpp_reference.cpp).
//
// Why: the engine's own arithmetic (fp32 activations) is as correct as llama.cpp's, but llama.cpp
// rounds activations to 8-bit blocks before every quantized dot product, and 1-ulp differences then
// cross those rounding boundaries and grow to ~1e-2 in the logits (results/llamacpp_divergence.md),
// so the argmax can only be compared position by position with the same float operations.
//
// What "the same" means, as observed in the CPU backend of llama-cpp-python 0.3.36 (AVX2/AVX-512
// build, flash attention off) and checked against its captured intermediates:
//  * activations for Q4_0/Q4_1/Q5_x/Q8_0 weights: blocks of 32 with amax, d = amax/127 (stored
//    fp16), q = round-half-even(x·(127/amax)); Q8_1 adds s = fp16(d·Σq) with the unrounded d;
//  * a block dot product: 8 int32 lanes, lane i = Σ of bytes 4i..4i+3 of q_w·q_a; per block
//    acc_i = fma(d_w·d_a, lane_i, acc_i); result = hsum8(acc) (+ Σ_blocks fma(m_w, s_a) for Q4_1);
//    hsum8(a) = ((a4+a0) + (a6+a2)) + ((a5+a1) + (a7+a3));
//  * f16 matrix products (attention): both sides rounded to f16, a 16-lane fma chain over the inner
//    dimension, then the 16 lanes reduced as hsum16 below;
//  * softmax: exp by ggml's polynomial (ggml_expf), 16 at a time, sum in double of each 16-group's
//    hsum16; RMSNorm: sum of float squares in double; SiLU(x) = x / (1 + ggml_expf(-x)).
// These are not the engine's defaults: they are what llama.cpp computes, nothing more accurate.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cvq {

// Activation rows quantized as llama.cpp does for a dot product with block-quantized weights.
struct GgmlQ8Rows {
  int64_t rows = 0, blocks = 0;  // blocks of 32 per row
  std::vector<int8_t> q;         // rows × blocks × 32
  std::vector<float> d;          // fp16-rounded scale per block
  std::vector<float> s;          // fp16(d·Σq) per block (Q8_1's sum term)
};
void ggml_quantize_q8(const float* x, int64_t rows, int64_t cols, GgmlQ8Rows& out);

// y[t·ldy + r] = row r of a weight matrix · activation row t, for r in [r0, r1), t in [0, a.rows).
// w: the matrix's blocks (Q4_1: 20 bytes per 32 values, Q8_0: 34 bytes), row_bytes apart.
void ggml_matmul_q4_1(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const GgmlQ8Rows& a, float* y,
                      int64_t ldy);
void ggml_matmul_q8_0(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const GgmlQ8Rows& a, float* y,
                      int64_t ldy);

// ggml's vectorized exp (one lane of it): polynomial with range reduction, exact to its own bits.
float ggml_expf(float x);
// y = x·(1/sqrt(mean(x²) + eps))·w
void ggml_rms_norm(const float* x, const float* w, int64_t n, float eps, float* y);
// y[i] = gate[i]/(1 + ggml_expf(−gate[i]))·up[i]
void ggml_swiglu(const float* gate, const float* up, int64_t n, float* y);

// RoPE as ggml computes it: angle_f = pos·ts^f by repeated float products (ts = powf(θ, −2/d)),
// cosf/sinf of those, and (ggml_rope_pair) x' = fma(x, c, −(y·s)), y' = fma(x, s, y·c).
void ggml_rope_angles(int32_t pos, float theta_scale, int n_pairs, float* cos_out, float* sin_out);
// The reduction of 16 lanes: ((a0+a8)+(a4+a12)) + ((a2+a10)+(a6+a14)) and so on, as GCC's
// _mm512_reduce_add_ps computes it.
float ggml_hsum16(const float* lanes);
// Σ_k a[k]·b[k] as a 16-lane fma chain over k (k % 16 == 0), then ggml_hsum16.
float ggml_dot16(const float* a, const float* b, int64_t k);

// Attention of one query row against n keys/values (f16 values widened to float: k_t, v_t at
// stride `stride`), all visible: out[0..d) = Σ_t softmax_t(scale·q̃·k_t) ṽ_t with llama.cpp's
// roundings (q̃ = f16(q), probabilities normalized then rounded to f16). d % 16 == 0.
// scratch: at least 2·(n rounded up to 16) + 16·d floats.
void ggml_attend_row(const float* q, const float* k, const float* v, int64_t stride, int64_t n, int d, float scale,
                     float* out, float* scratch);

void ggml_rope_pair(float* x, float* y, float c, float s);

namespace detail {
// Per-ISA versions (the public functions pick one); the scalar ones are the portable reference.
void ggml_matmul_q4_1_scalar(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const GgmlQ8Rows& a, float* y,
                             int64_t ldy);
void ggml_matmul_q8_0_scalar(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const GgmlQ8Rows& a, float* y,
                             int64_t ldy);
void ggml_swiglu_scalar(const float* gate, const float* up, int64_t n, float* y);
void ggml_attend_row_scalar(const float* q, const float* k, const float* v, int64_t stride, int64_t n, int d,
                            float scale, float* out, float* scratch);
bool ggml_arith_avx512_compiled();
void ggml_matmul_q4_1_avx512(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const GgmlQ8Rows& a, float* y,
                             int64_t ldy);
void ggml_matmul_q8_0_avx512(const uint8_t* w, size_t row_bytes, int64_t r0, int64_t r1, const GgmlQ8Rows& a, float* y,
                             int64_t ldy);
void ggml_swiglu_avx512(const float* gate, const float* up, int64_t n, float* y);
void ggml_attend_row_avx512(const float* q, const float* k, const float* v, int64_t stride, int64_t n, int d,
                            float scale, float* out, float* scratch);
}  // namespace detail

}  // namespace cvq
