#include "ring/simd.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "common/error.h"

namespace hecnn::ring {

namespace {

SimdLevel detect() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the vector registers (XGETBV).
  if (!__builtin_cpu_supports("avx2")) return SimdLevel::portable;
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))) {
    return SimdLevel::avx2;
  }
  if (!__builtin_cpu_supports("avx512ifma")) return SimdLevel::avx512;
  return SimdLevel::ifma;
#else
  return SimdLevel::portable;
#endif
}

SimdLevel initial_level() {
  const SimdLevel best = detected_simd_level();
  const char* env = std::getenv("HECNN_SIMD");
  if (env == nullptr || *env == '\0' || std::string(env) == "auto") return best;
  SimdLevel want;
  try {
    want = parse_simd_level(env);
  } catch (const Error& e) {
    std::fprintf(stderr, "hecnn: warning: HECNN_SIMD: %s; using %s\n", e.what(), simd_level_name(best));
    return best;
  }
  if (static_cast<int>(want) > static_cast<int>(best)) {
    std::fprintf(stderr, "hecnn: warning: HECNN_SIMD=%s but this CPU supports at most %s; using %s\n", env,
                 simd_level_name(best), simd_level_name(best));
    return best;
  }
  return want;
}

std::atomic<int>& active() {
  static std::atomic<int> level{static_cast<int>(initial_level())};
  return level;
}

}  // namespace

SimdLevel detected_simd_level() {
  static const SimdLevel level = detect();
  return level;
}

bool simd_level_supported(SimdLevel level) {
  return static_cast<int>(level) >= 0 && static_cast<int>(level) <= static_cast<int>(detected_simd_level());
}

SimdLevel simd_level() { return static_cast<SimdLevel>(active().load(std::memory_order_relaxed)); }

void set_simd_level(SimdLevel level) {
  if (!simd_level_supported(level)) {
    throw Error(std::string("SIMD level ") + simd_level_name(level) + " is not supported by this CPU (best: " +
                simd_level_name(detected_simd_level()) + ")");
  }
  active().store(static_cast<int>(level), std::memory_order_relaxed);
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::portable: return "portable";
    case SimdLevel::avx2: return "avx2";
    case SimdLevel::avx512: return "avx512";
    case SimdLevel::ifma: return "ifma";
  }
  return "unknown";
}

SimdLevel parse_simd_level(const std::string& name) {
  for (SimdLevel l : {SimdLevel::portable, SimdLevel::avx2, SimdLevel::avx512, SimdLevel::ifma}) {
    if (name == simd_level_name(l)) return l;
  }
  throw Error("unknown SIMD level '" + name + "' (expected portable, avx2, avx512, ifma or auto)");
}

std::vector<SimdLevel> supported_simd_levels() {
  std::vector<SimdLevel> v;
  for (int l = 0; l <= static_cast<int>(detected_simd_level()); ++l) v.push_back(static_cast<SimdLevel>(l));
  return v;
}

}  // namespace hecnn::ring
