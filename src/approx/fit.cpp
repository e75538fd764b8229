#include "approx/fit.h"

#include <Eigen/Dense>
#include <algorithm>
#include <functional>
#include <cmath>
#include <numbers>
#include <sstream>

#include "common/error.h"

namespace hecnn::approx {

namespace {

constexpr double kPi = std::numbers::pi;
// The normal-weighted integrals run over [-kNormalSpan, kNormalSpan] standard deviations; the
// tail beyond carries a weight below 1e-32, negligible against any polynomial of degree <= 32.
constexpr double kNormalSpan = 12.0;

struct Quadrature {
  std::vector<double> x, w;
};

// Gauss-Legendre nodes and weights on [-1, 1] (Newton iteration on P_n).
const Quadrature& gauss_legendre16() {
  static const Quadrature q = [] {
    constexpr int n = 16;
    Quadrature r;
    for (int i = 0; i < n; ++i) {
      double x = std::cos(kPi * (i + 0.75) / (n + 0.5));
      double dp = 0;
      for (int it = 0; it < 100; ++it) {
        double p0 = 1, p1 = x;
        for (int k = 2; k <= n; ++k) {
          const double p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
          p0 = p1;
          p1 = p2;
        }
        dp = n * (x * p1 - p0) / (x * x - 1);
        const double dx = p1 / dp;
        x -= dx;
        if (std::fabs(dx) < 1e-16) break;
      }
      r.x.push_back(x);
      r.w.push_back(2 / ((1 - x * x) * dp * dp));
    }
    return r;
  }();
  return q;
}

// Composite Gauss-Legendre on [a, b] with panel edges at the function's kinks.
Quadrature composite(double a, double b, const std::vector<double>& kinks, int panels) {
  std::vector<double> edges{a};
  for (double k : kinks) {
    if (k > a && k < b) edges.push_back(k);
  }
  edges.push_back(b);
  std::sort(edges.begin(), edges.end());
  const auto& gl = gauss_legendre16();
  Quadrature q;
  for (std::size_t s = 0; s + 1 < edges.size(); ++s) {
    const double lo = edges[s], hi = edges[s + 1];
    const int np = std::max(1, static_cast<int>(std::ceil(panels * (hi - lo) / (b - a))));
    const double h = (hi - lo) / np;
    for (int p = 0; p < np; ++p) {
      const double c = lo + (p + 0.5) * h;
      for (std::size_t i = 0; i < gl.x.size(); ++i) {
        q.x.push_back(c + gl.x[i] * h / 2);
        q.w.push_back(gl.w[i] * h / 2);
      }
    }
  }
  return q;
}

double normal_density(double x, double sigma) {
  return std::exp(-0.5 * (x / sigma) * (x / sigma)) / (sigma * std::sqrt(2 * kPi));
}

// T_0(t) .. T_d(t).
void chebyshev_values(double t, int d, double* out) {
  out[0] = 1;
  if (d >= 1) out[1] = t;
  for (int k = 2; k <= d; ++k) out[k] = 2 * t * out[k - 1] - out[k - 2];
}

// Minimizes sum_i w_i (y_i - p(x_i))^2 over polynomials of degree d, written in the Chebyshev
// basis of x / half_width (well conditioned), solved by column-pivoting Householder QR.
Polynomial weighted_least_squares(const std::vector<double>& x, const std::vector<double>& y,
                                  const std::vector<double>& w, int d, double half_width) {
  const auto m = static_cast<Eigen::Index>(x.size());
  Eigen::MatrixXd a(m, d + 1);
  Eigen::VectorXd b(m);
  std::vector<double> t(static_cast<std::size_t>(d + 1));
  for (Eigen::Index i = 0; i < m; ++i) {
    const double sw = std::sqrt(w[static_cast<std::size_t>(i)]);
    chebyshev_values(x[static_cast<std::size_t>(i)] / half_width, d, t.data());
    for (int j = 0; j <= d; ++j) a(i, j) = sw * t[static_cast<std::size_t>(j)];
    b(i) = sw * y[static_cast<std::size_t>(i)];
  }
  const Eigen::VectorXd c = a.colPivHouseholderQr().solve(b);
  return Polynomial::chebyshev(std::vector<double>(c.data(), c.data() + c.size()), half_width);
}

// The same polynomial written in the Chebyshev basis of x / r.
Polynomial rebase(const Polynomial& p, double r) {
  if (p.basis() == Basis::Chebyshev && p.range() == r) return p;
  const Polynomial pw = p.to_power();
  return Polynomial::power(pw.coeffs(), r).to_chebyshev();
}

std::vector<double> evenly_spaced(double r, int points) {
  std::vector<double> x(static_cast<std::size_t>(points));
  for (int i = 0; i < points; ++i) x[static_cast<std::size_t>(i)] = -r + 2 * r * i / (points - 1);
  return x;
}

Polynomial fit_chebyshev_interpolation(const ActivationFunction& f, int d, double r) {
  const int n = d + 1;
  std::vector<double> c(static_cast<std::size_t>(n), 0.0);
  for (int k = 0; k < n; ++k) {
    const double theta = kPi * (k + 0.5) / n;
    const double fk = f.eval(r * std::cos(theta));
    for (int j = 0; j < n; ++j) c[static_cast<std::size_t>(j)] += fk * std::cos(j * theta);
  }
  for (auto& v : c) v *= 2.0 / n;
  c[0] /= 2;
  return Polynomial::chebyshev(std::move(c), r);
}

// Position of the largest |e| near x0 (golden-section search on [lo, hi]).
double refine_extremum(const std::function<double(double)>& abs_err, double lo, double hi) {
  const double g = (std::sqrt(5.0) - 1) / 2;
  double a = lo, b = hi;
  double c = b - g * (b - a), d = a + g * (b - a);
  double fc = abs_err(c), fd = abs_err(d);
  for (int it = 0; it < 60 && b - a > 1e-15 * (1 + std::fabs(a)); ++it) {
    if (fc > fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = abs_err(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = abs_err(d);
    }
  }
  const double m = (a + b) / 2;
  double best = m, fbest = abs_err(m);
  for (double x : {lo, hi}) {
    if (abs_err(x) > fbest) {
      fbest = abs_err(x);
      best = x;
    }
  }
  return best;
}

struct Extremum {
  double x, e;
};

// Local extrema of e, one per run of equal sign over [lo, hi], on a fine grid refined by golden
// section.
std::vector<Extremum> alternating_extrema(const std::function<double(double)>& err, double lo, double hi, int m_basis) {
  const int m = std::max(20000, 500 * (m_basis + 2));
  const double h = (hi - lo) / m;
  std::vector<Extremum> out;
  int run_best = -1;
  double run_abs = -1;
  auto flush = [&]() {
    if (run_best < 0) return;
    const double x0 = lo + run_best * h;
    auto abs_err = [&](double x) { return std::fabs(err(x)); };
    const double x = refine_extremum(abs_err, std::max(lo, x0 - h), std::min(hi, x0 + h));
    out.push_back({x, err(x)});
  };
  int sign = 0;
  for (int i = 0; i <= m; ++i) {
    const double x = i == m ? hi : lo + i * h;
    const double e = err(x);
    const int s = e > 0 ? 1 : (e < 0 ? -1 : 0);
    if (s == 0) continue;
    if (s != sign) {
      flush();
      sign = s;
      run_best = -1;
      run_abs = -1;
    }
    if (std::fabs(e) > run_abs) {
      run_abs = std::fabs(e);
      run_best = i;
    }
  }
  flush();
  return out;
}

// Remez exchange for the best uniform approximation of g on [lo, hi] by sum_{j in basis} c_j
// T_j(x / r). The basis must satisfy the Haar condition on [lo, hi] (all of T_0..T_d on [-r, r];
// only even or only odd ones on [0, r], used for symmetric functions). Returns coefficients
// indexed like T (zeros outside the basis).
std::vector<double> remez(const std::function<double(double)>& g, const std::vector<int>& basis, double lo,
                          double hi, double r, int* iterations) {
  const int m = static_cast<int>(basis.size());
  const int n = m + 1;
  const int d = basis.back();
  // Chebyshev extrema of [lo, hi]; for odd bases (which all vanish at 0) keep away from 0.
  const bool odd = basis.front() % 2 == 1 && lo == 0;
  std::vector<double> ref(static_cast<std::size_t>(n));
  for (int k = 0; k < n; ++k) {
    const double c = odd ? std::cos(kPi * (n - 1 - k) / (2.0 * n)) : (1 - std::cos(kPi * k / (n - 1))) / 2;
    ref[static_cast<std::size_t>(k)] = odd ? hi * c : lo + (hi - lo) * c;
  }
  std::vector<double> tv(static_cast<std::size_t>(d + 1)), best, coeffs(static_cast<std::size_t>(d + 1));
  double best_max = 1e300, scale = 0;
  for (double x : ref) scale = std::max(scale, std::fabs(g(x)));
  auto poly = [&](const std::vector<double>& c, double x) {
    chebyshev_values(x / r, d, tv.data());
    double v = 0;
    for (int j : basis) v += c[static_cast<std::size_t>(j)] * tv[static_cast<std::size_t>(j)];
    return v;
  };
  *iterations = 0;
  for (int it = 1; it <= 100; ++it) {
    *iterations = it;
    Eigen::MatrixXd a(n, n);
    Eigen::VectorXd b(n);
    for (int k = 0; k < n; ++k) {
      const double x = ref[static_cast<std::size_t>(k)];
      chebyshev_values(x / r, d, tv.data());
      for (int j = 0; j < m; ++j) a(k, j) = tv[static_cast<std::size_t>(basis[static_cast<std::size_t>(j)])];
      a(k, m) = (k % 2 == 0) ? 1.0 : -1.0;
      b(k) = g(x);
    }
    const Eigen::VectorXd sol = a.fullPivLu().solve(b);
    std::fill(coeffs.begin(), coeffs.end(), 0.0);
    for (int j = 0; j < m; ++j) coeffs[static_cast<std::size_t>(basis[static_cast<std::size_t>(j)])] = sol(j);
    auto err = [&](double x) { return g(x) - poly(coeffs, x); };
    std::vector<Extremum> ext = alternating_extrema(err, lo, hi, m);
    double emax = 0;
    for (const auto& e : ext) emax = std::max(emax, std::fabs(e.e));
    if (emax < best_max) {
      best = coeffs;
      best_max = emax;
    }
    if (emax <= 1e-14 * (1 + scale)) break;           // g is (numerically) in the span of the basis
    if (static_cast<int>(ext.size()) < n) break;      // no full alternation: keep the best seen
    // Keep n alternating extrema, dropping the smallest ones (never the global maximum).
    while (static_cast<int>(ext.size()) > n) {
      std::size_t i = 0;
      for (std::size_t k = 1; k < ext.size(); ++k) {
        if (std::fabs(ext[k].e) < std::fabs(ext[i].e)) i = k;
      }
      const bool end = i == 0 || i + 1 == ext.size();
      if (end || static_cast<int>(ext.size()) == n + 1) {
        // Removing an interior point would break alternation: drop the smaller end instead.
        if (!end) i = std::fabs(ext.front().e) < std::fabs(ext.back().e) ? 0 : ext.size() - 1;
        ext.erase(ext.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        const std::size_t j = std::fabs(ext[i - 1].e) < std::fabs(ext[i + 1].e) ? i - 1 : i + 1;
        ext.erase(ext.begin() + static_cast<std::ptrdiff_t>(std::max(i, j)));
        ext.erase(ext.begin() + static_cast<std::ptrdiff_t>(std::min(i, j)));
      }
    }
    double emin = emax;
    for (const auto& e : ext) emin = std::min(emin, std::fabs(e.e));
    for (int k = 0; k < n; ++k) ref[static_cast<std::size_t>(k)] = ext[static_cast<std::size_t>(k)].x;
    if (emax - emin <= 1e-10 * emax) break;  // levelled: the exchange has converged
  }
  return best;
}

// Minimax on [-r, r]. Functions that are even up to a linear term (Swish, ReLU, GELU, softplus,
// square) or odd up to a constant (tanh, sigmoid) have a best approximation with the same
// symmetry; the exchange then runs on [0, r] over the even (odd) Chebyshev polynomials, where the
// plain exchange on [-r, r] would stall on its symmetric, degenerate references.
Polynomial fit_minimax(const ActivationFunction& f, int d, double r, int* iterations) {
  auto even = [&](double x) { return (f.eval(x) + f.eval(-x)) / 2; };
  auto odd = [&](double x) { return (f.eval(x) - f.eval(-x)) / 2; };
  const double k = odd(r) / r, c0 = even(0);
  bool odd_is_linear = true, even_is_constant = true;
  double mag = 1e-300;
  for (int i = 1; i <= 64; ++i) mag = std::max(mag, std::fabs(f.eval(r * i / 64)));
  for (int i = 1; i <= 64; ++i) {
    const double x = r * i / 64;
    odd_is_linear = odd_is_linear && std::fabs(odd(x) - k * x) <= 1e-12 * mag;
    even_is_constant = even_is_constant && std::fabs(even(x) - c0) <= 1e-12 * mag;
  }
  std::vector<double> c;
  if (odd_is_linear && !even_is_constant) {
    std::vector<int> basis;
    for (int j = 0; j <= d; j += 2) basis.push_back(j);
    c = remez(even, basis, 0, r, r, iterations);
    if (d >= 1) c[1] = k * r;  // k x = k r T_1(x / r)
  } else if (even_is_constant && !odd_is_linear && d >= 1) {
    std::vector<int> basis;
    for (int j = 1; j <= d; j += 2) basis.push_back(j);
    c = remez(odd, basis, 0, r, r, iterations);
    c[0] = c0;
  } else {
    std::vector<int> basis;
    for (int j = 0; j <= d; ++j) basis.push_back(j);
    c = remez([&](double x) { return f.eval(x); }, basis, -r, r, r, iterations);
  }
  return Polynomial::chebyshev(std::move(c), r);
}

}  // namespace

std::string to_string(FitMethod m) {
  switch (m) {
    case FitMethod::LeastSquares: return "lsq";
    case FitMethod::LeastSquaresContinuous: return "lsq-continuous";
    case FitMethod::LeastSquaresNormal: return "lsq-normal";
    case FitMethod::Chebyshev: return "chebyshev";
    case FitMethod::Minimax: return "minimax";
  }
  return "?";
}

FitMethod parse_fit_method(const std::string& name) {
  for (auto m : {FitMethod::LeastSquares, FitMethod::LeastSquaresContinuous, FitMethod::LeastSquaresNormal,
                 FitMethod::Chebyshev, FitMethod::Minimax}) {
    if (name == to_string(m)) return m;
  }
  if (name == "remez") return FitMethod::Minimax;
  throw Error("unknown fit method '" + name + "' (known: lsq, lsq-continuous, lsq-normal, chebyshev, minimax)");
}

void validate(const FitOptions& o) {
  if (o.degree < kMinDegree || o.degree > kMaxDegree) {
    throw Error("degree " + std::to_string(o.degree) + " is out of range (" + std::to_string(kMinDegree) + " to " +
                std::to_string(kMaxDegree) + ")");
  }
  if (!(o.range > 0) || !std::isfinite(o.range)) {
    std::ostringstream os;
    os << "range r must be a positive number (the interval is [-r, r]); got " << o.range;
    throw Error(os.str());
  }
  if (o.range > kMaxRange) throw Error("range r is too large (at most 1e4)");
  if (o.method == FitMethod::LeastSquares && (o.points < o.degree + 1 || o.points > kMaxPoints)) {
    throw Error("lsq needs between degree+1 = " + std::to_string(o.degree + 1) + " and " + std::to_string(kMaxPoints) +
                " points; got " + std::to_string(o.points));
  }
  if (o.method == FitMethod::LeastSquaresNormal && (!(o.sigma > 0) || !std::isfinite(o.sigma) || o.sigma > kMaxSigma)) {
    throw Error("lsq-normal needs a standard deviation sigma in (0, 1000]");
  }
}

FitErrors fit_errors(const ActivationFunction& f, const Polynomial& p, double r) {
  FitErrors e;
  auto err = [&](double x) { return f.eval(x) - p(x); };
  constexpr int m = 20000;
  int best = 0;
  for (int i = 0; i <= m; ++i) {
    const double x = -r + 2 * r * i / m;
    const double v = std::fabs(err(x));
    if (v > e.max_abs) {
      e.max_abs = v;
      best = i;
    }
  }
  const double h = 2 * r / m, x0 = -r + best * h;
  e.argmax = refine_extremum([&](double x) { return std::fabs(err(x)); }, std::max(-r, x0 - h), std::min(r, x0 + h));
  e.max_abs = std::max(e.max_abs, std::fabs(err(e.argmax)));
  const Quadrature q = composite(-r, r, f.kinks, 256);
  double s = 0;
  for (std::size_t i = 0; i < q.x.size(); ++i) s += q.w[i] * err(q.x[i]) * err(q.x[i]);
  e.rms = std::sqrt(s / (2 * r));
  const Quadrature qn = composite(-kNormalSpan, kNormalSpan, f.kinks, 256);
  double sn = 0;
  for (std::size_t i = 0; i < qn.x.size(); ++i) sn += qn.w[i] * normal_density(qn.x[i], 1.0) * err(qn.x[i]) * err(qn.x[i]);
  e.normal_mse = sn;
  return e;
}

double discrete_rms(const ActivationFunction& f, const Polynomial& p, double range, int points) {
  double s = 0;
  for (double x : evenly_spaced(range, points)) s += (f.eval(x) - p(x)) * (f.eval(x) - p(x));
  return std::sqrt(s / points);
}

Fit fit(const ActivationFunction& f, const FitOptions& o) {
  validate(o);
  const double r = o.range;
  Fit out;
  out.function = f.name;
  out.options = o;
  Polynomial cheb;
  switch (o.method) {
    case FitMethod::LeastSquares: {
      const std::vector<double> x = evenly_spaced(r, o.points);
      std::vector<double> y(x.size()), w(x.size(), 1.0);
      for (std::size_t i = 0; i < x.size(); ++i) y[i] = f.eval(x[i]);
      cheb = weighted_least_squares(x, y, w, o.degree, r);
      break;
    }
    case FitMethod::LeastSquaresContinuous: {
      const Quadrature q = composite(-r, r, f.kinks, 64 + 4 * o.degree);
      std::vector<double> y(q.x.size());
      for (std::size_t i = 0; i < q.x.size(); ++i) y[i] = f.eval(q.x[i]);
      cheb = weighted_least_squares(q.x, y, q.w, o.degree, r);
      break;
    }
    case FitMethod::LeastSquaresNormal: {
      // Same quadrature as fit_errors' normal_mse, so with sigma = 1 the fit is optimal for it.
      const double span = kNormalSpan * o.sigma;
      const Quadrature q = composite(-span, span, f.kinks, 256);
      std::vector<double> y(q.x.size()), w(q.x.size());
      for (std::size_t i = 0; i < q.x.size(); ++i) {
        y[i] = f.eval(q.x[i]);
        w[i] = q.w[i] * normal_density(q.x[i], o.sigma);
      }
      cheb = rebase(weighted_least_squares(q.x, y, w, o.degree, span), r);
      break;
    }
    case FitMethod::Chebyshev:
      cheb = fit_chebyshev_interpolation(f, o.degree, r);
      break;
    case FitMethod::Minimax:
      cheb = fit_minimax(f, o.degree, r, &out.remez_iterations);
      break;
  }
  // Keep exactly degree+1 coefficients in both bases.
  std::vector<double> c = cheb.coeffs();
  c.resize(static_cast<std::size_t>(o.degree + 1), 0.0);
  // Coefficients that a symmetric fit makes zero come out as ~1e-17 rounding noise; clear those
  // below 1e-13 of the largest contribution on [-r, r] (in both bases) so printed forms stay clean.
  double cmax = 0;
  for (double v : c) cmax = std::max(cmax, std::fabs(v));
  for (auto& v : c) {
    if (std::fabs(v) < 1e-13 * cmax) v = 0;
  }
  out.chebyshev = Polynomial::chebyshev(c, r);
  std::vector<double> a = out.chebyshev.to_power().coeffs();
  double biggest = 0;
  for (std::size_t i = 0; i < a.size(); ++i) biggest = std::max(biggest, std::fabs(a[i]) * std::pow(r, i));
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::fabs(a[i]) * std::pow(r, i) < 1e-13 * biggest) a[i] = 0;
  }
  out.power = Polynomial::power(std::move(a), r);
  out.errors = fit_errors(f, out.power, r);
  return out;
}

std::string ActivationSpec::to_string() const {
  std::ostringstream os;
  os << function << ":deg" << options.degree << ":range" << options.range;
  if (options.method != FitMethod::LeastSquares) os << ":" << approx::to_string(options.method);
  if (options.method == FitMethod::LeastSquares && options.points != 1000) os << ":points" << options.points;
  if (options.method == FitMethod::LeastSquaresNormal && options.sigma != 1.0) os << ":sigma" << options.sigma;
  return os.str();
}

ActivationSpec parse_activation_spec(const std::string& spec) {
  // Also accepts PP-CNN's names: swish_rg4_deg4.
  if (spec.size() > kMaxSpecLength) {
    throw Error("activation specification of " + std::to_string(spec.size()) + " characters (at most " +
                std::to_string(kMaxSpecLength) + ")");
  }
  const char sep = spec.find(':') == std::string::npos && spec.find("_rg") != std::string::npos ? '_' : ':';
  std::vector<std::string> parts;
  std::stringstream ss(spec);
  for (std::string p; std::getline(ss, p, sep);) parts.push_back(p);
  if (parts.empty() || parts[0].empty()) throw Error("empty activation specification");
  ActivationSpec out;
  out.function = find_activation(parts[0]).name;
  auto number = [&](const std::string& part, std::size_t skip) {
    const std::string v = part.substr(skip);
    std::size_t used = 0;
    double d = 0;
    try {
      d = std::stod(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != v.size()) {
      throw Error("activation '" + spec + "': cannot read a number in '" + part + "'");
    }
    return d;
  };
  // Degree and points: whole numbers, range-checked before the conversion to int.
  auto integer = [&](const std::string& part, std::size_t skip, const char* what, int lo, int hi) {
    const double d = number(part, skip);
    if (d != std::floor(d)) throw Error("activation '" + spec + "': the " + what + " in '" + part + "' is not a whole number");
    if (d < lo || d > hi) {
      throw Error("activation '" + spec + "': " + what + " " + part.substr(skip) + " is out of range (" + std::to_string(lo) +
                  " to " + std::to_string(hi) + ")");
    }
    return static_cast<int>(d);
  };
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p.rfind("degree", 0) == 0) {
      out.options.degree = integer(p, 6, "degree", kMinDegree, kMaxDegree);
    } else if (p.rfind("deg", 0) == 0) {
      out.options.degree = integer(p, 3, "degree", kMinDegree, kMaxDegree);
    } else if (p.rfind("range", 0) == 0) {
      out.options.range = number(p, 5);
    } else if (p.rfind("rg", 0) == 0) {
      out.options.range = number(p, 2);
    } else if (p.rfind("points", 0) == 0) {
      out.options.points = integer(p, 6, "number of points", 1, kMaxPoints);
    } else if (p.rfind("sigma", 0) == 0) {
      out.options.sigma = number(p, 5);
    } else {
      try {
        out.options.method = parse_fit_method(p);
      } catch (const Error&) {
        throw Error("activation '" + spec + "': unknown field '" + p +
                    "' (expected degN, rangeR, pointsN, sigmaS or a method: lsq, lsq-continuous, lsq-normal, "
                    "chebyshev, minimax)");
      }
    }
  }
  try {
    validate(out.options);
  } catch (const Error& e) {
    throw Error("activation '" + spec + "': " + e.what());
  }
  return out;
}

}  // namespace hecnn::approx
