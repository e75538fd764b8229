#pragma once
// A real polynomial on a symmetric interval [-r, r], in the power basis (sum a_i x^i) or the
// Chebyshev basis (sum c_i T_i(x / r)). The same object feeds the plaintext reference (operator())
// and the encrypted evaluation (approx/he_eval.h), so the two use identical coefficients.
#include <string>
#include <vector>

namespace hecnn::approx {

enum class Basis { Power, Chebyshev };

std::string to_string(Basis b);

class Polynomial {
 public:
  Polynomial() = default;
  // Throws hecnn::Error if coeffs is empty, a coefficient is not finite, or range <= 0.
  Polynomial(Basis basis, std::vector<double> coeffs, double range);
  static Polynomial power(std::vector<double> coeffs, double range) { return {Basis::Power, std::move(coeffs), range}; }
  static Polynomial chebyshev(std::vector<double> coeffs, double range) {
    return {Basis::Chebyshev, std::move(coeffs), range};
  }

  Basis basis() const { return basis_; }
  const std::vector<double>& coeffs() const { return coeffs_; }
  // Half-width r of the interval [-r, r] (for the Chebyshev basis, the variable is x / r).
  double range() const { return range_; }
  // Index of the highest non-zero coefficient (0 for the zero polynomial).
  int degree() const;
  // Coefficient of the highest-degree basis element (a_d or c_d).
  double leading() const { return coeffs_.at(static_cast<std::size_t>(degree())); }

  // p(x): Horner in the power basis, Clenshaw in the Chebyshev basis.
  double operator()(double x) const;
  std::vector<double> operator()(const std::vector<double>& xs) const;

  Polynomial to_power() const;
  Polynomial to_chebyshev() const;
  Polynomial in_basis(Basis b) const { return b == Basis::Power ? to_power() : to_chebyshev(); }
  // The same function of t = x / r (range 1): p(r t).
  Polynomial normalized() const;

  // "0.03347 + 0.5*x + 0.19566*x^2 - 0.005075*x^4" (power) or "... + c*T3(x/4)" (Chebyshev).
  std::string to_string(int precision = 10) const;

 private:
  Basis basis_ = Basis::Power;
  std::vector<double> coeffs_{0.0};
  double range_ = 1.0;
};

// Chebyshev coefficients (in t) -> power coefficients (in t), and back. Exact recurrences.
std::vector<double> chebyshev_to_power(const std::vector<double>& c);
std::vector<double> power_to_chebyshev(const std::vector<double>& a);

}  // namespace hecnn::approx
