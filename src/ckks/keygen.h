#pragma once
#include <cstdint>
#include <vector>

#include "ckks/context.h"
#include "ckks/keys.h"

namespace hecnn::ckks {

class KeyGenerator {
 public:
  // Generates a fresh ternary secret key from the CSPRNG, with a fresh random key-set id that every
  // key made here carries.
  explicit KeyGenerator(ContextPtr ctx);
  // Derives further keys from an existing secret key (they carry its key-set id).
  KeyGenerator(ContextPtr ctx, const SecretKey& sk);

  const SecretKey& secret_key() const { return sk_; }
  const CkksContext& context() const { return *ctx_; }
  PublicKey create_public_key() const;
  RelinKeys create_relin_keys() const;
  // Keys for left rotations by each step (negative: right) and, optionally, conjugation.
  GaloisKeys create_galois_keys(const std::vector<int>& steps, bool conjugation = true) const;
  GaloisKeys create_galois_keys_for_elements(const std::vector<std::uint32_t>& elements) const;
  // Galois keys for rotation steps, each kept only up to the level it is used at (levels[i] for
  // steps[i]; see restrict_to_level): a key for level l has the digits and limbs of level l.
  GaloisKeys create_galois_keys(const std::vector<int>& steps, const std::vector<std::size_t>& levels) const;
  // A key switching ciphertexts under `from` (same parameters) to this generator's secret key
  // (Evaluator::switch_key_inplace); bootstrapping's sparse-secret encapsulation uses one.
  KeySwitchKey create_switch_key(const SecretKey& from) const;

 private:
  // Key switching from s' (given in NTT form over all primes) to s.
  KeySwitchKey make_switch_key(const std::vector<u64>& s_prime_ntt) const;
  ContextPtr ctx_;
  SecretKey sk_;
};

// A secret key with exactly `hamming_weight` coefficients in {-1, 1} (positions and signs uniform,
// from the CSPRNG), the others 0, with a fresh key-set id: the ephemeral sparse secret of
// bootstrapping's encapsulation (circuits/bootstrap.h). Throws hecnn::Error for a weight of 0 or
// above N.
SecretKey sample_sparse_secret(const CkksContext& ctx, std::size_t hamming_weight);

// Rebuilds the uniform components of a key from its seed (used by deserialization too).
void expand_public_key_a(const CkksContext& ctx, const Seed& seed, std::vector<u64>& a);
void expand_switch_key_a(const CkksContext& ctx, const Seed& seed, std::size_t digit, std::vector<u64>& a);
// Keeps of a key-switching key what ciphertexts at `level` and below use: the chain primes q_0..q_level
// (and P) of the digits of that level. The key switch of a lower level uses the same words, so the
// result is the same. Throws hecnn::Error if the key already covers fewer primes.
void restrict_to_level(KeySwitchKey& key, const CkksContext& ctx, std::size_t level);
// Keeps of one polynomial of a key (`have` chain limbs, then `special` limbs) the first `keep` chain
// limbs and the special ones, which move down next to them.
void keep_chain_limbs(std::vector<u64>& limbs, std::size_t have, std::size_t keep, std::size_t special, std::size_t n);
// The chain primes a key covers (key.chain, or all).
std::size_t key_chain(const KeySwitchKey& key, const CkksContext& ctx);
// Rebuilds the NTT form of a secret key from its coefficients.
void compute_secret_ntt(const CkksContext& ctx, SecretKey& sk);

}  // namespace hecnn::ckks
