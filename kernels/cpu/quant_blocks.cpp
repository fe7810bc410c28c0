#include "kernels/cpu/quant_blocks.h"

#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/fp16.h"

namespace cvq {
namespace {

inline float load_half(const uint8_t* p) { return fp16_to_float(load_u16(p)); }
inline void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Each decoder writes one block. The float expressions keep llama.cpp's evaluation order so the
// results round identically.

void dequant_q4_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

void dequant_q4_1(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const float m = load_half(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    const float p0 = static_cast<float>(qs[j] & 0x0F) * d;
    const float p1 = static_cast<float>(qs[j] >> 4) * d;
    y[j] = p0 + m;
    y[j + 16] = p1 + m;
  }
}

void dequant_q5_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint32_t qh = load_u32(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    y[j] = static_cast<float>(((qs[j] & 0x0F) | h0) - 16) * d;
    y[j + 16] = static_cast<float>(((qs[j] >> 4) | h1) - 16) * d;
  }
}

void dequant_q5_1(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const float m = load_half(b + 2);
  const uint32_t qh = load_u32(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    const float p0 = static_cast<float>((qs[j] & 0x0F) | h0) * d;
    const float p1 = static_cast<float>((qs[j] >> 4) | h1) * d;
    y[j] = p0 + m;
    y[j + 16] = p1 + m;
  }
}

void dequant_q8_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

// q4_K and q5_K share the layout of scales and nibbles; q5_K adds a 5th bit per element from qh
// (null for q4_K).
void dequant_q45_K(const uint8_t* b, const uint8_t* qh, const uint8_t* qs, float* y) {
  const float d = load_half(b);
  const float dmin = load_half(b + 2);
  const uint8_t* scales = b + 4;
  for (int j = 0; j < 4; ++j) {
    uint8_t sc, m;
    k_scale_min(scales, 2 * j, sc, m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    k_scale_min(scales, 2 * j + 1, sc, m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    const uint8_t* q = qs + 32 * j;
    float* out = y + 64 * j;
    for (int l = 0; l < 32; ++l) {
      const int h1 = qh ? ((qh[l] >> (2 * j)) & 1) << 4 : 0;
      const int h2 = qh ? ((qh[l] >> (2 * j + 1)) & 1) << 4 : 0;
      const float p1 = d1 * static_cast<float>((q[l] & 0x0F) | h1);
      const float p2 = d2 * static_cast<float>((q[l] >> 4) | h2);
      out[l] = p1 - m1;
      out[l + 32] = p2 - m2;
    }
  }
}

void dequant_q4_K(const uint8_t* b, float* y) { dequant_q45_K(b, nullptr, b + 16, y); }
void dequant_q5_K(const uint8_t* b, float* y) { dequant_q45_K(b, b + 16, b + 48, y); }

void dequant_q6_K(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_half(b + 208);
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = (d * static_cast<float>(sc[is + 0])) * static_cast<float>(q1);
      y[l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
      y[l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
      y[l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

using BlockDecoder = void (*)(const uint8_t*, float*);

BlockDecoder block_decoder(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0:
      return dequant_q4_0;
    case GgmlType::Q4_1:
      return dequant_q4_1;
    case GgmlType::Q5_0:
      return dequant_q5_0;
    case GgmlType::Q5_1:
      return dequant_q5_1;
    case GgmlType::Q8_0:
      return dequant_q8_0;
    case GgmlType::Q4_K:
      return dequant_q4_K;
    case GgmlType::Q5_K:
      return dequant_q5_K;
    case GgmlType::Q6_K:
      return dequant_q6_K;
    default:
      return nullptr;
  }
}

void check_row_length(const char* what, GgmlType t, int64_t n, int64_t block) {
  if (n < 0 || n % block != 0) {
    throw Error(std::string(what) + ": row length " + std::to_string(n) + " is not a multiple of the " +
                ggml_type_name(static_cast<uint32_t>(t)) + " block size " + std::to_string(block));
  }
}

}  // namespace

bool dequantize_supported(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16 || block_decoder(t) != nullptr;
}

void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n) {
  const auto* s = static_cast<const uint8_t*>(src);
  switch (t) {
    case GgmlType::F32:
      check_row_length("dequantize_row", t, n, 1);
      if (n > 0) std::memcpy(dst, s, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      check_row_length("dequantize_row", t, n, 1);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_float(load_u16(s + 2 * i));
      return;
    case GgmlType::BF16:
      check_row_length("dequantize_row", t, n, 1);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load_u16(s + 2 * i));
      return;
    default:
      break;
  }
  const BlockDecoder decode = block_decoder(t);
  if (decode == nullptr) {
    throw Error("dequantize_row: unsupported tensor type " + ggml_type_name(static_cast<uint32_t>(t)));
  }
  const GgmlTypeInfo info = ggml_type_info(t);
  check_row_length("dequantize_row", t, n, info.block_elems);
  const int64_t nb = n / info.block_elems;
  for (int64_t b = 0; b < nb; ++b) decode(s + b * static_cast<int64_t>(info.block_bytes), dst + b * info.block_elems);
}

void quantize_row_q8_0(const float* x, void* dst, int64_t n) {
  check_row_length("quantize_row_q8_0", GgmlType::Q8_0, n, kQK);
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK, out += 34) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(out, float_to_fp16(d));
    for (int j = 0; j < kQK; ++j) {
      out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[j] * id)));
    }
  }
}

void quantize_row_q4_0(const float* x, void* dst, int64_t n) {
  check_row_length("quantize_row_q4_0", GgmlType::Q4_0, n, kQK);
  auto* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK, out += 18) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_u16(out, float_to_fp16(d));
    for (int j = 0; j < 16; ++j) {
      const int q0 = static_cast<int8_t>(x[j] * id + 8.5f);
      const int q1 = static_cast<int8_t>(x[j + 16] * id + 8.5f);
      out[2 + j] = static_cast<uint8_t>((q0 < 15 ? q0 : 15) | ((q1 < 15 ? q1 : 15) << 4));
    }
  }
}

}  // namespace cvq
