#pragma once
// Precomputed tables for one parameter set: NTT tables for every prime, rescaling constants, and
// the RNS base conversions hybrid key switching needs at every level. Built once, shared read-only.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "ckks/modarith.h"
#include "ckks/ntt.h"
#include "ckks/params.h"

namespace hecnn::ckks {

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

// Key-switching tables at one level l (primes q_0..q_l active).
struct KeySwitchLevel {
  // Digit d covers chain primes [d*alpha, min((d+1)*alpha, l+1)).
  std::size_t digit_count = 0;
  std::vector<BaseConverter> mod_up;   // per digit: its primes -> the other active primes, then P
  std::vector<std::vector<std::size_t>> mod_up_targets;  // extended-limb index of each target
  BaseConverter mod_down;              // P -> q_0..q_l
  std::vector<MulConst> p_inv;         // P^-1 mod q_i
  std::vector<u64> half_p_mod_p;       // floor(P/2) mod p_k
  std::vector<u64> half_p_mod_q;       // floor(P/2) mod q_i
};

class CkksContext {
 public:
  static std::shared_ptr<const CkksContext> create(const CkksParameters& params);

  const CkksParameters& params() const { return params_; }
  std::size_t n() const { return params_.poly_degree(); }
  int log_n() const { return log_n_; }
  std::size_t max_level() const { return params_.max_level(); }
  std::size_t chain_size() const { return params_.q().size(); }
  std::size_t special_count() const { return params_.p().size(); }
  // Moduli indexed as q_0..q_L-1 then p_0..p_K-1 ("key index").
  const Modulus& modulus(std::size_t key_index) const { return moduli_[key_index]; }
  const std::vector<Modulus>& moduli() const { return moduli_; }
  const NttTables& ntt(std::size_t key_index) const { return ntt_[key_index]; }

  // Rescaling by q_l: q_l^-1 mod q_i for i < l.
  const std::vector<MulConst>& rescale_inv(std::size_t level) const { return rescale_inv_[level]; }
  const KeySwitchLevel& key_switch(std::size_t level) const { return ks_[level]; }
  // P mod q_i (i < L), used when generating key-switching keys.
  const std::vector<u64>& p_mod_q() const { return p_mod_q_; }

  // Galois element for a left rotation by `step` slots (negative: right), and for conjugation.
  std::uint32_t galois_element(int step) const;
  std::uint32_t conjugation_element() const { return static_cast<std::uint32_t>(2 * n() - 1); }
  // Permutation applying X -> X^g to a polynomial in NTT (bit-reversed) form: out[i] = in[perm[i]].
  std::vector<std::uint32_t> galois_permutation_ntt(std::uint32_t galois_elt) const;

 private:
  explicit CkksContext(const CkksParameters& params);
  CkksParameters params_;
  int log_n_ = 0;
  std::vector<Modulus> moduli_;
  std::vector<NttTables> ntt_;
  std::vector<std::vector<MulConst>> rescale_inv_;
  std::vector<KeySwitchLevel> ks_;
  std::vector<u64> p_mod_q_;
};

using ContextPtr = std::shared_ptr<const CkksContext>;

}  // namespace hecnn::ckks
