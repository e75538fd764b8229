#include "circuits/mod1.h"

#include <cmath>
#include <numbers>

#include "common/error.h"

namespace hecnn::circuits {

namespace {

// The scaled cosine on [-1, 1].
long double target(const EvalModOptions& o, long double x) {
  const long double two_pi = 2.0L * std::numbers::pi_v<long double>;
  return std::cos(two_pi * (static_cast<long double>(o.k) * x - 0.25L) / std::ldexp(1.0L, o.double_angles));
}

// Chebyshev interpolation at the degree + 1 Chebyshev nodes (in long double).
std::vector<double> interpolate(const EvalModOptions& o, int degree) {
  const int m = degree + 1;
  std::vector<long double> f(static_cast<std::size_t>(m));
  const long double pi = std::numbers::pi_v<long double>;
  for (int j = 0; j < m; ++j) f[static_cast<std::size_t>(j)] = target(o, std::cos(pi * (j + 0.5L) / m));
  std::vector<double> c(static_cast<std::size_t>(m));
  for (int k = 0; k < m; ++k) {
    long double s = 0;
    for (int j = 0; j < m; ++j) s += f[static_cast<std::size_t>(j)] * std::cos(pi * k * (j + 0.5L) / m);
    c[static_cast<std::size_t>(k)] = static_cast<double>((k == 0 ? 1.0L : 2.0L) * s / m);
  }
  return c;
}

double max_error(const EvalModOptions& o, const approx::Polynomial& p) {
  double worst = 0;
  constexpr int kGrid = 20000;
  for (int i = 0; i <= kGrid; ++i) {
    const double x = -1.0 + 2.0 * i / kGrid;
    worst = std::max(worst, static_cast<double>(std::fabs(static_cast<long double>(p(x)) - target(o, x))));
  }
  return worst;
}

}  // namespace

EvalMod::EvalMod(const EvalModOptions& opts) : opts_(opts) {
  if (!(opts_.k >= 1) || !std::isfinite(opts_.k)) throw Error("EvalMod: the interval K must be at least 1");
  if (opts_.double_angles < 0 || opts_.double_angles > 8) throw Error("EvalMod: between 0 and 8 double-angle steps");
  if (opts_.degree < 0 || opts_.degree > 255) throw Error("EvalMod: the degree must be between 1 and 255 (0: automatic)");
  approx::Polynomial poly;
  if (opts_.degree > 0) {
    poly = approx::Polynomial::chebyshev(interpolate(opts_, opts_.degree), 1.0);
    interpolation_error_ = max_error(opts_, poly);
  } else {
    bool found = false;
    for (int d = 3; d <= 255 && !found; d += 2) {  // the target is neither even nor odd: any degree
      poly = approx::Polynomial::chebyshev(interpolate(opts_, d), 1.0);
      interpolation_error_ = max_error(opts_, poly);
      if (interpolation_error_ <= opts_.target_error) {
        found = true;
        opts_.degree = d;
      }
    }
    if (!found) throw Error("EvalMod: no degree up to 255 interpolates the scaled cosine to the target error");
  }
  plan_ = approx::plan_polynomial(poly, approx::InputForm::Normalized, false);
}

ckks::Ciphertext EvalMod::apply(const ckks::Evaluator& ev, const ckks::RelinKeys& rk, ckks::Ciphertext x) const {
  if (x.level() < static_cast<std::size_t>(depth())) {
    throw Error("EvalMod: the ciphertext is at level " + std::to_string(x.level()) + ", EvalMod needs " + std::to_string(depth()));
  }
  const approx::PolynomialEvaluator pe(ev, rk);
  ckks::Ciphertext y = pe.evaluate(std::move(x), plan_);
  ckks::Ciphertext sq;
  for (int i = 0; i < opts_.double_angles; ++i) {  // cos(2a) = 2 cos(a)^2 - 1
    ev.square(y, sq);
    ev.relinearize_rescale(sq, rk, y);
    ev.multiply_integer_inplace(y, 2);
    ev.add_const_inplace(y, -1.0);
  }
  return y;
}

double EvalMod::output_scale(double scale, int level, const std::vector<double>& primes) const {
  double s = approx::output_scale(plan_, scale, level, primes);
  int l = level - plan_.depth;
  for (int i = 0; i < opts_.double_angles; ++i, --l) s = s * s / primes.at(static_cast<std::size_t>(l));
  return s;
}

double EvalMod::simulate(double x) const {
  double y = approx::simulate(plan_, x);
  for (int i = 0; i < opts_.double_angles; ++i) y = 2 * y * y - 1;
  return y;
}

}  // namespace hecnn::circuits
