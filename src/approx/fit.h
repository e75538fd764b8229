#pragma once
// Fitting polynomials to activation functions on [-r, r].
#include <string>

#include "approx/activation.h"
#include "approx/polynomial.h"

namespace hecnn::approx {

enum class FitMethod {
  LeastSquares,            // "lsq": discrete fit on `points` evenly spaced points of [-r, r] (the paper's)
  LeastSquaresContinuous,  // "lsq-continuous": minimizes the integral of (f - p)^2 over [-r, r]
  LeastSquaresNormal,      // "lsq-normal": minimizes E[(f(X) - p(X))^2] for X ~ N(0, sigma^2)
  Chebyshev,               // "chebyshev": interpolation at the degree+1 Chebyshev nodes of [-r, r]
  Minimax,                 // "minimax": smallest maximum error on [-r, r] (Remez exchange)
};

std::string to_string(FitMethod m);
// Accepts the names above; throws hecnn::Error listing them otherwise.
FitMethod parse_fit_method(const std::string& name);

constexpr int kMinDegree = 1;
constexpr int kMaxDegree = 32;
// Bounds on the other fit parameters, so that a specification read from a file (a model's metadata)
// cannot make a fit cost unbounded time or memory: lsq points, the half-width r of the interval,
// lsq-normal's sigma, and the length of a specification string.
constexpr int kMaxPoints = 100'000;
constexpr double kMaxRange = 1e4;
constexpr double kMaxSigma = 1e3;
constexpr std::size_t kMaxSpecLength = 256;

struct FitOptions {
  FitMethod method = FitMethod::LeastSquares;
  int degree = 4;
  double range = 4.0;   // r: the interval is [-r, r]
  int points = 1000;    // lsq: number of evenly spaced points, endpoints included
  double sigma = 1.0;   // lsq-normal: standard deviation of the input distribution
};

struct FitErrors {
  double max_abs = 0;     // max |f - p| over [-r, r]
  double argmax = 0;      // where it is reached
  double rms = 0;         // sqrt(1/(2r) * integral over [-r, r] of (f - p)^2)
  double normal_mse = 0;  // E[(f(X) - p(X))^2], X ~ N(0, 1), over the whole real line
};

struct Fit {
  std::string function;
  FitOptions options;
  Polynomial power;      // sum a_i x^i
  Polynomial chebyshev;  // sum c_i T_i(x / r)
  FitErrors errors;
  int remez_iterations = 0;  // minimax only
};

// Validates the options (degree in [kMinDegree, kMaxDegree], r in (0, kMaxRange], lsq points in
// [degree + 1, kMaxPoints], sigma in (0, kMaxSigma]) with messages naming the bad value.
void validate(const FitOptions& o);

Fit fit(const ActivationFunction& f, const FitOptions& o);
inline Fit fit(const std::string& fn, const FitOptions& o) { return fit(find_activation(fn), o); }

FitErrors fit_errors(const ActivationFunction& f, const Polynomial& p, double range);

// Root-mean-square error on the `points` evenly spaced points of [-r, r] (the lsq criterion).
double discrete_rms(const ActivationFunction& f, const Polynomial& p, double range, int points);

// Activation specifications as used by models and the command line: "swish:deg4:range4" with an
// optional method ("swish:deg4:range6:minimax"); fields may come in any order after the name.
struct ActivationSpec {
  std::string function;
  FitOptions options;
  std::string to_string() const;
};
ActivationSpec parse_activation_spec(const std::string& spec);

}  // namespace hecnn::approx
