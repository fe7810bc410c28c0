#pragma once
// Asymmetric min-max quantization and 32-bit word bit packing (KIVI, BASELINES.md):
//   mn = min, mx = max, scale = (mx - mn) / (2^b - 1), stored as fp16 (scale) and fp16 (zero = mn);
//   q = round(clamp((x - mn)/scale, 0, 2^b - 1)) computed with the stored (fp16-rounded) scale and mn,
//   x^ = q*scale + mn. A constant group (scale 0, or a range too small for fp16) gets q = 0, x^ = mn.
//   Bound: |x - x^| <= scale/2 + 2^-11 * (|mn| + (mx - mn)) + float rounding.
// Packing: element j of a group goes to word j / (32/b), bit offset b*(j mod 32/b), LSB first; a group
// of n elements takes packed_words(n, b) = ceil(n*b/32) words. b in {1, 2, 4} (8 also works).
#include <cstdint>

namespace cvq {

inline int packed_words(int n, int bits) { return (n * bits + 31) / 32; }

// Quantizes the n elements x[i*stride] (i < n) and packs their codes into words[0..packed_words).
void minmax_quantize_pack(const float* x, int64_t stride, int n, int bits, uint32_t* words, uint16_t* scale_fp16,
                          uint16_t* zero_fp16);
// x[i*stride] = dequantized element i.
void minmax_dequantize(const uint32_t* words, int n, int bits, uint16_t scale_fp16, uint16_t zero_fp16, float* x,
                       int64_t stride);

inline uint32_t unpack_code(const uint32_t* words, int j, int bits) {
  const int per = 32 / bits;
  return (words[j / per] >> (bits * (j % per))) & ((1u << bits) - 1u);
}

}  // namespace cvq
