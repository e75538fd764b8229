// Encrypted polynomial evaluation at N = 2^14: levels consumed equal the stated minimum and the
// decrypted values match the plaintext polynomial within a bound per case (a fraction of the output
// range, 1.5 to 2 bits above the largest error of 6 runs).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "approx/fit.h"
#include "approx/poly_eval.h"
#include "ckks/ckks.h"
#include "test_util.h"

using namespace hecnn;
using namespace hecnn::approx;
using hecnn::test::expect_error_mentioning;

namespace {

struct HeEnv {
  ckks::ContextPtr ctx;
  std::unique_ptr<ckks::KeyGenerator> keygen;
  ckks::RelinKeys rk;
  std::unique_ptr<ckks::CkksEncoder> encoder;
  std::unique_ptr<ckks::Encryptor> encryptor;
  std::unique_ptr<ckks::Decryptor> decryptor;
  std::unique_ptr<ckks::Evaluator> evaluator;
  static constexpr double kScale = 0x1p40;

  HeEnv() {
    // 50 + 5 x 40 + 60 = 310 bits: within the 128-bit bound for N = 2^14; 5 levels.
    ctx = ckks::CkksContext::create(ckks::CkksParameters::from_bit_sizes(16384, {50, 40, 40, 40, 40, 40}, {60}));
    keygen = std::make_unique<ckks::KeyGenerator>(ctx);
    rk = keygen->create_relin_keys();
    encoder = std::make_unique<ckks::CkksEncoder>(ctx);
    encryptor = std::make_unique<ckks::Encryptor>(ctx, keygen->secret_key());
    decryptor = std::make_unique<ckks::Decryptor>(ctx, keygen->secret_key());
    evaluator = std::make_unique<ckks::Evaluator>(ctx);
  }
  static HeEnv& get() {
    static HeEnv env;
    return env;
  }
  ckks::Ciphertext encrypt(const std::vector<double>& v) const { return encryptor->encrypt(encoder->encode(v, kScale)); }
  std::vector<double> decrypt(const ckks::Ciphertext& c) const { return encoder->decode(decryptor->decrypt(c)); }
};

// Inputs spread over [-r, r], endpoints included.
std::vector<double> inputs(std::size_t n, double r) {
  std::vector<double> x = hecnn::test::random_vector(n, -r, r, 11);
  x[0] = -r;
  x[1] = r;
  x[2] = 0;
  return x;
}

const char* form_name(InputForm f) {
  switch (f) {
    case InputForm::Raw: return "x, power";
    case InputForm::Normalized: return "x/r, chebyshev";
    case InputForm::NormalizeFirst: return "x then 1/r, chebyshev";
  }
  return "?";
}

// `bits`: the largest error allowed is 2^-bits of the output range.
void check(const Polynomial& p, InputForm input, bool monic, double bits) {
  HeEnv& env = HeEnv::get();
  const double r = p.range();
  const std::vector<double> x = inputs(env.encoder->max_slots(), r);
  std::vector<double> arg = x;
  if (input == InputForm::Normalized) {
    for (auto& v : arg) v /= r;
  }
  const ckks::Ciphertext ct = env.encrypt(arg);
  PolynomialEvaluator pe(*env.evaluator, env.rk);
  const PolyEvalPlan plan = plan_polynomial(p, input, monic);
  const ckks::Ciphertext out = pe.evaluate(ct, plan);
  const int d = p.degree();
  const std::string what = "degree " + std::to_string(d) + " on [-" + std::to_string(r).substr(0, 3) + ", " +
                           std::to_string(r).substr(0, 3) + "], " + form_name(input) + (monic ? ", monic" : "");
  const int minimum = static_cast<int>(std::ceil(std::log2(monic ? d : d + 1.0)));
  const int extra = input == InputForm::NormalizeFirst ? 1 : 0;
  EXPECT_EQ(minimal_depth(d, monic), minimum);
  EXPECT_EQ(plan.depth, minimum + extra) << what;
  EXPECT_EQ(static_cast<int>(ct.level() - out.level()), minimum + extra) << what;
  if (!monic) {
    EXPECT_NEAR(out.scale(), ct.scale(), 1e-9 * ct.scale()) << what;
  }
  const std::vector<double> got = env.decrypt(out);
  double lo = 1e300, hi = -1e300, err = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double want = p(x[i]);
    lo = std::min(lo, want);
    hi = std::max(hi, want);
    err = std::max(err, std::fabs(plan.factor * got[i] - want));
  }
  const double range = hi - lo;
  EXPECT_LE(err, std::exp2(-bits) * range) << what << ": error 2^" << std::log2(err / range) << " of the output range "
                                            << range << ", bound 2^-" << bits;
  std::printf("  %-44s %d levels, error 2^%.1f of the output range\n", what.c_str(), plan.depth,
              std::log2(err / range));
}

Polynomial fitted(const std::string& fn, int degree, double r, FitMethod m) {
  FitOptions o;
  o.degree = degree;
  o.range = r;
  o.method = m;
  return fit(fn, o).power;
}

}  // namespace

TEST(ApproxHe, Degrees2to15) {
  // Every form at minimal depth on ranges where it is accurate (see InputForm): x/r for any range,
  // raw x where r^d stays moderate, and 1/r applied first (one more level) for wide ranges.
  // Bounds (bits below the output range) without and with the monic form; the largest errors of 6
  // runs were 1.5 to 2 bits above them. Raw x on [-r, r] loses about log2(r^d) bits to the
  // quantized constants (see InputForm): tanh's degree 15 on [-1.5, 1.5] is the worst case.
  struct Case {
    Polynomial p;
    InputForm input;
    double bits, bits_monic;
  };
  const Polynomial swish2 = fitted("swish", 2, 4, FitMethod::LeastSquares);
  const Polynomial swish4 = fitted("swish", 4, 4, FitMethod::LeastSquares);  // the paper's
  const Polynomial gelu8 = fitted("gelu", 8, 2, FitMethod::Minimax);
  const Polynomial gelu8_wide = fitted("gelu", 8, 6, FitMethod::Minimax);
  const Polynomial tanh15 = fitted("tanh", 15, 1.5, FitMethod::Chebyshev);
  const Polynomial mish15 = fitted("mish", 15, 6, FitMethod::LeastSquaresContinuous);
  const Polynomial quintic = Polynomial::power({0.3, -1.2, 0.7, 0.25, -0.05, 0.01}, 2.0);
  const std::vector<Case> cases = {
      {swish2, InputForm::Raw, 24.5, 29},          {swish2, InputForm::Normalized, 25.5, 26},
      {swish4, InputForm::Raw, 22.5, 28.5},        {swish4, InputForm::Normalized, 25, 25.5},
      {gelu8, InputForm::Raw, 19.5, 26.5},         {gelu8, InputForm::Normalized, 24.5, 25.5},
      {gelu8_wide, InputForm::Normalized, 24.5, 24.5}, {gelu8_wide, InputForm::NormalizeFirst, 23.5, 24},
      {tanh15, InputForm::Raw, 17.5, 25.5},        {tanh15, InputForm::Normalized, 23.5, 26.5},
      {mish15, InputForm::Normalized, 24.5, 24},
      {quintic, InputForm::Raw, 22, 25.5},         {quintic, InputForm::Normalized, 24, 24.5},
  };
  for (const Case& c : cases) {
    check(c.p, c.input, false, c.bits);
    check(c.p, c.input, true, c.bits_monic);
  }
}

TEST(ApproxHe, NotEnoughLevels) {
  HeEnv& env = HeEnv::get();
  ckks::Ciphertext ct = env.encrypt({0.5, -0.5});
  env.evaluator->drop_to_level_inplace(ct, 3);
  PolynomialEvaluator pe(*env.evaluator, env.rk);
  expect_error_mentioning([&] { pe.evaluate(ct, fitted("swish", 8, 4, FitMethod::LeastSquares)); },
                          "degree 8 needs 4 levels, the ciphertext has 3");
  // Exactly the 3 levels it has: the whole chain is used, and the values are right.
  const Polynomial mish7 = fitted("mish", 7, 4, FitMethod::Chebyshev);
  const ckks::Ciphertext out = pe.evaluate(ct, mish7);
  EXPECT_EQ(out.level(), 0u);
  const std::vector<double> got = env.decrypt(out);
  const double err = std::max(std::fabs(got[0] - mish7(0.5)), std::fabs(got[1] - mish7(-0.5)));
  std::printf("  mish degree 7 at level 3 -> 0: error 2^%.1f\n", std::log2(err));
  EXPECT_LE(err, 0x1p-30);  // 3 runs: 2^-33.5 to 2^-34.2 (two slots only: a wider margin)
  expect_error_mentioning([&] { pe.evaluate(ct, mish7, InputForm::NormalizeFirst); },
                          "degree 7 needs 4 levels, the ciphertext has 3");
  ckks::Ciphertext three = env.evaluator->multiply(ct, ct);
  expect_error_mentioning([&] { pe.evaluate(three, fitted("mish", 3, 4, FitMethod::Chebyshev)); },
                          "relinearize the input first (it has 3 components)");
}
