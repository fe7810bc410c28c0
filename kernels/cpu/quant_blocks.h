#pragma once
// llama.cpp's quantized block formats (ggml-common.h), byte for byte, and their reference
// dequantization / quantization. All multi-byte fields are little-endian; fp16 fields are IEEE half.
//
//   q4_0  (32 elems, 18 B): fp16 d | u8 qs[16]          x[j] = d*((qs[j]&15)-8), x[j+16] = d*((qs[j]>>4)-8)
//   q4_1  (32 elems, 20 B): fp16 d | fp16 m | u8 qs[16]  x[j] = d*(qs[j]&15)+m,   x[j+16] = d*(qs[j]>>4)+m
//   q5_0  (32 elems, 22 B): fp16 d | u32 qh | u8 qs[16]  5th bit of element j is bit j of qh; value-16
//   q5_1  (32 elems, 24 B): fp16 d | fp16 m | u32 qh | u8 qs[16]
//   q8_0  (32 elems, 34 B): fp16 d | i8 qs[32]           x[j] = d*qs[j]
//   q4_K (256 elems, 144 B): fp16 d | fp16 dmin | u8 scales[12] | u8 qs[128]
//        8 sub-blocks of 32 with 6-bit scale sc and 6-bit min m: x = d*sc*q - dmin*m. Sub-blocks 2j and
//        2j+1 are the low / high nibbles of qs[32j .. 32j+31].
//   q5_K (256 elems, 176 B): fp16 d | fp16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]
//        as q4_K; the 5th bit of element l of sub-block k is bit k of qh[l].
//   q6_K (256 elems, 210 B): u8 ql[128] | u8 qh[64] | i8 scales[16] | fp16 d
//        16 groups of 16 with int8 scale: x = d*scale*(q-32), q = 4 low bits from ql, 2 high from qh.
#include <cstdint>
#include <cstring>

#include "kernels/cpu/ggml_type.h"

namespace cvq {

inline constexpr int64_t kQK = 32;     // elements per block of the *_0 / *_1 formats
inline constexpr int64_t kQK_K = 256;  // elements per super-block of the K formats

// Little-endian fields of a block at any alignment.
inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Decodes the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of q4_K / q5_K.
inline void k_scale_min(const uint8_t* scales, int j, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = scales[j] & 63;
    m = scales[j + 4] & 63;
  } else {
    sc = static_cast<uint8_t>((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4));
    m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// Writes n floats decoded from src (a row of type t). n must be a multiple of the type's block size.
// Supported: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K; others throw cvq::Error.
// Results are bit-identical to llama.cpp's dequantize_row_* (and gguf-py) when the compiler does not
// contract a*b+c into an FMA (the default build does not; -march=native may, changing the last bit).
void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n);

// True if dequantize_row handles t.
bool dequantize_supported(GgmlType t);

// llama.cpp's reference quantizers (quantize_row_q8_0_ref / quantize_row_q4_0_ref), bit-exact.
// n must be a multiple of 32; dst receives n/32 blocks.
//   q8_0: d = amax/127, q = roundf(x/d) (half away from zero); |x - fp16(d)*q| <= d/2 + 127*|d - fp16(d)|
//   q4_0: d = max/-8 (max = the signed value of largest magnitude), q = min(15, (int8)(x/d + 8.5));
//         |x - fp16(d)*(q-8)| <= |d| + 8*|d - fp16(d)|   (d/2 except at the clamped top code)
void quantize_row_q8_0(const float* x, void* dst, int64_t n);
void quantize_row_q4_0(const float* x, void* dst, int64_t n);

}  // namespace cvq
