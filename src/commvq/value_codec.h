#pragma once
// CommVQ value codec for one layer (docs/METHOD.md §5): per-channel scale, a small MLP encoder that picks
// 2-bit groups, and an additive codebook.
//
//   x = v / (s + eps),  rho = ||x||,  xbar = x / (rho + eps)                         (eps = 1e-6)
//   logits = W2 · GELU(W1 · LayerNorm(xbar) + b1) + b2      [4·n_e], I = min(4096, 4·n_e) hidden
//   group g: one-hot o over {10, 01, 11, 00} (argmax at inference) -> bits (o0+o2, o1+o2) = (b[2g], b[2g+1])
//   y = bᵀC  (C: [code_bits x D]),  p = (rho + eps) / (||y|| + eps) stored as fp16,  v̂ = s ⊙ y · p
//
// n_e = D·bits/2 groups; code_bits = D·bits bits per token, packed LSB-first: bit j of a token's
// code is bit (j % 8) of byte j / 8; bits 2g and 2g+1 are group g's (b1, b2), i.e. codebook rows
// 2g and 2g+1.
//
// Parameters are plain float vectors, row-major, PyTorch nn.Linear layout ([out x in]).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cvq {

class SafetensorsReader;
class SafetensorsWriter;
struct ValueRefineTables;

inline constexpr float kValueEps = 1e-6f;
inline constexpr float kValueLayerNormEps = 1e-5f;

struct ValueCodecShape {
  int dim = 0;   // D = n_kv · head_dim
  int bits = 2;  // code bits per value element (1 or 2 in the paper)
  int n_groups() const { return dim * bits / 2; }
  int n_logits() const { return 4 * n_groups(); }
  int hidden() const { return n_logits() < 4096 ? n_logits() : 4096; }
  int code_bits() const { return dim * bits; }
  int code_bytes() const { return (code_bits() + 7) / 8; }
};

class ValueCodec {
 public:
  ValueCodec() = default;
  ValueCodec(int dim, int bits);  // parameters zero, scale one; call init_random before training

  const ValueCodecShape& shape() const { return shape_; }
  int dim() const { return shape_.dim; }

  // PyTorch-like initialization: Linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
  // LayerNorm gamma 1 beta 0, codebook N(0, 1/D). Deterministic in the seed.
  void init_random(uint64_t seed);
  // s = mean_t |v_t| per channel over n calibration rows of D values.
  void fit_scale(const float* v, int64_t n);

  // Normalization of one row: xbar [D] and rho.
  void normalize(const float* v, float* xbar, float* rho) const;

  // Encoder logits for n rows of xbar: [n x n_logits]. Threaded over rows.
  void logits(const float* xbar, int64_t n, float* out) const;
  // Inference: argmax per group (then refine_sweeps of refinement) -> packed codes [n x code_bytes]
  // and fp16 p [n]. Deterministic.
  void encode(const float* v, int64_t n, uint8_t* codes, uint16_t* p_fp16) const {
    encode(v, n, codes, p_fp16, refine_sweeps);
  }
  // The same with `sweeps` of refinement instead of the codec's own.
  void encode(const float* v, int64_t n, uint8_t* codes, uint16_t* p_fp16, int sweeps) const;
  // y = bᵀC for packed codes: [n x D] (the direction before p and s).
  void code_vectors(const uint8_t* codes, int64_t n, float* y) const;
  // v̂ = s ⊙ y · p for packed codes and fp16 p: [n x D].
  void decode(const uint8_t* codes, const uint16_t* p_fp16, int64_t n, float* v_out) const;
  // encode then decode (what a simulated cache stores).
  void roundtrip(const float* v, int64_t n, float* v_out) const;

  // Parameters under `prefix` (e.g. "layer_03.values."): scale, ln_gamma, ln_beta, w1, b1, w2, b2,
  // codebook (shapes as below; F32) and refine_sweeps. load() checks dim/bits against the stored shapes.
  void save(SafetensorsWriter& w, const std::string& prefix) const;
  static ValueCodec load(const SafetensorsReader& r, const std::string& prefix);

  // Parameters (public: the trainer updates them in place).
  std::vector<float> scale;     // [D]
  std::vector<float> ln_gamma;  // [D]
  std::vector<float> ln_beta;   // [D]
  std::vector<float> w1;        // [I x D]
  std::vector<float> b1;        // [I]
  std::vector<float> w2;        // [4·n_e x I]
  std::vector<float> b2;        // [4·n_e]
  std::vector<float> codebook;  // [code_bits x D]
  // Sweeps of code refinement after the encoder's argmax (commvq/value_refine.h); 0 = the paper's
  // encoder alone. Stored with the codec (tensor "refine_sweeps", I32 [1]; absent = 0).
  int refine_sweeps = 0;
  // Tables refinement reads (Gram matrix of the codebook), made by load() or prepare_refinement();
  // refinement ignores them once the codebook changes (they carry its fingerprint).
  std::shared_ptr<const ValueRefineTables> refine_tables;
  void prepare_refinement();

 private:
  ValueCodecShape shape_;
};

// Group choice (index of the one-hot over {10, 01, 11, 00}) -> the group's two bits.
inline int value_choice_b1(int choice) { return (choice == 0 || choice == 2) ? 1 : 0; }
inline int value_choice_b2(int choice) { return (choice == 1 || choice == 2) ? 1 : 0; }

// Bit j of a packed code.
inline int value_code_bit(const uint8_t* code, int j) { return (code[j >> 3] >> (j & 7)) & 1; }

// GELU (exact, erf form, as torch.nn.GELU()) and its derivative.
float gelu(float x);
float gelu_grad(float x);

}  // namespace cvq
