#include "he/compile/parameters.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace hecnn::he {

std::size_t relin_key_bytes(const ckks::CkksParameters& p, bool seeded) {
  const std::size_t limbs = p.q().size() + p.p().size();
  const std::size_t one = p.digits() * limbs * p.poly_degree() * 8;
  return seeded ? one + p.digits() * 32 : 2 * one;
}

std::size_t rotation_key_bytes(const ckks::CkksParameters& p, std::size_t level, bool seeded) {
  const std::size_t limbs = std::min(level, p.max_level()) + 1 + p.p().size();
  const std::size_t alpha = p.digit_size();
  const std::size_t digits = (std::min(level, p.max_level()) + 1 + alpha - 1) / alpha;
  const std::size_t one = digits * limbs * p.poly_degree() * 8;
  return seeded ? one + digits * 32 : 2 * one;
}

void check_compile_options(const CompileOptions& o) {
  if (o.log_n != 0 && (o.log_n < kMinLogN || o.log_n > kMaxLogN)) {
    throw Error("--log-n must be between " + std::to_string(kMinLogN) + " and " + std::to_string(kMaxLogN) + "; got " +
                std::to_string(o.log_n));
  }
  if (o.scale_bits != 0 && (o.scale_bits < kMinScaleBits || o.scale_bits > kMaxScaleBits)) {
    throw Error("--scale-bits must be between " + std::to_string(kMinScaleBits) + " and " + std::to_string(kMaxScaleBits) +
                "; got " + std::to_string(o.scale_bits));
  }
  if (o.extra_levels < 0 || o.extra_levels > kMaxLevels) {
    throw Error("--extra-levels must be between 0 and " + std::to_string(kMaxLevels) + "; got " + std::to_string(o.extra_levels));
  }
}

ckks::CkksParameters choose_parameters(int depth, const CompileOptions& o, int* scale_bits_out) {
  check_compile_options(o);
  if (depth < 1) throw Error("compile: the computation needs no level; nothing to encrypt");
  if (depth > kMaxLevels || depth + o.extra_levels > kMaxLevels) {
    throw Error("compile: the computation needs " + std::to_string(depth) + " levels" +
                (o.extra_levels ? " plus " + std::to_string(o.extra_levels) + " extra" : std::string()) + ", more than the " +
                std::to_string(kMaxLevels) + " a modulus chain can hold; use a shallower model (fewer activations, lower "
                "degrees)" + (o.extra_levels ? " or fewer --extra-levels" : ""));
  }
  const int levels = depth + o.extra_levels;
  std::vector<std::size_t> degrees;
  if (o.log_n != 0) {
    degrees.push_back(std::size_t{1} << o.log_n);
  } else {
    for (int l = 12; l <= 16; ++l) degrees.push_back(std::size_t{1} << l);
  }
  std::string tried;
  for (std::size_t n : degrees) {
    const int bound = ckks::security_bound_bits(n);
    // Scale bits: as requested, or the largest in [30, 40]; then the special primes (60 bits
    // each) that make key switching cheapest: fewest digits x limbs.
    std::vector<int> scales;
    if (o.scale_bits != 0) {
      scales.push_back(o.scale_bits);
    } else {
      for (int s = 40; s >= 30; --s) scales.push_back(s);
    }
    // The cheapest key switching (fewest digits x limbs) first, then the largest scale. Special
    // primes of 49 bits keep every prime below 2^50, where the IFMA kernels apply.
    constexpr int kSpecialBits = 49;
    int best_s = 0, best_k = 0;
    double best_cost = 1e300;
    for (int s : scales) {
      const int q0 = std::min(49, s + 14);  // room for outputs of magnitude up to ~2^13
      for (int k = 1; k <= 6; ++k) {
        const int total = q0 + levels * s + kSpecialBits * k;
        if (!o.allow_insecure && total > bound) continue;
        // Primes per key-switching digit: each digit's product (the first holds q0) stays below P.
        const int p_bits = kSpecialBits * k - 1;
        const int alpha = std::max(1, std::min(p_bits / s, 1 + (p_bits - q0) / s));
        const int digits = (levels + 1 + alpha - 1) / alpha;
        const double cost = static_cast<double>(digits) * (levels + 1 + k);
        if (cost < best_cost) {
          best_cost = cost;
          best_k = k;
          best_s = s;
        }
      }
    }
    if (best_k != 0) {
      std::vector<int> qb{std::min(49, best_s + 14)};
      for (int i = 0; i < levels; ++i) qb.push_back(best_s);
      ckks::ParameterOptions po;
      po.allow_insecure = o.allow_insecure;
      *scale_bits_out = best_s;
      return ckks::CkksParameters::from_bit_sizes(n, qb, std::vector<int>(static_cast<std::size_t>(best_k), kSpecialBits), po);
    }
    tried += " N=" + std::to_string(n) + " (bound " + std::to_string(bound) + " bits)";
  }
  throw Error("compile: no secure parameters for " + std::to_string(levels) + " levels at the requested scale; tried" +
              tried + ". Use a larger --log-n, a smaller --scale-bits, or a shallower model");
}

CompileOptions::Bootstrap parse_bootstrap_mode(const std::string& name) {
  if (name == "auto") return CompileOptions::Bootstrap::Auto;
  if (name == "off") return CompileOptions::Bootstrap::Off;
  if (name == "on") return CompileOptions::Bootstrap::On;
  throw Error("--bootstrap: '" + name + "' is not auto, off or on");
}

}  // namespace hecnn::he
