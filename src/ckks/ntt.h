#pragma once
// Negacyclic number-theoretic transform over Z_q[X]/(X^N + 1).
// Forward: Cooley-Tukey with Harvey's lazy butterflies (values in [0, 4q)) and Shoup twiddles,
// output in bit-reversed order. Inverse: Gentleman-Sande, taking bit-reversed input.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ckks/modarith.h"

namespace hecnn::ckks {

class NttTables {
 public:
  NttTables(u64 q, std::size_t n);

  const Modulus& modulus() const { return q_; }
  std::size_t n() const { return n_; }
  // Root used: psi is a primitive 2n-th root of unity.
  u64 psi() const { return psi_; }

  // In place; input in [0, q), output in [0, q).
  void forward(u64* a) const;
  void inverse(u64* a) const;

 private:
  Modulus q_;
  std::size_t n_;
  int log_n_;
  u64 psi_;
  std::vector<u64> fwd_, fwd_shoup_;  // psi^brev(k)
  std::vector<u64> inv_, inv_shoup_;  // psi^-brev(k)
  u64 n_inv_, n_inv_shoup_;
};

inline std::uint32_t reverse_bits(std::uint32_t x, int bits) {
  std::uint32_t r = 0;
  for (int i = 0; i < bits; ++i) {
    r = (r << 1) | (x & 1);
    x >>= 1;
  }
  return r;
}

}  // namespace hecnn::ckks
