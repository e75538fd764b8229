#pragma once
#include <cstdint>
#include <vector>

namespace hecnn::ring {

// Deterministic Miller-Rabin for 64-bit integers.
bool is_prime(std::uint64_t n);

// Primes q with q = 1 mod 2n, of exactly `bits` bits, largest first, skipping any in `exclude`.
// Throws if not enough such primes exist.
std::vector<std::uint64_t> ntt_primes(int bits, std::size_t n, std::size_t count,
                                      const std::vector<std::uint64_t>& exclude = {});

// A primitive 2n-th root of unity modulo the prime q (q = 1 mod 2n), the smallest such.
std::uint64_t primitive_root_2n(std::uint64_t q, std::size_t n);

}  // namespace hecnn::ring
