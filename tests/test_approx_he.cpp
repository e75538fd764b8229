// Encrypted polynomial evaluation at N = 2^14: levels consumed equal the stated minimum and the
// decrypted values match the plaintext polynomial within 2^-15 of the output range.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "approx/fit.h"
#include "approx/poly_eval.h"
#include "ckks/ckks.h"
#include "test_util.h"

using namespace hecnn;
using namespace hecnn::approx;

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

void check(const Polynomial& p, InputForm input, bool monic) {
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
  EXPECT_LE(err, std::ldexp(range, -15)) << what << ": error " << err << " vs output range " << range;
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
  const std::vector<std::pair<Polynomial, std::vector<InputForm>>> cases = {
      {fitted("swish", 2, 4, FitMethod::LeastSquares), {InputForm::Raw, InputForm::Normalized}},
      {fitted("swish", 4, 4, FitMethod::LeastSquares), {InputForm::Raw, InputForm::Normalized}},  // the paper's
      {fitted("gelu", 8, 2, FitMethod::Minimax), {InputForm::Raw, InputForm::Normalized}},
      {fitted("gelu", 8, 6, FitMethod::Minimax), {InputForm::Normalized, InputForm::NormalizeFirst}},
      {fitted("tanh", 15, 1.5, FitMethod::Chebyshev), {InputForm::Raw, InputForm::Normalized}},
      {fitted("mish", 15, 6, FitMethod::LeastSquaresContinuous), {InputForm::Normalized}},
      {Polynomial::power({0.3, -1.2, 0.7, 0.25, -0.05, 0.01}, 2.0), {InputForm::Raw, InputForm::Normalized}},
  };
  for (const auto& [p, forms] : cases) {
    for (auto input : forms) {
      for (bool monic : {false, true}) {
        if (input == InputForm::NormalizeFirst && p.degree() == 15) continue;  // 5 levels: more than we have
        check(p, input, monic);
      }
    }
  }
}

TEST(ApproxHe, NotEnoughLevels) {
  HeEnv& env = HeEnv::get();
  ckks::Ciphertext ct = env.encrypt({0.5, -0.5});
  env.evaluator->drop_to_level_inplace(ct, 3);
  PolynomialEvaluator pe(*env.evaluator, env.rk);
  EXPECT_THROW(pe.evaluate(ct, fitted("swish", 8, 4, FitMethod::LeastSquares)), hecnn::Error);
  EXPECT_NO_THROW(pe.evaluate(ct, fitted("mish", 7, 4, FitMethod::Chebyshev)));  // 3 levels
  EXPECT_THROW(pe.evaluate(ct, fitted("mish", 7, 4, FitMethod::Chebyshev), InputForm::NormalizeFirst), hecnn::Error);
  ckks::Ciphertext three = env.evaluator->multiply(ct, ct);
  EXPECT_THROW(pe.evaluate(three, fitted("mish", 3, 4, FitMethod::Chebyshev)), hecnn::Error);
}
