#pragma once
// IEEE half and bfloat16 <-> float, bit-exact (round to nearest even), no intrinsics required.
#include <cstdint>
#include <cstring>

namespace cvq {

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float fp16_to_float(uint16_t h) {
  // Shift the half into float position and rescale: exact for normals, subnormals, inf and NaN.
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp_mant = static_cast<uint32_t>(h & 0x7fffu);
  if (exp_mant >= 0x7c00u) return bits_to_float(sign | 0x7f800000u | (exp_mant & 0x3ffu) << 13);
  const float magic = bits_to_float(static_cast<uint32_t>(254 - 15) << 23);  // 2^(127-15)
  return bits_to_float(sign | float_to_bits(bits_to_float(exp_mant << 13) * magic));
}

inline uint16_t float_to_fp16(float f) {
  uint32_t x = float_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0));
  if (x >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (x < 0x38800000u) {                                               // subnormal or zero
    const float v = bits_to_float(x) + 0.5f;  // 0.5 = 2^-1: aligns the half subnormal ulp (2^-24)
    return static_cast<uint16_t>(sign | (float_to_bits(v) - 0x3f000000u));
  }
  const uint32_t mant_odd = (x >> 13) & 1u;
  x += 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round to nearest even
  return static_cast<uint16_t>(sign | (x >> 13));
}

inline float bf16_to_float(uint16_t b) { return bits_to_float(static_cast<uint32_t>(b) << 16); }

inline uint16_t float_to_bf16(float f) {
  uint32_t x = float_to_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace cvq
