// Host-side accounting of the GPU caches (no device needed): the CommVQ store's shapes follow the
// bit budget of docs/METHOD.md §2 and its stored bytes per token; the angle rows the GPU RoPE uses are
// Rope::angles.
#include <gtest/gtest.h>

#include "gpu/gpu_commvq_cache.h"
#include "gpu/rope_tables.h"
#include "kernels/cpu/rope.h"

namespace cvq {
namespace {

TEST(GpuCommvqShape, StagesAndBytesFollowTheBitBudget) {
  gpu::GpuCommvqShape s;
  s.bits = 2;
  EXPECT_EQ(s.key_stages(128), 21);  // docs/METHOD.md §2: d=128 → R=21 (2-bit), 11 (1-bit); d=64 → 11, 5
  EXPECT_EQ(s.key_stages(64), 11);
  EXPECT_EQ(s.value_code_bits(1024), 2048);
  // LLaMA-3.1-8B layer, 2-bit: 8 heads × 21 codes × 2 bytes + norm 2 + 2048/8 + magnitude 2.
  EXPECT_EQ(s.coded_bytes_per_token(8, 128), 8u * 21 * 2 + 2 + 256 + 2);
  s.bits = 1;
  EXPECT_EQ(s.key_stages(128), 11);
  EXPECT_EQ(s.key_stages(64), 5);
  EXPECT_EQ(s.coded_bytes_per_token(8, 128), 8u * 11 * 2 + 2 + 128 + 2);
  // Codebooks: keys 8 × 11 × (X, Y) × 64 × 64 floats, values 1024 × 1024 + 1024 floats.
  EXPECT_EQ(s.codebook_bytes_per_layer(8, 128), (8u * 11 * 2 * 64 * 64 + 1024u * 1024 + 1024) * 4);
}

TEST(GpuRopeRows, AreTheCpuAngles) {
  const Rope rope(64, 500000.0, RopeLayout::Adjacent);
  const std::vector<int32_t> pos{0, 1, 255, 256, 131071};
  const auto rows = gpu::cos_sin_rows(rope, pos.data(), static_cast<int>(pos.size()));
  ASSERT_EQ(rows.size(), pos.size() * 64);
  std::vector<float> c(32), s(32);
  for (size_t i = 0; i < pos.size(); ++i) {
    rope.angles(pos[i], c.data(), s.data());
    for (int f = 0; f < 32; ++f) {
      EXPECT_EQ(rows[i * 64 + f], c[f]);
      EXPECT_EQ(rows[i * 64 + 32 + f], s[f]);
    }
  }
}

}  // namespace
}  // namespace cvq
