#pragma once
// Negacyclic number-theoretic transform over Z_q[X]/(X^N + 1).
// Forward: Cooley-Tukey with Harvey's lazy butterflies (values in [0, 4q)) and Shoup twiddles,
// output in bit-reversed order. Inverse: Gentleman-Sande, taking bit-reversed input.
// The transforms run on the active SIMD level (see simd.h); every level gives identical results.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ring/modarith.h"

namespace hecnn::ring {

// The last inverse stage's constants: n^-1 and n^-1 psi^-brev(1), with their Shoup companions
// (64-bit, and 52-bit for the IFMA kernels when q < 2^50). Scaled by c, the inverse transform also
// multiplies its output by c, for free.
struct InverseScale {
  u64 n_inv = 0, n_inv_shoup = 0, n_inv_shoup52 = 0;
  u64 last = 0, last_shoup = 0, last_shoup52 = 0;
};

class NttTables {
 public:
  NttTables(u64 q, std::size_t n);

  const Modulus& modulus() const { return q_; }
  std::size_t n() const { return n_; }
  int log_n() const { return log_n_; }
  // Root used: psi is a primitive 2n-th root of unity.
  u64 psi() const { return psi_; }

  // In place. forward: input in [0, 4q) (so a lazily reduced or a smaller prime's residue may be fed
  // directly), output in [0, q). inverse: input in [0, 2q), output in [0, q).
  void forward(u64* a) const { forward(a, a, 0); }
  void inverse(u64* a) const { inverse(a, a); }
  // Out of place (in == out allowed, else no overlap); saves a copy where the input must be kept.
  // forward transforms in[i] + add (each below 4q): a constant offset costs nothing extra.
  void forward(const u64* in, u64* out, u64 add = 0) const;
  void inverse(const u64* in, u64* out) const;
  // inverse, with the output multiplied by c mod q (constants from inverse_scale(c)).
  void inverse(const u64* in, u64* out, const InverseScale& scale) const;
  InverseScale inverse_scale(u64 c) const;

  // Twiddle tables for the kernels: psi^brev(k) and psi^-brev(k), with Shoup companions
  // floor(w 2^64 / q) and, when q < 2^50, floor(w 2^52 / q) for the IFMA kernels (else empty).
  struct Tables {
    std::vector<u64> fwd, fwd_shoup, fwd_shoup52;
    std::vector<u64> inv, inv_shoup, inv_shoup52;
    // n^-1, and n^-1 * psi^-brev(1) for the last inverse stage (fused scaling).
    u64 n_inv = 0, n_inv_shoup = 0, n_inv_shoup52 = 0;
    u64 last = 0, last_shoup = 0, last_shoup52 = 0;
  };
  const Tables& tables() const { return t_; }

 private:
  Modulus q_;
  std::size_t n_;
  int log_n_;
  u64 psi_;
  Tables t_;
};

// The unscaled constants (a scale of 1).
inline InverseScale unit_scale(const NttTables::Tables& t) {
  return {t.n_inv, t.n_inv_shoup, t.n_inv_shoup52, t.last, t.last_shoup, t.last_shoup52};
}

inline std::uint32_t reverse_bits(std::uint32_t x, int bits) {
  std::uint32_t r = 0;
  for (int i = 0; i < bits; ++i) {
    r = (r << 1) | (x & 1);
    x >>= 1;
  }
  return r;
}

// Shoup companion for 52-bit lanes: floor(w * 2^52 / q), for w < q < 2^52.
inline u64 shoup52(u64 w, u64 q) { return static_cast<u64>((static_cast<u128>(w) << 52) / q); }

}  // namespace hecnn::ring
