#pragma once
// The multiply-accumulate at the heart of a linear stage, on RNS limbs in NTT form:
//   dst[i] = (sum_t w[t] * src_t[i]) mod q   for i in [0, len), len a multiple of 8 (<= 64),
// with up to 256 terms per call (products below 2^120 sum without overflow). An AVX-512 IFMA path
// (primes below 2^50, chosen at run time) and a portable one give bit-identical results.
#include <cstddef>
#include <cstdint>

#include "ckks/modarith.h"

namespace hecnn::he {

constexpr std::size_t kLinearBlock = 64;
constexpr std::size_t kLinearMaxTerms = 256;

// Per-prime constants of the kernel (built once per prime, not per call).
struct LinearModulus {
  explicit LinearModulus(const ckks::Modulus& q);
  const ckks::Modulus* q;
  bool vectorized;                  // the IFMA path applies (CPU support, prime below 2^50)
  std::uint64_t c52, c52_shoup;     // 2^52 mod q and floor(c52 * 2^52 / q)
  std::uint64_t c104, c104_shoup;   // 2^104 mod q and its quotient
  std::uint64_t one_shoup;          // floor(2^52 / q)
};

// src[t] points at the first coefficient of term t's block.
void linear_block_portable(const ckks::Modulus& q, const std::uint64_t* w, const std::uint64_t* const* src,
                           std::size_t terms, std::size_t len, std::uint64_t* dst);
void linear_block(const LinearModulus& q, const std::uint64_t* w, const std::uint64_t* const* src, std::size_t terms,
                  std::size_t len, std::uint64_t* dst);

}  // namespace hecnn::he
