#pragma once
// Vectorization level of the arithmetic kernels (NTT, element-wise products, key-switching inner
// products, base conversion). Chosen at run time from what the CPU offers; the environment variable
// HECNN_SIMD=portable|avx2|avx512|ifma (or "auto") or set_simd_level() can force a lower one.
// Every level computes bit-identical results.
#include <string>
#include <vector>

namespace hecnn::ring {

enum class SimdLevel {
  portable = 0,  // plain C++ (the compiler's baseline x86-64 code)
  avx2 = 1,      // 4 x 64-bit lanes
  avx512 = 2,    // 8 x 64-bit lanes (AVX-512 F, DQ, VL, BW)
  ifma = 3,      // AVX-512 plus 52-bit integer fused multiply-add, for primes below 2^50
};

// The best level this CPU (and operating system) supports.
SimdLevel detected_simd_level();
bool simd_level_supported(SimdLevel level);
// The active level: HECNN_SIMD if set (a level the CPU lacks is clamped with a warning on stderr),
// else the detected one, until set_simd_level() changes it.
SimdLevel simd_level();
// Forces a level for the whole process; throws hecnn::Error if the CPU lacks it.
void set_simd_level(SimdLevel level);
// "portable", "avx2", "avx512", "ifma".
const char* simd_level_name(SimdLevel level);
// Parses one of those names; throws hecnn::Error on anything else.
SimdLevel parse_simd_level(const std::string& name);
// Every level this CPU supports, portable first.
std::vector<SimdLevel> supported_simd_levels();

}  // namespace hecnn::ring
