#pragma once
// RoPE on the device, both pairings of kernels/cpu/rope.h: Adjacent (GGUF `llama`: (2f, 2f+1)) and
// HalfSplit (HF / GGUF `qwen2`, neox: (f, f + d/2)). The angles come from the host (Rope::angles
// in double, as the CPU uses), so both backends rotate by the same floats.
#include <cstdint>

namespace cvq::cuda {

// heads: n_tokens × n_heads × head_dim floats; cos_sin: n_tokens rows of head_dim floats
// (cos(pos·ω_f) for f < d/2, then sin). half_split selects the neox pairing.
void rope_apply(float* heads, int n_tokens, int n_heads, int head_dim, const float* cos_sin, bool half_split);

}  // namespace cvq::cuda
