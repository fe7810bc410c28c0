#pragma once
// Rotary position embedding. Which dimensions rotate together depends on the file's layout:
// GGUF `llama` ("normal" RoPE) pairs (2f, 2f+1); HF / GGUF `qwen2` ("neox") pairs (f, f + d/2).
// Pair f rotates by pos * omega_f with omega_f = theta^(-2f/d) / freq_factor_f.
#include <cstdint>
#include <vector>

namespace cvq {

enum class RopeLayout { Adjacent, HalfSplit };

class Rope {
 public:
  Rope() = default;
  Rope(int head_dim, double theta, RopeLayout layout, std::vector<float> freq_factors = {}, double pos_scale = 1.0);

  int head_dim() const { return head_dim_; }
  RopeLayout layout() const { return layout_; }
  double theta() const { return theta_; }
  double omega(int f) const { return omega_[f]; }
  // Indices of the two components of pair f within a head.
  int pair_x(int f) const { return layout_ == RopeLayout::Adjacent ? 2 * f : f; }
  int pair_y(int f) const { return layout_ == RopeLayout::Adjacent ? 2 * f + 1 : f + head_dim_ / 2; }

  // Rotates n_heads consecutive head vectors (head_dim floats each) in place to position pos.
  void apply(float* heads, int n_heads, int32_t pos) const;
  // cos/sin of pos * omega_f for f = 0..head_dim/2-1.
  void angles(int32_t pos, float* cos_out, float* sin_out) const;

  // llama.cpp's float RoPE instead (kernels/cpu/ggml_arith.h: angles by repeated float products,
  // fused rotation); only for plain RoPE (no frequency factors, no position scaling).
  void use_llamacpp_arithmetic();
  bool llamacpp_arithmetic() const { return ggml_; }

 private:
  int head_dim_ = 0;
  double theta_ = 10000.0;
  RopeLayout layout_ = RopeLayout::Adjacent;
  double pos_scale_ = 1.0;
  std::vector<double> omega_;
  std::vector<float> freq_factors_;
  bool ggml_ = false;
  float ggml_theta_scale_ = 0.0f;
};

}  // namespace cvq
