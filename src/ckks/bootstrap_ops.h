#pragma once
// Scheme-level operations of bootstrapping (circuits/bootstrap.h builds the circuit from them):
// raising a level-0 ciphertext's modulus, multiplying by i, and the level-0 key switch to a sparse
// secret (sparse-secret encapsulation, Bossuat et al. 2022).
#include <cstdint>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/keys.h"

namespace hecnn::ckks {

// The key switching s -> s' at level 0, over q_0 and the first special prime p_0 only (so that the
// sparse secret s' is exposed at a 120-bit modulus): (b, a) with b = -a s' + e + p_0 s mod q_0 p_0,
// NTT form, limb 0 mod q_0 and limb 1 mod p_0. One digit: the switch divides by p_0, which leaves a
// noise of about (q_0 / p_0) sqrt(N / 12) sigma per coefficient.
struct Level0SwitchKey {
  std::vector<std::uint64_t> b, a;
  std::size_t bytes() const { return (b.size() + a.size()) * sizeof(std::uint64_t); }
};

// From the client's secret key s (`from`) to `to` (both for ctx's parameters); noise and the uniform
// part from the CSPRNG.
Level0SwitchKey make_level0_switch_key(const CkksContext& ctx, const SecretKey& from, const SecretKey& to);
// A level-0 ciphertext under s becomes one under s' (level, scale and slots kept).
Ciphertext level0_switch(const CkksContext& ctx, const Ciphertext& in, const Level0SwitchKey& key);

// ModRaise: the level-0 ciphertext's components, centered modulo q_0, at every prime up to `level`;
// it decrypts to t = m + q_0 I with the integer polynomial I small (|I| <= (||s||_1 + 1) / 2). The
// scale is set to q_0 (the slots then read t / q_0).
Ciphertext mod_raise(const CkksContext& ctx, const Ciphertext& in, std::size_t level);

// Multiplying every slot by i: the monomial X^(N/2), exact, no level.
class MultiplyByI {
 public:
  explicit MultiplyByI(const CkksContext& ctx);
  void apply(Ciphertext& ct) const;

 private:
  const CkksContext* ctx_;
  std::vector<std::vector<std::uint64_t>> ntt_;  // X^(N/2) in NTT form per prime
};

}  // namespace hecnn::ckks
