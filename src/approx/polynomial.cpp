#include "approx/polynomial.h"

#include <cmath>
#include <sstream>

#include "common/error.h"

namespace hecnn::approx {

std::string to_string(Basis b) { return b == Basis::Power ? "power" : "chebyshev"; }

Polynomial::Polynomial(Basis basis, std::vector<double> coeffs, double range)
    : basis_(basis), coeffs_(std::move(coeffs)), range_(range) {
  if (coeffs_.empty()) throw Error("polynomial: no coefficients");
  for (double c : coeffs_) {
    if (!std::isfinite(c)) throw Error("polynomial: coefficient is not finite");
  }
  if (!(range_ > 0) || !std::isfinite(range_)) throw Error("polynomial: range must be a positive number");
}

int Polynomial::degree() const {
  for (std::size_t i = coeffs_.size(); i-- > 1;) {
    if (coeffs_[i] != 0) return static_cast<int>(i);
  }
  return 0;
}

double Polynomial::operator()(double x) const {
  const int d = degree();
  if (basis_ == Basis::Power) {
    double acc = coeffs_[d];
    for (int i = d - 1; i >= 0; --i) acc = acc * x + coeffs_[i];
    return acc;
  }
  // Clenshaw: b_k = c_k + 2t b_{k+1} - b_{k+2}; p = c_0 + t b_1 - b_2.
  const double t = x / range_;
  double b1 = 0, b2 = 0;
  for (int k = d; k >= 1; --k) {
    const double b = coeffs_[k] + 2 * t * b1 - b2;
    b2 = b1;
    b1 = b;
  }
  return coeffs_[0] + t * b1 - b2;
}

std::vector<double> Polynomial::operator()(const std::vector<double>& xs) const {
  std::vector<double> out(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) out[i] = (*this)(xs[i]);
  return out;
}

std::vector<double> chebyshev_to_power(const std::vector<double>& c) {
  const std::size_t n = c.size();
  std::vector<double> out(n, 0.0);
  std::vector<double> tm1(n, 0.0), t(n, 0.0);  // T_{k-1}, T_k in the power basis
  tm1[0] = 1;
  if (n > 0) out[0] += c[0];
  if (n > 1) {
    t[1] = 1;
    out[1] += c[1];
  }
  for (std::size_t k = 2; k < n; ++k) {
    std::vector<double> next(n, 0.0);
    for (std::size_t i = 0; i + 1 < n; ++i) next[i + 1] += 2 * t[i];
    for (std::size_t i = 0; i < n; ++i) next[i] -= tm1[i];
    for (std::size_t i = 0; i < n; ++i) out[i] += c[k] * next[i];
    tm1 = std::move(t);
    t = std::move(next);
  }
  return out;
}

std::vector<double> power_to_chebyshev(const std::vector<double>& a) {
  // Horner in the Chebyshev basis: acc <- acc * t + a_i, with t T_0 = T_1 and
  // t T_j = (T_{j+1} + T_{j-1}) / 2.
  const std::size_t n = a.size();
  std::vector<double> acc(n + 1, 0.0);
  for (std::size_t i = n; i-- > 0;) {
    std::vector<double> next(n + 1, 0.0);
    for (std::size_t j = 0; j < n; ++j) {
      if (acc[j] == 0) continue;
      if (j == 0) {
        next[1] += acc[0];
      } else {
        next[j + 1] += acc[j] / 2;
        next[j - 1] += acc[j] / 2;
      }
    }
    next[0] += a[i];
    acc = std::move(next);
  }
  acc.resize(n);
  return acc;
}

Polynomial Polynomial::to_power() const {
  if (basis_ == Basis::Power) return *this;
  std::vector<double> a = chebyshev_to_power(coeffs_);  // in t = x / r
  double s = 1;
  for (auto& v : a) {
    v /= s;
    s *= range_;
  }
  return Polynomial(Basis::Power, std::move(a), range_);
}

Polynomial Polynomial::to_chebyshev() const {
  if (basis_ == Basis::Chebyshev) return *this;
  std::vector<double> a = coeffs_;
  double s = 1;
  for (auto& v : a) {
    v *= s;
    s *= range_;
  }
  return Polynomial(Basis::Chebyshev, power_to_chebyshev(a), range_);
}

Polynomial Polynomial::normalized() const {
  if (basis_ == Basis::Chebyshev) return Polynomial(Basis::Chebyshev, coeffs_, 1.0);
  std::vector<double> a = coeffs_;
  double s = 1;
  for (auto& v : a) {
    v *= s;
    s *= range_;
  }
  return Polynomial(Basis::Power, std::move(a), 1.0);
}

std::string Polynomial::to_string(int precision) const {
  std::ostringstream os;
  os.precision(precision);
  bool first = true;
  std::ostringstream rs;
  rs << range_;
  for (int i = 0; i <= degree(); ++i) {
    const double c = coeffs_[static_cast<std::size_t>(i)];
    if (c == 0 && !(i == 0 && degree() == 0)) continue;
    if (first) {
      os << c;
    } else {
      os << (c < 0 ? " - " : " + ") << std::fabs(c);
    }
    first = false;
    if (i == 0) continue;
    if (basis_ == Basis::Power) {
      os << "*x";
      if (i > 1) os << "^" << i;
    } else {
      os << "*T" << i << (range_ == 1.0 ? "(x)" : "(x/" + rs.str() + ")");
    }
  }
  return os.str();
}

}  // namespace hecnn::approx
