#pragma once
// CKKS parameters: ring degree, the ciphertext modulus chain Q = q_0 ... q_L, the special primes
// P = p_0 ... p_{K-1} used for hybrid key switching, and the number of decomposition digits.
// Validated once here; everything downstream assumes valid parameters.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hecnn::ckks {

struct ParameterOptions {
  // Allow log2(Q*P) above the 128-bit security bound. For tests only: the name says why.
  bool allow_insecure = false;
  // Number of key-switching decomposition digits; 0 chooses automatically (as few digits as the
  // special primes allow: each digit's product of primes stays below P).
  std::size_t digits = 0;
};

// The HomomorphicEncryption.org bound on log2(Q*P) for 128-bit security with a ternary secret;
// 0 if the ring degree is outside the table (1024 ... 65536).
int security_bound_bits(std::size_t n);

class CkksParameters {
 public:
  // Primes chosen as the largest NTT-friendly primes of the requested bit sizes.
  static CkksParameters from_bit_sizes(std::size_t n, const std::vector<int>& q_bits,
                                       const std::vector<int>& p_bits, const ParameterOptions& opts = {});
  static CkksParameters from_primes(std::size_t n, std::vector<std::uint64_t> q, std::vector<std::uint64_t> p,
                                    const ParameterOptions& opts = {});
  // Named presets (see preset_names()): "seal-n8192", "seal-n16384", "n32768-l10", ...
  static CkksParameters preset(const std::string& name);
  // The preset's chain (the same prime sizes) at ring degree n (0: its own). Below its own degree the
  // chain exceeds the security bound: refused unless opts.allow_insecure (tests, demos).
  static CkksParameters preset_at(const std::string& name, std::size_t n, const ParameterOptions& opts);
  static std::vector<std::string> preset_names();
  static std::string preset_description(const std::string& name);

  std::size_t poly_degree() const { return n_; }
  std::size_t max_slots() const { return n_ / 2; }
  const std::vector<std::uint64_t>& q() const { return q_; }
  const std::vector<std::uint64_t>& p() const { return p_; }
  std::size_t max_level() const { return q_.size() - 1; }
  std::size_t digits() const { return digits_; }
  // Primes per digit (the last digit may have fewer).
  std::size_t digit_size() const { return alpha_; }
  bool insecure() const { return insecure_; }
  // Bit length of the product Q*P.
  int total_bits() const { return total_bits_; }
  // 64-bit identifier (BLAKE2b) of the ring degree, primes and digit count.
  std::uint64_t id() const { return id_; }
  std::string describe() const;

  bool operator==(const CkksParameters& o) const { return id_ == o.id_ && q_ == o.q_ && p_ == o.p_ && n_ == o.n_; }

 private:
  CkksParameters() = default;
  std::size_t n_ = 0;
  std::vector<std::uint64_t> q_, p_;
  std::size_t digits_ = 0, alpha_ = 0;
  bool insecure_ = false;
  int total_bits_ = 0;
  std::uint64_t id_ = 0;
};

}  // namespace hecnn::ckks
