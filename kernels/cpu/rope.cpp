#include "kernels/cpu/rope.h"

#include <cmath>

#include "core/error.h"
#include "kernels/cpu/ggml_arith.h"

namespace cvq {

Rope::Rope(int head_dim, double theta, RopeLayout layout, std::vector<float> freq_factors, double pos_scale)
    : head_dim_(head_dim), theta_(theta), layout_(layout), pos_scale_(pos_scale) {
  if (head_dim <= 0 || head_dim % 2 != 0) throw Error("RoPE head dim must be even, got " + std::to_string(head_dim));
  if (!freq_factors.empty() && static_cast<int>(freq_factors.size()) != head_dim / 2) {
    throw Error("rope_freqs has " + std::to_string(freq_factors.size()) +
                " factors, expected head_dim/2 = " + std::to_string(head_dim / 2));
  }
  freq_factors_ = freq_factors;
  omega_.resize(head_dim / 2);
  for (int f = 0; f < head_dim / 2; ++f) {
    double w = std::pow(theta, -2.0 * f / head_dim);
    if (!freq_factors.empty()) w /= freq_factors[f];
    omega_[f] = w;
  }
}

void Rope::use_llamacpp_arithmetic() {
  if (!freq_factors_.empty() || pos_scale_ != 1.0) {
    throw Error(
        "llama.cpp arithmetic: only plain RoPE is reproduced (this model has rope frequency factors or position "
        "scaling)");
  }
  ggml_ = true;
  ggml_theta_scale_ = std::pow(static_cast<float>(theta_), -2.0f / static_cast<float>(head_dim_));
}

void Rope::angles(int32_t pos, float* cos_out, float* sin_out) const {
  if (ggml_) return ggml_rope_angles(pos, ggml_theta_scale_, head_dim_ / 2, cos_out, sin_out);
  const double p = static_cast<double>(pos) * pos_scale_;
  for (int f = 0; f < head_dim_ / 2; ++f) {
    double a = p * omega_[f];
    cos_out[f] = static_cast<float>(std::cos(a));
    sin_out[f] = static_cast<float>(std::sin(a));
  }
}

void Rope::apply(float* heads, int n_heads, int32_t pos) const {
  const int half = head_dim_ / 2;
  float cs[512], sn[512];
  angles(pos, cs, sn);
  for (int h = 0; h < n_heads; ++h) {
    float* v = heads + static_cast<int64_t>(h) * head_dim_;
    if (ggml_) {
      for (int f = 0; f < half; ++f) ggml_rope_pair(&v[pair_x(f)], &v[pair_y(f)], cs[f], sn[f]);
      continue;
    }
    for (int f = 0; f < half; ++f) {
      float& x = v[pair_x(f)];
      float& y = v[pair_y(f)];
      float nx = x * cs[f] - y * sn[f];
      float ny = x * sn[f] + y * cs[f];
      x = nx;
      y = ny;
    }
  }
}

}  // namespace cvq
