#pragma once
// RNS base conversion and the divide-and-round by P of hybrid key switching, on coefficient- and
// NTT-form limbs. Tables only: which limbs of which polynomial, and the parallelism over them, are
// the caller's (the scheme's key switching).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ring/modarith.h"
#include "ring/ntt.h"

namespace hecnn::ring {

// Fast (approximate) RNS base conversion: x mod {source primes} -> x + k*S mod {target primes},
// 0 <= k < |source|. Operates on coefficient-form limbs, in two steps that parallelize separately:
// scale_source per source limb, then to_target per target limb.
class BaseConverter {
 public:
  BaseConverter() = default;
  BaseConverter(const std::vector<Modulus>& source, const std::vector<Modulus>& target);
  // in[i] points to n coefficients modulo source[i]; out[t] receives n coefficients modulo target[t].
  // scratch must hold source.size() * n words. Serial; fully reduced output.
  void convert(const u64* const* in, u64* const* out, std::size_t n, u64* scratch) const;
  std::size_t source_size() const { return source_.size(); }
  std::size_t target_size() const { return target_.size(); }

  // Step 1, source limb i: y = x * (S/s_i)^-1 mod s_i (in == out allowed). The identity (skipped)
  // for a single source prime.
  void scale_source(std::size_t i, const u64* in, u64* out, std::size_t n) const;
  // The factor scale_source multiplies source limb i by: (S/s_i)^-1 mod s_i, 1 for one prime.
  u64 source_scale(std::size_t i) const { return source_.size() == 1 ? 1 : inv_hat_[i].w; }
  // Step 2, target t: out = sum_i y_i * (S/s_i) mod t_t from the step-1 limbs y, fully reduced.
  // With `lazy`, a single source prime below lazy_factor * t_t needs no work at all (its values are
  // then below lazy_factor * t_t, fit for NttTables::forward when lazy_factor <= 4): nothing is
  // written and y[0] is returned. Otherwise returns out.
  const u64* to_target(const u64* const* y, std::size_t t, u64* out, std::size_t n, bool lazy,
                       u64 lazy_factor = 4) const;

 private:
  std::vector<Modulus> source_, target_;
  std::vector<MulConst> inv_hat_;    // (S/s_i)^-1 mod s_i
  std::vector<u64> hat_mod_target_;  // (S/s_i) mod t_j, row-major [j][i]
  u64 max_source_ = 0;
};

// round(x / P) for x over q_0..q_l, p_0..p_K-1 (NTT form), P = p_0...p_K-1: the "mod down" of
// hybrid key switching. Rounding rather than flooring: floor(P/2) is added to the P part before
// the conversion and subtracted again modulo each q_i (for free, as the forward NTT's offset).
// With several special primes the fast conversion's overflow is compensated on average, so the
// error has mean zero (for even K the result is then x / P up to a zero-mean error below K + 1).
class DivideRoundByP {
 public:
  DivideRoundByP() = default;
  // special: p_0..p_K-1 (odd); chain: q_0..q_l.
  DivideRoundByP(const std::vector<Modulus>& special, const std::vector<Modulus>& chain);
  std::size_t special_count() const { return half_p_mod_p_.size(); }
  std::size_t chain_count() const { return p_inv_.size(); }

  // Step 1, special limb k (in place): NTT form -> coefficient form, + floor(P/2), scaled for the
  // conversion. `ntt_pk` are p_k's tables.
  void prepare_special(std::size_t k, const NttTables& ntt_pk, u64* x, std::size_t n) const;
  // Step 2, chain limb i: out (+)= (x_i - NTT(P part mod q_i - the constant)) * P^-1 mod q_i, where
  // y[k] are the K special limbs after step 1, x_i the limb of x modulo q_i (NTT form), `ntt_qi`
  // q_i's tables and tmp n words of scratch. out may alias x_i.
  void finish_chain(std::size_t i, const NttTables& ntt_qi, const u64* const* y, const u64* x_i, u64* out,
                    bool accumulate, u64* tmp, std::size_t n) const;
  // The same, writing out = (x_i - NTT(...)) * P^-1 + z * v (one pass for both terms).
  void finish_chain_plus(std::size_t i, const NttTables& ntt_qi, const u64* const* y, const u64* x_i, const u64* z,
                         const MulConst& v, u64* out, u64* tmp, std::size_t n) const;

 private:
  BaseConverter conv_;            // P -> q_0..q_l
  std::vector<MulConst> p_inv_;   // P^-1 mod q_i
  std::vector<u64> half_p_mod_p_; // floor(P/2) mod p_k (odd K), else 0
  std::vector<u64> offset_mod_q_; // minus what step 1 added, plus the mean overflow, mod q_i
};

}  // namespace hecnn::ring
