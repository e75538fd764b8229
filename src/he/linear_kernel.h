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

// src[t] points at the first coefficient of term t's block.
void linear_block_portable(const ckks::Modulus& q, const std::uint64_t* w, const std::uint64_t* const* src,
                           std::size_t terms, std::size_t len, std::uint64_t* dst);
void linear_block(const ckks::Modulus& q, const std::uint64_t* w, const std::uint64_t* const* src, std::size_t terms,
                  std::size_t len, std::uint64_t* dst);
// Whether linear_block uses the IFMA path for this modulus.
bool linear_block_vectorized(const ckks::Modulus& q);

}  // namespace hecnn::he
