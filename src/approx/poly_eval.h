#pragma once
// Evaluating a polynomial on a CKKS ciphertext with the minimal multiplicative depth, and the
// plaintext mirror of the same computation.
//
// Depth: ceil(log2(d + 1)) levels for degree d, or ceil(log2(d)) in "monic" form, where p / a_d
// is evaluated and a_d is returned for the caller to fold into the next linear layer (the paper's
// trick: a degree-4 activation in 2 levels instead of 3). Scalar multiplications cost a level like
// products, so the algorithm keeps them off the critical path: the polynomial is split recursively
// as p = q * T_g + r on power-of-two basis elements T_g (giant steps) down to linear combinations of
// precomputed low powers (baby steps), Paterson-Stockmeyer style. Every sum is formed at one level
// and one exact scale: each constant is encoded at the scale that makes its term land on the
// target after the single rescale of the sum.
#include <cstdint>
#include <vector>

#include "approx/polynomial.h"
#include "ckks/ciphertext.h"
#include "ckks/evaluator.h"
#include "ckks/keys.h"

namespace hecnn::approx {

// What the input ciphertext holds, and so which basis is used:
//  - Normalized: x / r (r = the polynomial's range), as a compiler arranges for free by folding
//    1/r into the previous linear layer. Evaluated in the Chebyshev basis of x / r: every
//    intermediate value stays in [-1, 1], so precision does not depend on r or the degree.
//    Minimal depth. The right choice for high degrees and wide ranges.
//  - Raw: x itself, evaluated in the power basis of x at minimal depth. Constants are quantized to
//    1/q (q ~ the scale), and the term a_i x^i amplifies that by up to r^i: the error grows like
//    r^d / q, fine for the paper's degree-4 fits on [-4, 4] (r^d = 2^8) and poor for, say,
//    degree 15 on [-4, 4] (2^30).
//  - NormalizeFirst: x itself, multiplied by 1/r first (one extra level), then as Normalized.
enum class InputForm { Raw, Normalized, NormalizeFirst };

struct PolyEvalPlan {
  Basis basis = Basis::Power;   // Power: variable x; Chebyshev: variable t = x / r
  std::vector<double> coeffs;   // in that basis and variable; for monic plans, divided by `factor`
  int degree = 0;
  bool monic = false;
  double factor = 1.0;          // p(x) = factor * (value of the plan)
  double prescale = 1.0;        // NormalizeFirst: 1/r, applied to the input at the cost of a level
  int depth = 0;                // levels consumed (including the prescale's)
  int baby_steps = 0;           // basis elements T_1 .. T_{k-1} usable in linear combinations
  // Monic plans only: false leaves the final product unrelinearized (3 components), for a caller
  // that sums such outputs and relinearizes the sums instead.
  bool relinearize_last = true;
};

// Levels needed: ceil(log2(d + 1)), or ceil(log2(d)) in monic form.
int minimal_depth(int degree, bool monic);

// Throws hecnn::Error for a constant polynomial (nothing to evaluate).
PolyEvalPlan plan_polynomial(const Polynomial& p, InputForm input = InputForm::Raw, bool monic = false);

// Encrypted evaluation. Output: level = input level - plan.depth; scale = input scale (non-monic),
// or whatever the chain of squarings produced (monic: no constant multiplication is spent on it).
class PolynomialEvaluator {
 public:
  PolynomialEvaluator(const ckks::Evaluator& ev, const ckks::RelinKeys& rk) : ev_(ev), rk_(rk) {}

  ckks::Ciphertext evaluate(const ckks::Ciphertext& x, const PolyEvalPlan& plan) const;
  // The same, consuming x (no copy of it is made).
  ckks::Ciphertext evaluate(ckks::Ciphertext&& x, const PolyEvalPlan& plan) const;
  ckks::Ciphertext evaluate(const ckks::Ciphertext& x, const Polynomial& p, InputForm input = InputForm::Raw) const {
    return evaluate(x, plan_polynomial(p, input, false));
  }
  struct MonicResult {
    ckks::Ciphertext ct;  // encrypts p(x) / factor
    double factor;
  };
  MonicResult evaluate_monic(const ckks::Ciphertext& x, const Polynomial& p, InputForm input = InputForm::Raw) const {
    const PolyEvalPlan plan = plan_polynomial(p, input, true);
    return {evaluate(x, plan), plan.factor};
  }

 private:
  const ckks::Evaluator& ev_;
  const ckks::RelinKeys& rk_;
};

// The plan evaluated on doubles with exactly the operations, in the same order, that the
// encrypted evaluation performs (x is the plan's variable: x or x / r per the input form).
double simulate(const PolyEvalPlan& plan, double x);
std::vector<double> simulate(const PolyEvalPlan& plan, const std::vector<double>& xs);

// The scale the encrypted evaluation's output has for an input at `scale` and `level`, primes[l]
// being the chain's prime at level l (the rescales divide by them).
double output_scale(const PolyEvalPlan& plan, double scale, int level, const std::vector<double>& primes);

struct PolyEvalStats {
  int products = 0;          // ciphertext-ciphertext multiplications (each relinearized once)
  int constant_products = 0; // ciphertext-constant multiplications
  int rescales = 0;
};
// Operation counts of a plan (from the plaintext mirror).
PolyEvalStats count_operations(const PolyEvalPlan& plan);

}  // namespace hecnn::approx
