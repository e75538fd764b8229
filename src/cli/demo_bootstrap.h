#pragma once
// `hecnn demo --bootstrap` (src/cli/demo_bootstrap.cpp).
#include <cstddef>
#include <string>

namespace hecnn::cli {

struct BootstrapDemoOptions {
  std::string preset = "boot-n65536";
  std::size_t ring_degree = 0;  // 0: the preset's; smaller ones need allow_insecure
  bool allow_insecure = false;
  std::size_t slots = 0;        // 0: N/2
  std::size_t cts_levels = 3, stc_levels = 3;
  int double_angles = 2, degree = 0;  // EvalMod (degree 0: the smallest reaching 2^-48)
  std::size_t plaintext_budget = static_cast<std::size_t>(-1);
  int threads = 0;
  std::string simd = "auto";
};

void run_bootstrap_demo(const BootstrapDemoOptions& o);

}  // namespace hecnn::cli
