#pragma once
// The homomorphic DFT of CKKS bootstrapping: the encoding's "special FFT" between the slots and the
// (complex-packed, bit-reversed) coefficients, on n = 2^k slots, as a product of a few sparse
// diagonal matrices, each evaluated as one linear transform (circuits/linear_transform.h).
//
// With w_i = t_{ig} + i t_{(i+n)g} (g = N / 2n; the coefficients t of a sparse plaintext sit at
// multiples of g), the slots are z = V w, V_{j,i} = zeta_j^i with zeta_j = exp(i pi 5^j g / N)
// (CkksEncoder's slot order). The encoder computes V as log2(n) radix-2 butterfly stages after a
// bit reversal: V = S_n ... S_4 S_2 BR. So
//   SlotsToCoeffs (StC) = S_n ... S_2        maps BR(w) to z,
//   CoeffsToSlots (CtS) = S_2^-1 ... S_n^-1  maps z to BR(w),
// and the bit reversal never needs evaluating: EvalMod, between the two, acts slot-wise. Each stage
// has 3 diagonals (offsets 0 and +-len/2); consecutive stages are merged into `levels` factors (one
// level each): fewer levels mean more diagonals (a group of s stages has up to 2^(s+1) - 1) but
// fewer rotations overall, as in Lattigo's circuits/ckks/dft and OpenFHE's level budget.
#include <complex>
#include <cstddef>
#include <map>
#include <memory>
#include <vector>

#include "circuits/linear_transform.h"
#include "ckks/ckks.h"

namespace hecnn::circuits {

enum class DftDirection { CoeffsToSlots, SlotsToCoeffs };

// One factor in diagonal form: y[p] = sum over d of diag[d][p] * x[(p + d) mod n].
struct DiagonalMatrix {
  std::size_t n = 0;
  std::map<long, std::vector<std::complex<double>>> diagonals;  // offset in [0, n)
  std::vector<std::complex<double>> apply(const std::vector<std::complex<double>>& x) const;
  // (*this) o b: b applied first.
  DiagonalMatrix after(const DiagonalMatrix& b) const;
  void scale(std::complex<double> c);
};

// The factors of the direction's transform on n slots (a power of two >= 2; the roots do not depend
// on the ring degree), merged into `levels` matrices (1 <= levels <= log2 n), in the order they are
// applied. `constant` multiplies the first factor applied. Stages are grouped as evenly as possible,
// the larger groups first.
std::vector<DiagonalMatrix> dft_factors(std::size_t n, DftDirection direction, std::size_t levels,
                                        std::complex<double> constant = 1.0);

// The plaintext DFT without the bit reversal, stage by stage: what the factors compose to.
std::vector<std::complex<double>> dft_reference(const std::vector<std::complex<double>>& x, DftDirection direction);
// (The bit reversal itself: ckks::bit_reverse, ckks/encoder.h.)

// A DFT ready to run: the factors' BSGS shapes and their plaintexts, encoded at the levels the
// factors run at and at the scales that give each output its target scale exactly.
class HomomorphicDft {
 public:
  struct Options {
    std::size_t slots = 0;        // n
    DftDirection direction = DftDirection::CoeffsToSlots;
    std::size_t levels = 3;       // factors, one level each
    std::size_t top_level = 0;    // the level of the input ciphertext
    double input_scale = 0;       // the input's scale
    double output_scale = 0;      // the scale of the last factor's output
    // The scales of the intermediate outputs: the output's from the first factor on (a transform
    // whose rounding errors grow afterwards, CoeffsToSlots before EvalMod), or geometric steps from
    // the input's to the output's (SlotsToCoeffs: the remaining butterflies amplify an early
    // factor's rounding error up to 2^(stages left / 2), so early factors keep a high scale).
    bool geometric_scales = false;
    std::complex<double> constant = 1.0;
    // Plaintexts are encoded once while their total stays below this many bytes, else at every run.
    std::size_t plaintext_budget = static_cast<std::size_t>(-1);
  };
  HomomorphicDft(ckks::ContextPtr ctx, const Options& opts);
  // The same transform to another output scale, sharing the factors' matrices and the encoder
  // (plaintexts stored within the new budget).
  std::unique_ptr<HomomorphicDft> with_output_scale(double output_scale, std::size_t plaintext_budget) const;

  // Applies the transform; ct must be at top_level with input_scale (to 1e-9 relative). Output at
  // top_level - levels, with output_scale exactly.
  ckks::Ciphertext apply(const ckks::Evaluator& ev, const ckks::GaloisKeys& gk, ckks::Ciphertext ct) const;

  const Options& options() const { return opts_; }
  std::size_t output_level() const { return opts_.top_level - opts_.levels; }
  // Distinct rotation steps the factors use (in slots of n), with the highest level each is used at.
  std::map<int, std::size_t> rotation_levels() const;
  std::size_t rotations() const;     // key switches per evaluation
  std::size_t products() const;      // plaintext products per evaluation
  std::size_t stored_bytes() const;  // plaintexts held
  // What store_plaintexts would keep with `budget` bytes (the factors in order while they fit).
  std::size_t storable_bytes(std::size_t budget) const;
  std::size_t all_plaintext_bytes() const;  // every factor's plaintexts, if all were stored
  std::size_t matrix_bytes() const;         // the factors' diagonals (complex doubles), kept for encoding (shared by with_output_scale)
  // Bytes of plaintexts and ciphertexts an evaluation holds at its peak, beyond the stored ones.
  std::size_t working_bytes() const;

 private:
  struct Factor {
    std::shared_ptr<const DiagonalMatrix> matrix;
    LtShape shape;
    std::size_t level = 0;
    double in_scale = 0, out_scale = 0, plaintext_scale = 0;
    std::vector<std::vector<ckks::Plaintext>> stored;  // [giant][term], or empty
  };
  std::vector<std::vector<ckks::Plaintext>> encode(const Factor& f, std::size_t g0, std::size_t g1) const;
  // with_output_scale's: o's factors without their plaintexts.
  HomomorphicDft(const HomomorphicDft& o, double output_scale, std::size_t plaintext_budget);
  // Each factor's level and its input, output and plaintext scales, from the options.
  void plan_scales();
  // Encodes the factors' plaintexts in order while they fit opts_.plaintext_budget.
  void store_plaintexts();

  ckks::ContextPtr ctx_;
  std::shared_ptr<const ckks::CkksEncoder> encoder_;
  Options opts_;
  std::vector<Factor> factors_;
};

}  // namespace hecnn::circuits
