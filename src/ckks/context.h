#pragma once
// Precomputed tables for one parameter set: NTT tables for every prime, rescaling constants, and
// the RNS base conversions hybrid key switching needs at every level. Built once, shared read-only.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "ckks/ring_types.h"
#include "ckks/params.h"

namespace hecnn::ckks {

// Key-switching tables at one level l (primes q_0..q_l active).
struct KeySwitchLevel {
  // Digit d covers chain primes [d*alpha, min((d+1)*alpha, l+1)).
  std::size_t digit_count = 0;
  std::vector<BaseConverter> mod_up;   // per digit: its primes -> the other active primes, then P
  std::vector<std::vector<std::size_t>> mod_up_targets;  // extended-limb index of each target
  // Centering of the digits: each digit is extended as an integer of mean zero, not as its residue in
  // [0, Q_d). Per digit: the value added to each of its limbs (coefficient form) before the
  // conversion, and the offset added to each target limb before its forward NTT (minus the
  // centering constant, modulo the target prime). See Evaluator::mod_up.
  std::vector<std::vector<u64>> mod_up_pre;
  std::vector<std::vector<u64>> mod_up_post;
  DivideRoundByP mod_down;             // round(x / P) over q_0..q_l
  // Relinearization fused with the rescale (l >= 1): round(x / (P q_l)) over q_0..q_l-1, the
  // divisor's primes being p_0..p_K-1 and q_l; and P mod q_l.
  DivideRoundByP mod_down_rescale;
  MulConst p_mod_top;
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
