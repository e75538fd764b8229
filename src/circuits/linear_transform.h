#pragma once
// Linear transforms on CKKS slots as sums of diagonals, y = sum_d diag_d (.) rot(x, d), evaluated
// with baby-step giant-step: d = g + b, so
//   y = sum_g rot( sum_b rot(diag_{g+b}, -g) (.) rot(x, b), g ),
// the baby rotations rot(x, b) of each input made from one key-switching decomposition (hoisted),
// the plaintext products of every giant step summed in one pass (Evaluator::multiply_plain_sums),
// and one rotation per giant step. Several inputs and outputs are allowed (the packed layout's
// multi-ciphertext convolutions); the DFT of bootstrapping uses one input and one output.
//
// The shape (which products, which rotations) is separate from the plaintexts, which are either
// encoded once and stored, or encoded a batch of giant steps at a time when they do not fit.
#include <cstddef>
#include <functional>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/evaluator.h"
#include "ckks/keys.h"

namespace hecnn::circuits {

// One plaintext product: input `in` rotated left by `baby` slots (0: the input itself).
struct LtTerm {
  std::size_t in = 0;
  int baby = 0;
};
// The products summed into one giant step, then rotated left by `step` and added to output `out`.
struct LtGiant {
  std::size_t out = 0;
  int step = 0;
  std::vector<LtTerm> terms;
};
struct LtShape {
  std::size_t inputs = 1, outputs = 1;
  std::vector<LtGiant> giants;
  // Per input: its distinct nonzero baby steps, sorted (set by finalize()).
  std::vector<std::vector<int>> baby;
  // Fills `baby` from the giants' terms; throws hecnn::Error for an input or output out of range.
  void finalize();
  std::size_t products() const;
  // Distinct nonzero rotation steps (baby and giant), sorted.
  std::vector<int> rotation_steps() const;
  // Key switches per evaluation: one per distinct baby step of each input, one per nonzero giant.
  std::size_t rotations() const;
};

// The plaintext of term t of giant step g, for the product with rot(x, baby): rot(diag, -step).
struct LtPlaintexts {
  // Encoded once, [giant][term]; null: encoded by `encode` a batch of giant steps at a time.
  const std::vector<std::vector<ckks::Plaintext>>* stored = nullptr;
  // Encodes the plaintexts of giant steps [g0, g1) ([g - g0][term]).
  std::function<std::vector<std::vector<ckks::Plaintext>>(std::size_t g0, std::size_t g1)> encode;
  // On-the-fly batches hold at most this many bytes of plaintexts (at least one giant step).
  std::size_t batch_bytes = std::size_t{256} << 20;
  std::size_t plaintext_bytes = 0;  // bytes of one plaintext, for the batching
};

// Evaluates the transform on `in` (every input at one level, scale and size 2; consumed: emptied
// to free memory as soon as possible). The outputs are not rescaled: scale = input scale times the
// plaintexts' scale. An output no giant step writes is an error. Rotations run in parallel over
// giant steps.
std::vector<ckks::Ciphertext> apply(const ckks::Evaluator& ev, const ckks::GaloisKeys& gk, std::vector<ckks::Ciphertext>& in,
                                    const LtShape& shape, const LtPlaintexts& pts);

// A one-input, one-output shape for the diagonals at `offsets` (left rotations, any integers; taken
// modulo `slots`) with baby steps 0 .. baby_size - 1: giant g = d - (d mod baby_size). Terms of a
// giant keep the order of `offsets`; giants are ordered by step. baby_size 0 chooses the power of
// two with the fewest rotations (baby steps weighted as `baby_cost` of a giant step: hoisted, they
// cost less).
LtShape bsgs_shape(const std::vector<long>& offsets, std::size_t slots, std::size_t baby_size = 0, double baby_cost = 0.6);

// The diagonal offset (mod slots) that term t of giant g of a bsgs_shape applies: step + baby.
inline long term_offset(const LtGiant& g, const LtTerm& t, std::size_t slots) {
  return (static_cast<long>(g.step) + t.baby) % static_cast<long>(slots);
}

}  // namespace hecnn::circuits
