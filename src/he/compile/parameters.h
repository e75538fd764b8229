#pragma once
// Choosing CKKS parameters for a compiled computation: the cheapest secure ones for its depth and
// the keys it needs.
#include <cstddef>
#include <optional>
#include <vector>

#include "ckks/params.h"

namespace hecnn::he {

struct CompileOptions {
  int log_n = 0;           // 0: the smallest secure ring degree
  int scale_bits = 0;      // 0: the largest scale (up to 40 bits) the security bound allows
  int extra_levels = 0;    // levels beyond those the computation needs
  bool allow_insecure = false;  // tests only: parameters above the 128-bit bound
};

// Chooses ring degree, chain and special primes for `depth` levels (see CompileOptions); never
// above the 128-bit bound unless allow_insecure. Throws hecnn::Error when nothing fits.
ckks::CkksParameters choose_parameters(int depth, const CompileOptions& options, int* scale_bits_out);

// Bytes of a relinearization key in its seeded (stored) form and expanded in memory; a Galois
// (rotation) key has the same size.
std::size_t relin_key_bytes(const ckks::CkksParameters& p, bool seeded);

// The evaluation keys a compiled computation needs.
struct KeyRequirements {
  bool relinearization = true;
  std::vector<int> rotations;  // rotation steps (left; negative: right)
};

}  // namespace hecnn::he
