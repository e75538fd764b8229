#pragma once
// Key material. The secret key is held only by the client: it has no printing operator and is
// wiped from memory on destruction.
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "ckks/ring_types.h"
#include "ckks/random.h"

namespace hecnn::ckks {

// Identifies one key generation: every key a KeyGenerator makes carries its generator's id, and the
// serialization format stores it (format version 2), so keys from different generations with the
// same parameters can be told apart. All zero: unknown (keys read from version 1 files).
using KeySetId = std::array<std::uint8_t, 16>;

class SecretKey {
 public:
  SecretKey() = default;
  SecretKey(const SecretKey&) = default;
  SecretKey& operator=(const SecretKey&);  // wipes the old key first
  ~SecretKey();
  // Ternary coefficients in {-1, 0, 1}.
  std::vector<std::int8_t> coeffs;
  // NTT form over every prime q_0..q_L-1, p_0..p_K-1 (limb-major).
  std::vector<u64> ntt;
  std::uint64_t params_id = 0;
  KeySetId key_set{};
};

// (b, a) with b = -a*s + e over every prime q_0..q_L-1, p_0..p_K-1, NTT form. Encryption works over
// the extended basis and divides by P, which leaves almost no encryption noise.
class PublicKey {
 public:
  std::vector<u64> b, a;
  std::optional<Seed> seed;  // a expands from it
  std::uint64_t params_id = 0;
  KeySetId key_set{};
};

// Hybrid key-switching key from s' to s: for each digit d a pair (b_d, a_d) over all L + K primes
// with b_d = -a_d*s + e_d + P*[digit d's CRT idempotent]*s'.
// A key may cover only the first `chain` chain primes (and P), with only the digits they need:
// enough for ciphertexts below level `chain` and smaller (see restrict_to_level); 0 means all.
class KeySwitchKey {
 public:
  std::vector<std::vector<u64>> b, a;
  std::optional<Seed> seed;  // a_d expands from it with domain d (over every prime; a keeps the covered ones)
  std::uint32_t chain = 0;
};

class RelinKeys {
 public:
  KeySwitchKey key;
  std::uint64_t params_id = 0;
  KeySetId key_set{};
};

class GaloisKeys {
 public:
  std::map<std::uint32_t, KeySwitchKey> keys;  // by Galois element
  std::uint64_t params_id = 0;
  KeySetId key_set{};
  bool has(std::uint32_t galois_elt) const { return keys.count(galois_elt) != 0; }
};

}  // namespace hecnn::ckks
