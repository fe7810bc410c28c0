#include "kernels/cpu/cpu_features.h"

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace cvq {
namespace {

SimdLevel detect_simd_level() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // libgcc's detection also checks (via XGETBV) that the OS saves the YMM / ZMM state.
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vnni");
  if (avx512) return SimdLevel::Avx512;
  if (avx2) return SimdLevel::Avx2;
#endif
  return SimdLevel::Scalar;
}

SimdLevel resolve_active_level() {
  const SimdLevel max = cpu_max_simd_level();
  const char* env = std::getenv("COMMVQ_SIMD");
  if (env == nullptr || *env == '\0') return max;
  SimdLevel want;
  try {
    want = parse_simd_level(env);
  } catch (const Error& e) {
    throw Error(std::string("COMMVQ_SIMD: ") + e.what());
  }
  if (static_cast<int>(want) > static_cast<int>(max)) {
    throw Error(std::string("COMMVQ_SIMD=") + env + ": this CPU supports at most " + simd_level_name(max));
  }
  return want;
}

}  // namespace

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Scalar:
      return "scalar";
    case SimdLevel::Avx2:
      return "avx2";
    case SimdLevel::Avx512:
      return "avx512";
  }
  return "unknown";
}

SimdLevel parse_simd_level(std::string_view name) {
  if (name == "scalar") return SimdLevel::Scalar;
  if (name == "avx2") return SimdLevel::Avx2;
  if (name == "avx512") return SimdLevel::Avx512;
  throw Error("unknown SIMD level '" + std::string(name) + "' (expected scalar, avx2 or avx512)");
}

SimdLevel cpu_max_simd_level() {
  static const SimdLevel level = detect_simd_level();
  return level;
}

bool cpu_supports(SimdLevel level) { return static_cast<int>(level) <= static_cast<int>(cpu_max_simd_level()); }

SimdLevel active_simd_level() {
  static const SimdLevel level = resolve_active_level();  // a throw leaves it unset; the next call retries
  return level;
}

}  // namespace cvq
