#pragma once
// CKKS bootstrapping (Cheon-Han-Kim-Kim-Song 2018 with the improvements of Chen-Chillotti-Song 2019,
// Han-Ki 2020 and Bossuat et al. 2021/2022), as a circuit above the scheme:
//
//   level 0 --encapsulate--> under the sparse secret s' --ModRaise--> top level --back to s-->
//   [trace, sparse slots] --CoeffsToSlots--> --(ct + conj, -i (ct - conj))--> EvalMod x2
//   --(re + i im)--> SlotsToCoeffs --> level top - (CtS + EvalMod + StC levels), the input's scale.
//
// Why this shape (what is fastest on 2 cores at 20 bits):
//  - Sparse-secret encapsulation (Bossuat et al. 2022): the ciphertext is switched at level 0 to an
//    ephemeral secret s' of Hamming weight h = 32 before ModRaise, and back to the main (uniform
//    ternary) secret right after. With s', t = c0 + c1 s' = m + q_0 I has |I| <= (h + 1) / 2 = 16.5
//    always (no failure probability), so EvalMod covers [-17, 17] with a degree-~60 interpolant and
//    3 double angles: 9 levels, against 13+ for a uniform secret (OpenFHE's K = 512 range). The
//    four levels saved (240 bits) pay for the special primes that bring the key-switching digits to
//    4, which is what keeps the rotation keys at N = 2^16 within memory and the key switches fast.
//    The main secret stays uniform ternary, so the HomomorphicEncryption.org table applies to the
//    whole chain; the s -> s' key lives at q_0 p_0 alone (one special prime, 120 bits), see
//    SECURITY.md for its estimate.
//  - The DFTs are the encoding's radix-2 FFT, merged into 3 factors each (circuits/dft.h), evaluated
//    as baby-step giant-step linear transforms with hoisted baby steps (circuits/linear_transform.h).
//  - EvalMod: the scaled cosine and double angles (circuits/mod1.h); no arcsine (q_0 / scale = 2^10,
//    see mod1.h for the trade-off).
//  - Full slots: the coefficients come out of CtS complex-packed (t_i + i t_{i+N/2}); their real and
//    imaginary parts go through EvalMod as two ciphertexts. Real values: two ciphertexts are
//    bootstrapped at once as a + i b (bootstrap_pair), halving the cost per ciphertext. Sparse slots (n < N/2): a trace first
//    keeps the coefficients at multiples of N/2n, and every transform is on n slots (cheaper DFTs).
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "circuits/dft.h"
#include "circuits/mod1.h"
#include "ckks/bootstrap_ops.h"
#include "ckks/ckks.h"

namespace hecnn::circuits {

struct BootstrapParameters {
  std::size_t slots = 0;         // n, a power of two up to N/2; 0: N/2 (full slots)
  std::size_t cts_levels = 3;    // CoeffsToSlots factors (levels)
  std::size_t stc_levels = 3;    // SlotsToCoeffs factors (levels)
  EvalModOptions mod{17, 2, 0, 0x1p-48};  // K = 17 covers |I| <= 16.5 (h = 32); 2 double angles
  std::size_t ephemeral_weight = 32;  // h of the ephemeral sparse secret
  double scale = 0;              // message scale of input and output; 0: q_0 / 2^10
  // DFT plaintexts are encoded once while their total stays below this (bytes), else at every run.
  // 2 GiB keeps N = 2^16, full slots, within 8 GiB in all (keys 3.8, CoeffsToSlots' plaintexts
  // stored, SlotsToCoeffs' encoded at every run, working memory 0.9).
  std::size_t plaintext_budget = std::size_t{2} << 30;
};

using EncapsulationKey = ckks::Level0SwitchKey;  // s -> s' at level 0 (ckks/bootstrap_ops.h)

// The keys bootstrap() reads, wherever they are kept (a server holds the rotation keys of a whole
// plan, the bootstrap's among them, in one set).
struct BootstrapKeyView {
  const ckks::RelinKeys* relin = nullptr;
  const ckks::GaloisKeys* galois = nullptr;  // the DFTs' and the trace's rotations, and conjugation
  const EncapsulationKey* to_sparse = nullptr;
  const ckks::KeySwitchKey* from_sparse = nullptr;
};

struct BootstrapKeys {
  ckks::RelinKeys relin;
  ckks::GaloisKeys galois;            // the DFTs' and the trace's rotations, and conjugation
  EncapsulationKey to_sparse;         // s -> s' at level 0
  ckks::KeySwitchKey from_sparse;     // s' -> s at the top level
  std::size_t bytes() const;
  BootstrapKeyView view() const { return {&relin, &galois, &to_sparse, &from_sparse}; }
};

class Bootstrapper {
 public:
  // Throws hecnn::Error when the parameters do not fit the chain (too few levels) or are invalid.
  Bootstrapper(ckks::ContextPtr ctx, const BootstrapParameters& params);

  // The keys bootstrap() needs, from the client's key generator (which holds the main secret key;
  // the ephemeral sparse secret is drawn here and wiped after use). Only the rotation steps used
  // are generated, each kept to the highest level it is used at.
  BootstrapKeys generate_keys(const ckks::KeyGenerator& keygen) const;

  // Bootstraps a ciphertext at any level (it is dropped to level 0 first) holding values of
  // magnitude at most about 1 (values up to q_0 / scale = 2^10 wrap around; see EvalMod) at params.scale, with `slots`
  // slots. Output: output_level(), the same scale and slots. Throws hecnn::Error for another scale,
  // slot count or parameter set, an unrelinearized ciphertext, or keys that lack a step.
  // With `timings`, the seconds each step took are stored there.
  struct Timings {
    double raise = 0;           // encapsulation, ModRaise, the switch back (and the trace)
    double coeffs_to_slots = 0;
    double eval_mod = 0;        // the split, both EvalMods and the combination
    double slots_to_coeffs = 0;
    double total() const { return raise + coeffs_to_slots + eval_mod + slots_to_coeffs; }
  };
  ckks::Ciphertext bootstrap(const ckks::Ciphertext& ct, const BootstrapKeyView& keys, Timings* timings = nullptr) const;
  ckks::Ciphertext bootstrap(const ckks::Ciphertext& ct, const BootstrapKeys& keys, Timings* timings = nullptr) const {
    return bootstrap(ct, keys.view(), timings);
  }

  // Two ciphertexts of REAL values for the price of one bootstrap: a + i b goes through it, and its
  // real and imaginary parts come back as two ciphertexts (two conjugations at the output level),
  // each at output_level() and scale(). Imaginary parts in a or b would leak into the other output.
  std::pair<ckks::Ciphertext, ckks::Ciphertext> bootstrap_pair(const ckks::Ciphertext& a, const ckks::Ciphertext& b,
                                                               const BootstrapKeyView& keys, Timings* timings = nullptr) const;
  std::pair<ckks::Ciphertext, ckks::Ciphertext> bootstrap_pair(const ckks::Ciphertext& a, const ckks::Ciphertext& b,
                                                               const BootstrapKeys& keys, Timings* timings = nullptr) const {
    return bootstrap_pair(a, b, keys.view(), timings);
  }

  // The level a bootstrap's output has for these parameters, without building the transforms.
  // Throws hecnn::Error like the constructor when the chain is too short.
  static std::size_t output_level(const ckks::CkksParameters& params, const BootstrapParameters& bp);

  // The steps one by one (for tests; bootstrap() composes them).
  // Level-0 key switch s -> s'.
  ckks::Ciphertext encapsulate(const ckks::Ciphertext& ct, const EncapsulationKey& key) const;
  // The level-0 ciphertext's coefficients, centered mod q_0, at every prime up to the top level;
  // scale set to q_0 (slots then read t / q_0).
  ckks::Ciphertext mod_raise(const ckks::Ciphertext& ct) const;
  // Sparse slots: sum of the automorphisms fixing X^(N/2n) (times N/2n the coefficients at multiples of N/2n).
  ckks::Ciphertext trace(ckks::Ciphertext ct, const ckks::GaloisKeys& gk) const;
  ckks::Ciphertext coeffs_to_slots(ckks::Ciphertext ct, const ckks::GaloisKeys& gk) const;
  // (re, im) with re = ct + conj(ct), im = -i (ct - conj(ct)).
  std::pair<ckks::Ciphertext, ckks::Ciphertext> split(ckks::Ciphertext ct, const ckks::GaloisKeys& gk) const;
  ckks::Ciphertext eval_mod(ckks::Ciphertext ct, const ckks::RelinKeys& rk) const;
  // re + i im.
  ckks::Ciphertext combine(ckks::Ciphertext re, ckks::Ciphertext im) const;
  ckks::Ciphertext slots_to_coeffs(ckks::Ciphertext ct, const ckks::GaloisKeys& gk) const;

  const BootstrapParameters& parameters() const { return params_; }
  std::size_t slots() const { return params_.slots; }
  double scale() const { return params_.scale; }
  std::size_t top_level() const { return ctx_->max_level(); }
  std::size_t output_level() const { return stc_->output_level(); }
  // Levels the bootstrap consumes: CtS + EvalMod + StC.
  std::size_t depth() const { return top_level() - output_level(); }
  const EvalMod& eval_mod_circuit() const { return mod_; }
  const HomomorphicDft& cts() const { return *cts_; }
  const HomomorphicDft& stc() const { return *stc_; }
  // Rotation steps with the highest level each is used at.
  const std::map<int, std::size_t>& rotation_levels() const { return rotations_; }
  // Predicted bytes: of the keys generate_keys() makes; of the stored DFT plaintexts; of an
  // evaluation's working ciphertexts and scratch at its peak.
  std::size_t key_bytes() const;
  std::size_t plaintext_bytes() const;
  std::size_t all_plaintext_bytes() const;  // the DFTs' plaintexts if all were stored
  // What plaintext_bytes() would be with `budget` as BootstrapParameters::plaintext_budget.
  std::size_t plaintext_bytes_for(std::size_t budget) const;
  std::size_t working_bytes() const;
  // The tables held beside them: the DFTs' diagonals (for encoding) and the context's NTT, base
  // conversion and encoder tables (an estimate).
  std::size_t table_bytes() const;
  // Key switches per bootstrap (rotations, conjugations, relinearizations, encapsulation).
  std::size_t key_switches() const;

 private:
  // Multiplies every slot by i (the monomial X^(N/2), exact, no level).
  void multiply_by_i(ckks::Ciphertext& ct) const;
  // The rotation steps of both DFTs and the trace (rotations_, set once by the constructor).
  std::map<int, std::size_t> plan_rotations() const;
  // Throws unless `in` and `keys` fit this bootstrapper.
  void check_input(const ckks::Ciphertext& in, const BootstrapKeyView& keys) const;
  // The bootstrap of a checked ciphertext with the given SlotsToCoeffs.
  ckks::Ciphertext run(ckks::Ciphertext ct, const BootstrapKeyView& keys, const HomomorphicDft& stc, Timings* timings) const;

  ckks::ContextPtr ctx_;
  BootstrapParameters params_;
  ckks::Evaluator ev_;
  EvalMod mod_;
  std::unique_ptr<HomomorphicDft> cts_, stc_, stc_half_;  // stc_half_: for bootstrap_pair
  double mod_in_scale_ = 0, mod_out_scale_ = 0;
  std::map<int, std::size_t> rotations_;
  ckks::MultiplyByI times_i_;
};

}  // namespace hecnn::circuits
