#include "kernels/cpu/ggml_type.h"

namespace cvq {

GgmlTypeInfo ggml_type_info(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32:
      return {"f32", 1, 4, true, true};
    case GgmlType::F16:
      return {"f16", 1, 2, true, true};
    case GgmlType::BF16:
      return {"bf16", 1, 2, true, true};
    case GgmlType::Q4_0:
      return {"q4_0", 32, 18, true, true};
    case GgmlType::Q4_1:
      return {"q4_1", 32, 20, true, true};
    case GgmlType::Q5_0:
      return {"q5_0", 32, 22, true, true};
    case GgmlType::Q5_1:
      return {"q5_1", 32, 24, true, true};
    case GgmlType::Q8_0:
      return {"q8_0", 32, 34, true, true};
    case GgmlType::Q8_1:
      return {"q8_1", 32, 36, true, false};
    case GgmlType::Q2_K:
      return {"q2_K", 256, 84, true, false};
    case GgmlType::Q3_K:
      return {"q3_K", 256, 110, true, false};
    case GgmlType::Q4_K:
      return {"q4_K", 256, 144, true, true};
    case GgmlType::Q5_K:
      return {"q5_K", 256, 176, true, true};
    case GgmlType::Q6_K:
      return {"q6_K", 256, 210, true, true};
    case GgmlType::Q8_K:
      return {"q8_K", 256, 292, true, false};
    case GgmlType::IQ2_XXS:
      return {"iq2_xxs", 256, 66, true, false};
    case GgmlType::IQ2_XS:
      return {"iq2_xs", 256, 74, true, false};
    case GgmlType::IQ3_XXS:
      return {"iq3_xxs", 256, 98, true, false};
    case GgmlType::IQ1_S:
      return {"iq1_s", 256, 50, true, false};
    case GgmlType::IQ4_NL:
      return {"iq4_nl", 32, 18, true, false};
    case GgmlType::IQ3_S:
      return {"iq3_s", 256, 110, true, false};
    case GgmlType::IQ2_S:
      return {"iq2_s", 256, 82, true, false};
    case GgmlType::IQ4_XS:
      return {"iq4_xs", 256, 136, true, false};
    case GgmlType::I8:
      return {"i8", 1, 1, true, false};
    case GgmlType::I16:
      return {"i16", 1, 2, true, false};
    case GgmlType::I32:
      return {"i32", 1, 4, true, false};
    case GgmlType::I64:
      return {"i64", 1, 8, true, false};
    case GgmlType::F64:
      return {"f64", 1, 8, true, false};
    case GgmlType::IQ1_M:
      return {"iq1_m", 256, 56, true, false};
    case GgmlType::TQ1_0:
      return {"tq1_0", 256, 54, true, false};
    case GgmlType::TQ2_0:
      return {"tq2_0", 256, 66, true, false};
  }
  return {"unknown", 0, 0, false, false};
}

std::string ggml_type_name(uint32_t type) {
  GgmlTypeInfo info = ggml_type_info(type);
  if (!info.known) return "unknown type " + std::to_string(type);
  return info.name;
}

size_t ggml_row_bytes(GgmlType t, int64_t n) {
  GgmlTypeInfo info = ggml_type_info(t);
  return static_cast<size_t>(n / info.block_elems) * info.block_bytes;
}

}  // namespace cvq
