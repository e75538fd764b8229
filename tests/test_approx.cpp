// Fitting polynomials to activations: the paper's published fits, each method's optimality on
// its own criterion, bases, specifications, and the plaintext mirror of the encrypted evaluation.
#include <gtest/gtest.h>

#include <cmath>

#include "approx/fit.h"
#include "approx/poly_eval.h"
#include "common/error.h"
#include "test_util.h"

using namespace hecnn::approx;
using hecnn::test::expect_error_mentioning;

namespace {

// |got - want| <= 0.5 unit in the 4th significant digit of want (exact zeros must be ~0).
void expect_sig4(double got, double want, const std::string& what) {
  if (want == 0) {
    EXPECT_NEAR(got, 0.0, 1e-12) << what;
    return;
  }
  const double unit = std::pow(10.0, std::floor(std::log10(std::fabs(want))) - 3);
  EXPECT_LE(std::fabs(got - want), 0.5 * unit + 1e-15) << what << ": got " << got << ", want " << want;
}

Fit lsq(const std::string& fn, int degree, double range) {
  FitOptions o;
  o.degree = degree;
  o.range = range;
  return fit(fn, o);
}

void expect_coeffs(const std::string& fn, int degree, double range, const std::vector<double>& want) {
  const Fit f = lsq(fn, degree, range);
  ASSERT_EQ(f.power.coeffs().size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    expect_sig4(f.power.coeffs()[i], want[i], fn + " deg" + std::to_string(degree) + " range" +
                                                   std::to_string(range) + " a" + std::to_string(i));
  }
}

// Published coefficients as printed (3 to 7 significant digits, some truncated rather than
// rounded): each must agree to 4 significant digits, or to its last printed digit when fewer are
// printed (one unit either way).
void expect_published(const std::string& fn, int degree, double range, const std::vector<std::string>& want) {
  const Fit f = lsq(fn, degree, range);
  ASSERT_EQ(f.power.coeffs().size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    const std::string& w = want[i];
    const auto dot = w.find('.');
    const double last = dot == std::string::npos ? 1.0 : std::pow(10.0, -static_cast<double>(w.size() - dot - 1));
    const double v = std::stod(w);
    const double unit = v == 0 ? last : std::max(last, std::pow(10.0, std::floor(std::log10(std::fabs(v))) - 3));
    EXPECT_LE(std::fabs(f.power.coeffs()[i] - std::stod(w)), unit * (1 + 1e-9))
        << fn << " degree " << degree << " range " << range << " a" << i << ": got " << f.power.coeffs()[i]
        << ", published " << w;
  }
}

}  // namespace

TEST(Approx, PaperSwishRange4Degree4) {
  // Ishiyama et al. 2020: 0.03347 + 0.5x + 0.19566x^2 - 0.005075x^4.
  expect_coeffs("swish", 4, 4, {0.03347, 0.5, 0.19566, 0.0, -0.005075});
}

TEST(Approx, PaperPublishedVariants) {
  // The other least-squares fits published with PP-CNN (its Keras and PyTorch activation modules).
  expect_published("swish", 4, 3, {"0.0108", "0.5", "0.2212", "0", "-0.008248"});
  expect_published("swish", 4, 5, {"0.07066", "0.5", "0.17003", "0", "-0.00315"});
  expect_published("swish", 4, 6, {"0.1198", "0.5", "0.1473", "0", "-0.002012"});
  expect_published("swish", 4, 7, {"0.1773", "0.5", "0.1282", "0", "-0.001328"});
  expect_published("swish", 4, 8, {"0.2401", "0.5", "0.11257", "0", "-0.000908"});
  expect_published("swish", 2, 4, {"0.145276", "0.5", "0.12592"});
  expect_published("relu", 2, 4, {"0.37537", "0.5", "0.117071"});
  expect_published("relu", 2, 6, {"0.563059", "0.5", "0.078047"});
  expect_published("relu", 4, 4, {"0.234606", "0.5", "0.204875", "0", "-0.0063896"});
  expect_published("relu", 4, 5, {"0.2932", "0.5", "0.1639", "0", "-0.00327"});
  expect_published("relu", 4, 7, {"0.41056", "0.5", "0.11707", "0", "-0.00119"});
  expect_published("mish", 2, 4, {"0.194373", "0.525933", "0.1268256"});
  expect_published("mish", 2, 6, {"0.402808", "0.510062", "0.0837098"});
  expect_published("mish", 4, 4, {"0.06021", "0.565775", "0.21051", "-0.004142", "-0.00609"});
  expect_published("mish", 4, 5, {"0.1104", "0.5495", "0.17573", "-0.0022355", "-0.00346443"});
}

TEST(Approx, EachMethodIsBestOnItsOwnCriterion) {
  for (const std::string fn : {"swish", "relu", "gelu", "mish", "tanh"}) {
    for (int degree : {2, 3, 4, 7, 8, 12, 16}) {
      const double r = 5;
      std::map<FitMethod, Fit> fits;
      for (auto m : {FitMethod::LeastSquares, FitMethod::LeastSquaresContinuous, FitMethod::LeastSquaresNormal,
                     FitMethod::Chebyshev, FitMethod::Minimax}) {
        FitOptions o;
        o.method = m;
        o.degree = degree;
        o.range = r;
        fits.emplace(m, fit(fn, o));
      }
      const std::string where = fn + " degree " + std::to_string(degree);
      const auto& f = find_activation(fn);
      const double tol = 1 + 1e-9;
      for (const auto& [m, other] : fits) {
        const std::string vs = where + " vs " + to_string(m);
        EXPECT_LE(fits.at(FitMethod::Minimax).errors.max_abs, other.errors.max_abs * tol + 1e-15) << vs;
        EXPECT_LE(fits.at(FitMethod::LeastSquaresContinuous).errors.rms, other.errors.rms * tol + 1e-15) << vs;
        EXPECT_LE(fits.at(FitMethod::LeastSquaresNormal).errors.normal_mse, other.errors.normal_mse * tol + 1e-15) << vs;
        EXPECT_LE(discrete_rms(f, fits.at(FitMethod::LeastSquares).power, r, 1000),
                  discrete_rms(f, other.power, r, 1000) * tol + 1e-15)
            << vs;
      }
      // Chebyshev interpolation: exact at its nodes, and near-minimax (within the Lebesgue
      // constant bound 2 + (2/pi) log(d + 1) of the best maximum error).
      const Fit& ch = fits.at(FitMethod::Chebyshev);
      for (int k = 0; k <= degree; ++k) {
        const double x = r * std::cos(M_PI * (k + 0.5) / (degree + 1));
        EXPECT_NEAR(ch.power(x), f.eval(x), 1e-9 * (1 + std::fabs(f.eval(x)))) << where;
      }
      EXPECT_LE(ch.errors.max_abs, (2 + 2 / M_PI * std::log(degree + 1.0)) * fits.at(FitMethod::Minimax).errors.max_abs)
          << where;
    }
  }
}

TEST(Approx, MinimaxEquioscillates) {
  FitOptions o;
  o.method = FitMethod::Minimax;
  o.degree = 6;
  o.range = 6;
  const Fit m = fit("gelu", o);
  const auto& f = find_activation("gelu");
  // The error reaches +-E at d+2 alternating points, so it is the best uniform approximation.
  int alternations = 0, last = 0;
  for (int i = 0; i <= 100000; ++i) {
    const double x = -6 + 12.0 * i / 100000;
    const double e = f.eval(x) - m.power(x);
    if (std::fabs(e) >= m.errors.max_abs * (1 - 1e-6)) {
      const int s = e > 0 ? 1 : -1;
      if (s != last) ++alternations;
      last = s;
    }
  }
  EXPECT_GE(alternations, o.degree + 2);
  EXPECT_GT(m.remez_iterations, 0);
}

TEST(Approx, ExactForPolynomials) {
  for (auto m : {FitMethod::LeastSquares, FitMethod::LeastSquaresContinuous, FitMethod::LeastSquaresNormal,
                 FitMethod::Chebyshev, FitMethod::Minimax}) {
    FitOptions o;
    o.method = m;
    o.degree = 3;
    o.range = 4;
    const Fit f = fit("square", o);
    EXPECT_LT(f.errors.max_abs, 1e-10) << to_string(m);
    EXPECT_NEAR(f.power.coeffs()[2], 1.0, 1e-10) << to_string(m);
  }
}

TEST(Approx, BasesAgree) {
  for (auto m : {FitMethod::LeastSquares, FitMethod::Minimax, FitMethod::LeastSquaresNormal}) {
    for (int degree : {2, 4, 8, 15, 16}) {
      FitOptions o;
      o.method = m;
      o.degree = degree;
      o.range = 6;
      const Fit f = fit("swish", o);
      const Polynomial back = f.power.to_chebyshev();
      for (int i = 0; i <= 200; ++i) {
        const double x = -6 + 12.0 * i / 200;
        EXPECT_NEAR(f.power(x), f.chebyshev(x), 1e-10) << degree << " at " << x;
        EXPECT_NEAR(back(x), f.chebyshev(x), 1e-10) << degree << " at " << x;
        const Polynomial t = f.chebyshev.normalized();
        EXPECT_NEAR(t(x / 6), f.power(x), 1e-10);
        EXPECT_NEAR(f.power.normalized()(x / 6), f.power(x), 1e-9);
      }
    }
  }
  // Round trip of explicit coefficients.
  const Polynomial p = Polynomial::power({1, -2, 0.5, 0, 3}, 2.0);
  const Polynomial q = p.to_chebyshev().to_power();
  for (std::size_t i = 0; i < 5; ++i) EXPECT_NEAR(q.coeffs()[i], p.coeffs()[i], 1e-13);
}

TEST(Approx, Errors) {
  FitOptions o;
  o.degree = 0;
  const std::string range = " is out of range (1 to " + std::to_string(kMaxDegree) + ")";
  expect_error_mentioning([&] { fit("swish", o); }, "degree 0" + range);
  o.degree = kMaxDegree + 1;
  expect_error_mentioning([&] { fit("swish", o); }, "degree " + std::to_string(kMaxDegree + 1) + range);
  o.degree = 4;
  o.range = 0;
  expect_error_mentioning([&] { fit("swish", o); }, "range r must be a positive number (the interval is [-r, r]); got 0");
  o.range = -1;
  expect_error_mentioning([&] { fit("swish", o); }, "range r must be a positive number (the interval is [-r, r]); got -1");
  o.range = std::nan("");
  expect_error_mentioning([&] { fit("swish", o); }, "range r must be a positive number (the interval is [-r, r]); got nan");
  o.range = 4;
  o.points = 3;
  expect_error_mentioning([&] { fit("swish", o); }, "lsq needs between degree+1 = 5 and 100000 points; got 3");
  expect_error_mentioning([&] { fit("nope", FitOptions{}); }, "unknown activation function 'nope' (known: swish,");
  expect_error_mentioning([&] { parse_fit_method("spline"); }, "unknown fit method 'spline' (known: lsq,");
  expect_error_mentioning([&] { Polynomial::power({}, 1); }, "polynomial: no coefficients");
  expect_error_mentioning([&] { Polynomial::power({1, 2}, 0); }, "polynomial: range must be a positive number");
  try {
    find_activation("swsh");
    FAIL();
  } catch (const hecnn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("swish"), std::string::npos) << "message should list known names";
  }
}

TEST(Approx, Specifications) {
  ActivationSpec s = parse_activation_spec("swish:deg4:range4");
  EXPECT_EQ(s.function, "swish");
  EXPECT_EQ(s.options.degree, 4);
  EXPECT_EQ(s.options.range, 4);
  EXPECT_EQ(s.options.method, FitMethod::LeastSquares);
  EXPECT_EQ(s.to_string(), "swish:deg4:range4");
  s = parse_activation_spec("GELU:range6:minimax:deg8");
  EXPECT_EQ(s.function, "gelu");
  EXPECT_EQ(s.options.degree, 8);
  EXPECT_EQ(s.options.method, FitMethod::Minimax);
  EXPECT_EQ(parse_activation_spec(s.to_string()).to_string(), s.to_string());
  s = parse_activation_spec("swish_rg6_deg4");  // PP-CNN's naming
  EXPECT_EQ(s.options.range, 6);
  EXPECT_EQ(s.options.degree, 4);
  expect_error_mentioning([&] { parse_activation_spec("swish:deg4:range-x"); }, "activation 'swish:deg4:range-x': cannot read a number in 'range-x'");
  expect_error_mentioning([&] { parse_activation_spec("swish:deg99"); }, "degree 99 is out of range (1 to " + std::to_string(kMaxDegree) + ")");
  expect_error_mentioning([&] { parse_activation_spec("swish:foo"); }, "activation 'swish:foo': unknown field 'foo'");
  expect_error_mentioning([&] { parse_activation_spec(""); }, "empty activation specification");
}

TEST(Approx, PlanDepthsAndMirror) {
  for (int degree = 1; degree <= 16; ++degree) {
    FitOptions o;
    o.method = FitMethod::Chebyshev;
    o.degree = degree;
    o.range = 5;
    const Fit f = fit("gelu", o);
    // GELU is x/2 plus an even function: its odd terms above x vanish, so an odd degree d > 1 fits
    // a polynomial of degree d - 1; every plan then has that degree's depth.
    const int d = f.power.degree();
    EXPECT_EQ(d, degree > 1 && degree % 2 == 1 ? degree - 1 : degree) << "requested degree " << degree;
    for (auto input : {InputForm::Raw, InputForm::Normalized}) {
      for (bool monic : {false, true}) {
        const PolyEvalPlan plan = plan_polynomial(f.power, input, monic);
        EXPECT_EQ(plan.degree, d);
        EXPECT_EQ(plan.depth, minimal_depth(d, monic));
        EXPECT_EQ(plan.depth, static_cast<int>(std::ceil(std::log2(monic ? d : d + 1.0))));
        count_operations(plan);  // throws if the mirror does not end exactly at level 0
        for (int i = 0; i <= 50; ++i) {
          const double x = -5 + 10.0 * i / 50;
          const double arg = input == InputForm::Raw ? x : x / 5;
          EXPECT_NEAR(plan.factor * simulate(plan, arg), f.power(x), 1e-9 * (1 + std::fabs(f.power(x))))
              << "degree " << d << (monic ? " monic" : "") << " at " << x;
        }
      }
    }
  }
  // The paper's degree-4 Swish in monic form: 2 levels, 2 products (x^2, then (x^2 + c) * x^2).
  const PolyEvalPlan plan = plan_polynomial(lsq("swish", 4, 4).power, InputForm::Raw, true);
  EXPECT_EQ(plan.depth, 2);
  EXPECT_NEAR(plan.factor, -0.005075, 1e-6);
  EXPECT_EQ(count_operations(plan).products, 2);
  expect_error_mentioning([&] { plan_polynomial(Polynomial::power({3.0}, 1)); }, "the polynomial is constant; nothing to evaluate");
}
