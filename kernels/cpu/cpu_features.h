#pragma once
// Run-time choice of the SIMD code path. One binary carries scalar, AVX2 and AVX-512 kernels
// (the *_avx2.cpp / *_avx512.cpp files are compiled for those instruction sets); the highest level
// this CPU and OS support is used unless the environment variable COMMVQ_SIMD=scalar|avx2|avx512
// asks for a lower one (tests and benchmarks use it to exercise each path).
#include <string_view>

namespace cvq {

enum class SimdLevel : int {
  Scalar = 0,  // plain C++ reference code
  Avx2 = 1,    // AVX2 + FMA + F16C
  Avx512 = 2,  // AVX-512 F/BW/VL/DQ/VNNI (+ AVX2, FMA, F16C)
};

const char* simd_level_name(SimdLevel level);  // "scalar", "avx2", "avx512"
// Parses a level name as above; throws cvq::Error naming the accepted values otherwise.
SimdLevel parse_simd_level(std::string_view name);

// The highest level this CPU (and OS, for the AVX register state) supports. Cached.
SimdLevel cpu_max_simd_level();
bool cpu_supports(SimdLevel level);

// The level the dispatching kernels use: COMMVQ_SIMD if set, else cpu_max_simd_level(). Read once
// per process. Throws cvq::Error if COMMVQ_SIMD is not a level name or names one this CPU lacks.
SimdLevel active_simd_level();

}  // namespace cvq
