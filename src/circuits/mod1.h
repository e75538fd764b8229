#pragma once
// EvalMod: the homomorphic reduction modulo q_0 of bootstrapping. After ModRaise and CoeffsToSlots
// a slot holds x = t / (q_0 K) with t = m + q_0 I, |I| < K, |m| << q_0; EvalMod returns
//   sin(2 pi K x) = sin(2 pi t / q_0) = sin(2 pi m / q_0)   (~ 2 pi m / q_0),
// as the scaled cosine cos(2 pi (K x - 1/4) / 2^r) by its Chebyshev interpolant in x (evaluated at
// minimal depth by approx::PolynomialEvaluator), followed by r double-angle steps
// cos(2a) = 2 cos(a)^2 - 1 (Han-Ki 2020; Lattigo's circuits/ckks/mod1, OpenFHE's EvalBootstrap).
// The double angles shrink the interval the polynomial must cover 2^r times (a lower degree), at
// one level each and an error that grows up to 4x per step.
//
// No arcsine correction, and q_0 / scale = 2^10 (the default and the boot-n65536 preset): a trade-off.
// EvalMod's error in units of t / q_0 is set by its slope (2 pi K) times the noise of x at a 60-bit
// scale; the message sees it multiplied by q_0 / scale, so a small ratio keeps random values precise
// (20 bits at N = 2^16, full slots). The price is the sine's curvature: a coefficient m comes out
// as m (1 - (2 pi m / q_0)^2 / 6), a relative 2^-17.3 for the largest coefficients (a constant
// vector, whose coefficient 0 is the value itself); random values have coefficients 1/sqrt(N) that
// size and do not see it. The arcsine correction (y + y^3 / 6) would remove it for 2 levels.

#include <vector>

#include "approx/poly_eval.h"
#include "ckks/ckks.h"

namespace hecnn::circuits {

struct EvalModOptions {
  double k = 17;                // interval [-K, K] of t / q_0
  int double_angles = 3;        // r
  int degree = 0;               // of the interpolant; 0: the smallest reaching target_error
  double target_error = 0x1p-48;  // largest interpolation error on [-1, 1] (for degree 0)
};

class EvalMod {
 public:
  // Throws hecnn::Error for K < 1, r outside [0, 8], a degree outside [1, 255] or no degree up to 255
  // reaching the target.
  explicit EvalMod(const EvalModOptions& opts);

  // x (scale s, level l, values in [-1, 1]) -> sin(2 pi K x) at level l - depth(); the scale follows
  // the squarings: s^2 / q after each double angle (scale() tells it exactly for a given start).
  ckks::Ciphertext apply(const ckks::Evaluator& ev, const ckks::RelinKeys& rk, ckks::Ciphertext x) const;
  // The output scale for an input at `scale` and `level` (primes: the chain's primes as doubles).
  double output_scale(double scale, int level, const std::vector<double>& primes) const;

  int depth() const { return plan_.depth + opts_.double_angles; }
  int degree() const { return plan_.degree; }
  const EvalModOptions& options() const { return opts_; }
  // The largest |interpolant - scaled cosine| over a fine grid of [-1, 1].
  double interpolation_error() const { return interpolation_error_; }
  const approx::PolyEvalPlan& plan() const { return plan_; }
  // The plaintext mirror (the same polynomial and steps on doubles).
  double simulate(double x) const;

 private:
  EvalModOptions opts_;
  approx::PolyEvalPlan plan_;
  double interpolation_error_ = 0;
};

}  // namespace hecnn::circuits
