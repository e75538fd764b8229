// Every CKKS operation against the same computation in double precision, at N = 2^13 and 2^14.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "ckks/ckks.h"
#include "test_util.h"

using namespace hecnn::ckks;
using hecnn::test::precision_bits;
using hecnn::test::random_vector;
using hecnn::test::expect_error_mentioning;

namespace {

// Reference left rotation: out[i] = x[(i + step) mod n].
std::vector<double> rotated(const std::vector<double>& x, long long step) {
  const long long n = static_cast<long long>(x.size());
  std::vector<double> out(x.size());
  for (long long i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = x[static_cast<std::size_t>(((i + step) % n + n) % n)];
  return out;
}

constexpr double kScale = 0x1p40;
// Precision floors (bits: -log2 of the largest slot error) are 1 to 1.5 bits below the lowest of 12
// runs (ckks_tests 8 times, and 4 times with HECNN_SIMD=portable; keys and noise are fresh each run),
// per ring degree: N = 2^14 has twice the slots and twice the public-key encryption noise variance,
// ~1 bit less. A fresh public-key encryption at scale 2^40 measures 26.6 / 25.5 bits.

struct Env {
  ContextPtr ctx;
  std::unique_ptr<KeyGenerator> keygen;
  PublicKey pk;
  RelinKeys rk;
  GaloisKeys gk;
  std::unique_ptr<CkksEncoder> encoder;
  std::unique_ptr<Encryptor> enc_pk, enc_sk;
  std::unique_ptr<Decryptor> dec;
  std::unique_ptr<Evaluator> ev;
  std::vector<int> extra_steps;

  explicit Env(std::size_t n) {
    // 50-bit base prime, 40-bit primes matching the scale so rescaling keeps it at ~2^40.
    const auto params = n == 8192 ? CkksParameters::from_bit_sizes(n, {50, 40, 40}, {60})
                                  : CkksParameters::from_bit_sizes(n, {50, 40, 40, 40, 40}, {60});
    ctx = CkksContext::create(params);
    keygen = std::make_unique<KeyGenerator>(ctx);
    pk = keygen->create_public_key();
    rk = keygen->create_relin_keys();
    extra_steps = {3, -3, 5, -17, 100, -1000, 12345};
    std::vector<int> steps = extra_steps;
    for (std::size_t s = 1; s < n / 2; s <<= 1) {
      steps.push_back(static_cast<int>(s));
      steps.push_back(-static_cast<int>(s));
    }
    gk = keygen->create_galois_keys(steps, true);
    encoder = std::make_unique<CkksEncoder>(ctx);
    enc_pk = std::make_unique<Encryptor>(ctx, pk);
    enc_sk = std::make_unique<Encryptor>(ctx, keygen->secret_key());
    dec = std::make_unique<Decryptor>(ctx, keygen->secret_key());
    ev = std::make_unique<Evaluator>(ctx);
  }

  std::size_t slots() const { return encoder->max_slots(); }
  // The precision floor for this ring degree.
  double bits(double at_n8192, double at_n16384) const { return ctx->n() == 8192 ? at_n8192 : at_n16384; }
  Ciphertext encrypt(const std::vector<double>& v, double scale = kScale) const {
    return enc_pk->encrypt(encoder->encode(v, scale));
  }
  std::vector<double> decrypt(const Ciphertext& c) const { return encoder->decode(dec->decrypt(c)); }
};

class Ckks : public ::testing::TestWithParam<std::size_t> {
 protected:
  static Env& env() {
    static std::map<std::size_t, std::unique_ptr<Env>> envs;
    auto& e = envs[GetParam()];
    if (!e) e = std::make_unique<Env>(GetParam());
    return *e;
  }
};

}  // namespace

TEST_P(Ckks, EncryptDecryptPublicAndSecret) {
  Env& e = env();
  const auto x = random_vector(e.slots(), -1, 1, 1);
  EXPECT_GE(precision_bits(e.decrypt(e.encrypt(x)), x), e.bits(25.5, 24.5));
  const Ciphertext c = e.enc_sk->encrypt(e.encoder->encode(x, kScale));
  EXPECT_TRUE(c.seed().has_value());
  EXPECT_GE(precision_bits(e.decrypt(c), x), e.bits(29.0, 28.5));
  // Encoding and encrypting in one call, with either key.
  Ciphertext cs, cp;
  e.enc_sk->encrypt(*e.encoder, x, kScale, e.ctx->max_level(), cs);
  e.enc_pk->encrypt(*e.encoder, x, kScale, e.ctx->max_level(), cp);
  EXPECT_TRUE(cs.seed().has_value());
  EXPECT_FALSE(cp.seed().has_value());
  EXPECT_GE(precision_bits(e.decrypt(cs), x), e.bits(29.0, 28.5));
  EXPECT_GE(precision_bits(e.decrypt(cp), x), e.bits(25.5, 24.5));
  // Plain encode/decode alone is far more precise.
  EXPECT_GE(precision_bits(e.encoder->decode(e.encoder->encode(x, kScale)), x), e.bits(32.0, 31.5));
}

TEST_P(Ckks, ComplexValuesAndSparseSlots) {
  Env& e = env();
  for (std::size_t count : {std::size_t{1}, std::size_t{3}, std::size_t{64}, e.slots()}) {
    const auto re = random_vector(count, -2, 2, 2), im = random_vector(count, -2, 2, 3);
    std::vector<std::complex<double>> z(count);
    for (std::size_t i = 0; i < count; ++i) z[i] = {re[i], im[i]};
    const Plaintext pt = e.encoder->encode(std::span<const std::complex<double>>(z), kScale);
    std::size_t want_slots = 1;
    while (want_slots < count) want_slots <<= 1;
    EXPECT_EQ(pt.slots(), want_slots);
    auto got = e.encoder->decode_complex(e.dec->decrypt(e.enc_pk->encrypt(pt)));
    got.resize(count);
    EXPECT_GE(precision_bits(got, z), e.bits(25.0, 24.0)) << count << " slots";
  }
  std::vector<double> too_many(e.slots() + 1, 0.0);
  expect_error_mentioning([&] { e.encoder->encode(too_many, kScale); },
                          "cannot encode " + std::to_string(e.slots() + 1) + " values: at most " +
                              std::to_string(e.slots()) + " slots (N/2)");
}

TEST_P(Ckks, AddSubNegate) {
  Env& e = env();
  const auto x = random_vector(e.slots(), -1, 1, 4), y = random_vector(e.slots(), -1, 1, 5);
  const Ciphertext cx = e.encrypt(x), cy = e.encrypt(y);
  std::vector<double> sum(x.size()), diff(x.size()), neg(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    sum[i] = x[i] + y[i];
    diff[i] = x[i] - y[i];
    neg[i] = -x[i];
  }
  EXPECT_GE(precision_bits(e.decrypt(e.ev->add(cx, cy)), sum), e.bits(25.0, 24.0));
  EXPECT_GE(precision_bits(e.decrypt(e.ev->sub(cx, cy)), diff), e.bits(24.5, 24.0));
  Ciphertext n = cx;
  e.ev->negate_inplace(n);
  EXPECT_GE(precision_bits(e.decrypt(n), neg), e.bits(25.5, 24.5));

  const Plaintext py = e.encoder->encode(y, kScale);
  Ciphertext a = cx;
  e.ev->add_plain_inplace(a, py);
  EXPECT_GE(precision_bits(e.decrypt(a), sum), e.bits(25.5, 24.5));
  Ciphertext s = cx;
  e.ev->sub_plain_inplace(s, py);
  EXPECT_GE(precision_bits(e.decrypt(s), diff), e.bits(25.5, 24.5));

  Ciphertext k = cx;
  e.ev->add_const_inplace(k, 0.75);
  e.ev->sub_const_inplace(k, 0.25);
  std::vector<double> shifted(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) shifted[i] = x[i] + 0.5;
  EXPECT_GE(precision_bits(e.decrypt(k), shifted), e.bits(25.5, 24.5));
}

TEST_P(Ckks, MultiplyRelinearizeRescale) {
  Env& e = env();
  const auto x = random_vector(e.slots(), -1, 1, 6), y = random_vector(e.slots(), -1, 1, 7);
  const Ciphertext cx = e.encrypt(x), cy = e.encrypt(y);
  std::vector<double> prod(x.size()), sq(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    prod[i] = x[i] * y[i];
    sq[i] = x[i] * x[i];
  }
  Ciphertext m = e.ev->multiply(cx, cy);
  EXPECT_EQ(m.size(), 3u);
  EXPECT_GE(precision_bits(e.decrypt(m), prod), e.bits(25.0, 24.0));  // decrypts with s^2 before relinearization
  e.ev->relinearize_inplace(m, e.rk);
  EXPECT_EQ(m.size(), 2u);
  e.ev->rescale_inplace(m);
  EXPECT_EQ(m.level(), cx.level() - 1);
  EXPECT_NEAR(std::log2(m.scale()), 40.0, 0.01);
  EXPECT_GE(precision_bits(e.decrypt(m), prod), e.bits(25.0, 23.5));

  Ciphertext s = cx;
  e.ev->square_inplace(s);
  e.ev->relinearize_inplace(s, e.rk);
  e.ev->rescale_inplace(s);
  EXPECT_GE(precision_bits(e.decrypt(s), sq), e.bits(24.5, 23.5));

  // Relinearization and rescale in one division by P q_l: the same level, scale and precision, and
  // the same values as the two steps up to their rounding.
  Ciphertext f = e.ev->multiply(cx, cy);
  e.ev->relinearize_rescale_inplace(f, e.rk);
  EXPECT_EQ(f.size(), 2u);
  EXPECT_EQ(f.level(), m.level());
  EXPECT_EQ(f.scale(), m.scale());
  EXPECT_GE(precision_bits(e.decrypt(f), prod), e.bits(25.0, 23.5));
  EXPECT_GE(precision_bits(e.decrypt(f), e.decrypt(m)), e.bits(25.0, 23.5));
  Ciphertext fs = cx;
  e.ev->square_inplace(fs);
  e.ev->relinearize_rescale_inplace(fs, e.rk);
  EXPECT_GE(precision_bits(e.decrypt(fs), sq), e.bits(24.5, 23.5));
  // Two components: a plain rescale, word for word.
  Ciphertext two = cx, two_ref = cx;
  e.ev->relinearize_rescale_inplace(two, e.rk);
  e.ev->rescale_inplace(two_ref);
  EXPECT_TRUE(std::equal(two.poly(0), two.poly(0) + 2 * two.limbs() * e.ctx->n(), two_ref.poly(0)));
}

TEST_P(Ckks, DeferredRelinearizationOfSummedProducts) {
  Env& e = env();
  const auto a = random_vector(e.slots(), -1, 1, 8), b = random_vector(e.slots(), -1, 1, 9);
  const auto c = random_vector(e.slots(), -1, 1, 10), d = random_vector(e.slots(), -1, 1, 11);
  Ciphertext ab = e.ev->multiply(e.encrypt(a), e.encrypt(b));
  const Ciphertext cd = e.ev->multiply(e.encrypt(c), e.encrypt(d));
  e.ev->add_inplace(ab, cd);  // 3 + 3 components
  EXPECT_EQ(ab.size(), 3u);
  e.ev->relinearize_inplace(ab, e.rk);
  e.ev->rescale_inplace(ab);
  std::vector<double> want(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) want[i] = a[i] * b[i] + c[i] * d[i];
  EXPECT_GE(precision_bits(e.decrypt(ab), want), e.bits(24.5, 23.5));
  expect_error_mentioning([&] { e.ev->rotate(cd, 1, e.gk); }, "rotate: relinearize the ciphertext first");  // rotation needs 2 components

  // A 2-component ciphertext (at the product's scale) added to a 3-component one, either way round.
  const auto f = random_vector(e.slots(), -1, 1, 25);
  const Ciphertext cf = e.encrypt(f, kScale * kScale);
  Ciphertext sum3 = cd;
  e.ev->add_inplace(sum3, cf);
  Ciphertext sum2 = cf;
  e.ev->add_inplace(sum2, cd);
  ASSERT_EQ(sum2.size(), 3u);
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = c[i] * d[i] + f[i];
  for (Ciphertext* s : {&sum3, &sum2}) {
    e.ev->relinearize_inplace(*s, e.rk);
    e.ev->rescale_inplace(*s);
    EXPECT_GE(precision_bits(e.decrypt(*s), want), e.bits(25.0, 24.0));
  }
}

TEST_P(Ckks, MultiplyPlainAndConstants) {
  Env& e = env();
  const auto x = random_vector(e.slots(), -1, 1, 12), y = random_vector(e.slots(), -1, 1, 13);
  const Ciphertext cx = e.encrypt(x);
  std::vector<double> want(x.size());

  Ciphertext p = cx;
  const double top = static_cast<double>(e.ctx->modulus(cx.level()).value);
  e.ev->multiply_plain_inplace(p, e.encoder->encode(y, top));
  e.ev->rescale_inplace(p);
  for (std::size_t i = 0; i < x.size(); ++i) want[i] = x[i] * y[i];
  EXPECT_GE(precision_bits(e.decrypt(p), want), e.bits(25.0, 23.5));
  EXPECT_NEAR(p.scale(), cx.scale(), cx.scale() * 1e-12);

  // Out of place, at a lower level: the drop and the product in one pass, word for word the same.
  {
    const std::size_t lower = cx.level() - 1;
    Ciphertext in_place = cx, out;
    e.ev->drop_to_level_inplace(in_place, lower);
    e.ev->multiply_const_inplace(in_place, 0.75, 0x1p20);
    e.ev->multiply_const(cx, 0.75, 0x1p20, lower, out);
    ASSERT_EQ(out.level(), lower);
    EXPECT_EQ(out.scale(), in_place.scale());
    EXPECT_TRUE(std::equal(out.poly(0), out.poly(0) + 2 * out.limbs() * e.ctx->n(), in_place.poly(0)));
    expect_error_mentioning([&] { e.ev->multiply_const(out, 1.0, 2.0, cx.level(), out); },
                            "multiply_const: target level");
    // Scaled and added in one pass: word for word the product then the sum, into a product of 3
    // components; a scale that does not match is refused.
    Ciphertext acc = e.ev->multiply(cx, cx), want_acc = acc, term;
    const double cs = acc.scale() / cx.scale();
    e.ev->multiply_const(cx, -0.625, cs, acc.level(), term);
    term.set_scale(acc.scale());
    e.ev->add_inplace(want_acc, term);
    e.ev->multiply_const_add_inplace(acc, cx, -0.625, cs);
    EXPECT_TRUE(std::equal(acc.poly(0), acc.poly(0) + 3 * acc.limbs() * e.ctx->n(), want_acc.poly(0)));
    expect_error_mentioning([&] { e.ev->multiply_const_add_inplace(acc, cx, 1.0, 2.0); },
                            "multiply_const_add: scales differ");
    // Squares out of place equal squares in place.
    Ciphertext sq_in = cx, sq_out;
    e.ev->square_inplace(sq_in);
    e.ev->square(cx, sq_out);
    ASSERT_EQ(sq_out.size(), 3u);
    EXPECT_TRUE(std::equal(sq_out.poly(0), sq_out.poly(0) + 3 * sq_out.limbs() * e.ctx->n(), sq_in.poly(0)));
  }

  Ciphertext k = cx;
  e.ev->multiply_const_inplace(k, -0.3125);
  e.ev->rescale_inplace(k);
  for (std::size_t i = 0; i < x.size(); ++i) want[i] = -0.3125 * x[i];
  EXPECT_GE(precision_bits(e.decrypt(k), want), e.bits(25.0, 24.0));
  EXPECT_DOUBLE_EQ(k.scale(), cx.scale());  // default constant scale is the dropped prime

  Ciphertext z = cx;
  e.ev->multiply_integer_inplace(z, -7);
  EXPECT_EQ(z.level(), cx.level());
  for (std::size_t i = 0; i < x.size(); ++i) want[i] = -7 * x[i];
  EXPECT_GE(precision_bits(e.decrypt(z), want), e.bits(23.0, 21.5));  // error grows by the factor 7
}

TEST_P(Ckks, SumsOfPlaintextProducts) {
  // Several sums over shared ciphertexts, one with more than 64 products (the kernel's block), and
  // 3-component operands: each equals the products formed and added one by one.
  Env& e = env();
  const std::size_t s = e.slots();
  std::vector<Ciphertext> cts;
  std::vector<std::vector<double>> xs, ws;
  for (int k = 0; k < 5; ++k) {
    xs.push_back(random_vector(s, -1, 1, 40 + static_cast<unsigned>(k)));
    cts.push_back(e.encrypt(xs.back()));
  }
  const double top = static_cast<double>(e.ctx->modulus(cts[0].level()).value);
  std::vector<Plaintext> pts;
  for (int k = 0; k < 7; ++k) {
    ws.push_back(random_vector(s, -1, 1, 60 + static_cast<unsigned>(k)));
    pts.push_back(e.encoder->encode(ws.back(), top));
  }
  std::vector<std::vector<Evaluator::PlainProduct>> terms(3);
  std::vector<std::vector<std::pair<int, int>>> which(3);
  for (int j = 0; j < 70; ++j) which[0].push_back({j % 5, j % 7});
  which[1] = {{2, 3}};
  which[2] = {{0, 1}, {4, 6}, {0, 1}};
  for (std::size_t g = 0; g < 3; ++g)
    for (auto [c, p] : which[g]) terms[g].push_back({&cts[static_cast<std::size_t>(c)], &pts[static_cast<std::size_t>(p)]});
  std::vector<Ciphertext> out;
  e.ev->multiply_plain_sums(terms, out);
  ASSERT_EQ(out.size(), 3u);
  for (std::size_t g = 0; g < 3; ++g) {
    std::vector<double> want(s, 0.0);
    for (auto [c, p] : which[g])
      for (std::size_t i = 0; i < s; ++i) want[i] += xs[static_cast<std::size_t>(c)][i] * ws[static_cast<std::size_t>(p)][i];
    e.ev->rescale_inplace(out[g]);
    EXPECT_GE(precision_bits(e.decrypt(out[g]), want), e.bits(18.0, 17.0)) << "sum " << g;
  }
  // 3 components (an unrelinearized product) and mismatched operands.
  Ciphertext sq;
  e.ev->multiply(cts[0], cts[1], sq);
  std::vector<std::vector<Evaluator::PlainProduct>> t3{{{&sq, &pts[0]}, {&sq, &pts[1]}}};
  e.ev->multiply_plain_sums(t3, out);
  e.ev->relinearize_inplace(out[0], e.rk);
  e.ev->rescale_inplace(out[0]);
  e.ev->rescale_inplace(out[0]);
  std::vector<double> want(s);
  for (std::size_t i = 0; i < s; ++i) want[i] = xs[0][i] * xs[1][i] * (ws[0][i] + ws[1][i]);
  EXPECT_GE(precision_bits(e.decrypt(out[0]), want), e.bits(18.0, 17.0));
  std::vector<std::vector<Evaluator::PlainProduct>> mixed{{{&cts[0], &pts[0]}, {&sq, &pts[1]}}};
  EXPECT_THROW(e.ev->multiply_plain_sums(mixed, out), hecnn::Error);
  std::vector<std::vector<Evaluator::PlainProduct>> empty{{}};
  EXPECT_THROW(e.ev->multiply_plain_sums(empty, out), hecnn::Error);
}

TEST_P(Ckks, LevelsAndAlignment) {
  Env& e = env();
  const auto x = random_vector(e.slots(), -1, 1, 14), y = random_vector(e.slots(), -1, 1, 15);
  Ciphertext cx = e.encrypt(x), cy = e.encrypt(y);
  // Encode at a chosen level.
  Plaintext low;
  e.encoder->encode(x, kScale, 1, low);
  EXPECT_EQ(low.level(), 1u);
  EXPECT_GE(precision_bits(e.encoder->decode(low), x), e.bits(32.0, 31.5));
  Ciphertext clow = e.enc_pk->encrypt(low);
  EXPECT_EQ(clow.level(), 1u);
  EXPECT_GE(precision_bits(e.decrypt(clow), x), e.bits(25.5, 24.5));

  // Drop without rescaling keeps the value and the scale.
  Ciphertext d = cx;
  e.ev->drop_to_level_inplace(d, 0);
  EXPECT_EQ(d.level(), 0u);
  EXPECT_EQ(d.scale(), cx.scale());
  EXPECT_GE(precision_bits(e.decrypt(d), x), e.bits(25.5, 24.5));
  expect_error_mentioning([&] { e.ev->drop_to_level_inplace(d, 1); }, "drop_to_level: target level 1 is above the ciphertext's level 0");
  expect_error_mentioning([&] { e.ev->rescale_inplace(d); }, "rescale: the ciphertext is at level 0, no prime left to divide by");
  Ciphertext d_small = d;
  d_small.set_scale(16);  // a product that fits level 0
  Ciphertext d3 = e.ev->multiply(d_small, d_small);
  expect_error_mentioning([&] { e.ev->relinearize_rescale_inplace(d3, e.rk); },
                          "rescale: the ciphertext is at level 0, no prime left to divide by");

  // Mismatched levels are refused by add, then aligned.
  Ciphertext m = e.ev->multiply(cx, cy);
  e.ev->relinearize_inplace(m, e.rk);
  e.ev->rescale_inplace(m);  // level - 1, scale 2^80 / q
  expect_error_mentioning([&] { e.ev->add(m, cx); }, "add: operands are at levels ");
  Ciphertext a = cx;
  e.ev->align_inplace(a, m);
  EXPECT_EQ(a.level(), m.level());
  e.ev->add_inplace(a, m);
  std::vector<double> want(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) want[i] = x[i] + x[i] * y[i];
  EXPECT_GE(precision_bits(e.decrypt(a), want), e.bits(24.0, 23.5));

  // Different scales at one level: align multiplies the smaller one up and rescales it.
  Ciphertext s1 = e.encrypt(x, 0x1p40), s2 = e.encrypt(y, 0x1p36);
  expect_error_mentioning([&] { e.ev->add(s1, s2); }, "add: scales differ (2^40.000000 vs 2^36.000000)");
  e.ev->align_inplace(s1, s2);
  EXPECT_EQ(s1.level(), s2.level());
  e.ev->add_inplace(s1, s2);
  for (std::size_t i = 0; i < x.size(); ++i) want[i] = x[i] + y[i];
  EXPECT_GE(precision_bits(e.decrypt(s1), want), e.bits(21.5, 20.5));
}

TEST_P(Ckks, RotationByEveryPowerOfTwoAndOtherSteps) {
  Env& e = env();
  const std::size_t n = e.slots();
  const auto x = random_vector(n, -1, 1, 16);
  const Ciphertext cx = e.encrypt(x);
  std::vector<int> steps = e.extra_steps;
  for (std::size_t s = 1; s < n; s <<= 1) {
    steps.push_back(static_cast<int>(s));
    steps.push_back(-static_cast<int>(s));
  }
  for (int step : steps) {
    const auto want = rotated(x, step);
    EXPECT_GE(precision_bits(e.decrypt(e.ev->rotate(cx, step, e.gk)), want), e.bits(24.5, 23.5)) << "step " << step;
  }
  expect_error_mentioning([&] { e.ev->rotate(cx, 7, e.gk); }, "no Galois key for rotation step 7");  // no key for 7
}

TEST_P(Ckks, HoistedRotationsMatchSeparateOnes) {
  Env& e = env();
  const std::size_t n = e.slots();
  const auto x = random_vector(n, -1, 1, 17);
  const Ciphertext cx = e.encrypt(x);
  const std::vector<int> steps = {1, 2, 4, 8, -1, 3, 0, 100};
  const auto hoisted = e.ev->rotate_hoisted(cx, steps, e.gk);
  ASSERT_EQ(hoisted.size(), steps.size());
  for (std::size_t k = 0; k < steps.size(); ++k) {
    const auto want = rotated(x, steps[k]);
    EXPECT_GE(precision_bits(e.decrypt(hoisted[k]), want), e.bits(25.0, 24.0)) << "step " << steps[k];
    // The same computation as a separate rotation, word for word.
    const Ciphertext sep = e.ev->rotate(cx, steps[k], e.gk);
    ASSERT_EQ(hoisted[k].word_count(), sep.word_count()) << "step " << steps[k];
    EXPECT_TRUE(std::equal(sep.poly(0), sep.poly(0) + sep.word_count(), hoisted[k].poly(0))) << "step " << steps[k];
  }
  expect_error_mentioning([&] { e.ev->rotate_hoisted(cx, {1, 7}, e.gk); }, "no Galois key for rotation step 7");
}

TEST_P(Ckks, HoistedRotationSumMatchesSumOfRotations) {
  Env& e = env();
  const std::size_t n = e.slots();
  const auto x = random_vector(n, -1, 1, 26);
  const Ciphertext cx = e.encrypt(x);
  const std::vector<int> steps = {1, 2, 4, -1, 0, 100, 2};
  const Ciphertext sum = e.ev->rotate_sum_hoisted(cx, steps, e.gk);
  std::vector<double> want(n, 0.0);
  for (int s : steps) {
    const auto r = rotated(x, s);
    for (std::size_t i = 0; i < n; ++i) want[i] += r[i];
  }
  EXPECT_GE(precision_bits(e.decrypt(sum), want), e.bits(24.0, 22.5));
  EXPECT_EQ(sum.level(), cx.level());
  expect_error_mentioning([&] { e.ev->rotate_sum_hoisted(cx, {1, 7}, e.gk); }, "no Galois key for rotation step 7");
  expect_error_mentioning([&] { e.ev->rotate_sum_hoisted(cx, {}, e.gk); }, "rotate_sum_hoisted: no steps");
}

TEST_P(Ckks, RotationOfSparseVectorIsCyclicOverItsSlots) {
  Env& e = env();
  const std::size_t n = 16;
  const auto x = random_vector(n, -1, 1, 18);
  const Ciphertext c = e.encrypt(x);
  ASSERT_EQ(c.slots(), n);
  for (int step : {1, -1, 3, 4}) {
    const auto want = rotated(x, step);
    EXPECT_GE(precision_bits(e.decrypt(e.ev->rotate(c, step, e.gk)), want), e.bits(30.0, 29.5)) << step;
  }
}

TEST_P(Ckks, Conjugation) {
  Env& e = env();
  const std::size_t n = e.slots();
  const auto re = random_vector(n, -1, 1, 19), im = random_vector(n, -1, 1, 20);
  std::vector<std::complex<double>> z(n), want(n);
  for (std::size_t i = 0; i < n; ++i) {
    z[i] = {re[i], im[i]};
    want[i] = std::conj(z[i]);
  }
  Ciphertext c = e.enc_pk->encrypt(e.encoder->encode(std::span<const std::complex<double>>(z), kScale));
  e.ev->conjugate_inplace(c, e.gk);
  EXPECT_GE(precision_bits(e.encoder->decode_complex(e.dec->decrypt(c)), want), e.bits(24.5, 23.5));
}

TEST_P(Ckks, LargeScalesAndValuesBeyond64Bits) {
  Env& e = env();
  // scale 2^60 with values up to 2^10: coefficients beyond 2^64.
  const auto x = random_vector(e.slots(), -1024, 1024, 21);
  const Plaintext pt = e.encoder->encode(x, 0x1p60);
  EXPECT_GE(precision_bits(e.encoder->decode(pt), x), e.bits(38.0, 38.0));
  EXPECT_GE(precision_bits(e.decrypt(e.enc_pk->encrypt(pt)), x), e.bits(38.0, 37.5));
  // Overflowing the modulus is an error, not a silent wrong answer.
  Plaintext p0;
  expect_error_mentioning([&] { e.encoder->encode(x, 0x1p45, 0, p0); }, "encoding overflow: value x scale reaches 2^49 but the modulus at level 0 has");
  const std::vector<double> bad = {1.0, std::nan("")};
  expect_error_mentioning([&] { e.encoder->encode(bad, kScale); }, "cannot encode a non-finite value (slot 1)");
  std::vector<double> huge(16);
  for (std::size_t i = 0; i < huge.size(); ++i) huge[i] = (i % 2 ? -1 : 1) * 1e308;
  expect_error_mentioning([&] { e.encoder->encode(huge, kScale); }, "encoding overflow: value x scale is not a finite number");
  Ciphertext c = e.encrypt(x);
  expect_error_mentioning([&] { e.ev->add_const_inplace(c, std::nan("")); }, "add_const: constant is not finite");
  expect_error_mentioning([&] { e.ev->add_const_inplace(c, 1e300); }, "add_const: resulting scale 2^inf does not fit the modulus");
}

TEST_P(Ckks, ThreadCountIsSettableAndResultsAgree) {
  Env& e = env();
  const auto x = random_vector(e.slots(), -1, 1, 22);
  const Ciphertext c = e.enc_sk->encrypt(e.encoder->encode(x, kScale));
  hecnn::set_num_threads(1);
  EXPECT_EQ(hecnn::num_threads(), 1);
  const Ciphertext r1 = e.ev->rotate(c, 1, e.gk);
  hecnn::set_num_threads(2);
  EXPECT_EQ(hecnn::num_threads(), 2);
  const Ciphertext r2 = e.ev->rotate(c, 1, e.gk);
  hecnn::set_num_threads(0);
  ASSERT_EQ(r1.word_count(), r2.word_count());
  EXPECT_TRUE(std::equal(r1.poly(0), r1.poly(0) + r1.word_count(), r2.poly(0)));  // deterministic
}

TEST_P(Ckks, IndependentCiphertextsInParallelThreads) {
  // Callers may run operations on different ciphertexts from their own threads (the library's
  // scratch buffers are per thread; its inner parallel loops then run serially): same results.
  Env& e = env();
  std::vector<Ciphertext> in;
  for (unsigned k = 0; k < 4; ++k) in.push_back(e.enc_sk->encrypt(e.encoder->encode(random_vector(e.slots(), -1, 1, 50 + k), kScale)));
  auto work = [&](const Ciphertext& c) {
    Ciphertext m = e.ev->multiply(c, c);
    e.ev->relinearize_inplace(m, e.rk);
    e.ev->rescale_inplace(m);
    Ciphertext r = e.ev->rotate(m, 3, e.gk);
    const auto hoisted = e.ev->rotate_hoisted(r, {1, -1}, e.gk);
    e.ev->add_inplace(r, hoisted[0]);
    e.ev->add_inplace(r, hoisted[1]);
    return r;
  };
  std::vector<Ciphertext> serial, parallel(in.size());
  for (const auto& c : in) serial.push_back(work(c));
  const long count = static_cast<long>(in.size());
#pragma omp parallel for schedule(static, 1) num_threads(2)
  for (long k = 0; k < count; ++k) parallel[static_cast<std::size_t>(k)] = work(in[static_cast<std::size_t>(k)]);
  for (std::size_t k = 0; k < in.size(); ++k) {
    ASSERT_EQ(serial[k].word_count(), parallel[k].word_count());
    EXPECT_TRUE(std::equal(serial[k].poly(0), serial[k].poly(0) + serial[k].word_count(), parallel[k].poly(0))) << k;
  }
}

TEST_P(Ckks, MismatchedKeysAndOperandsAreRejected) {
  Env& e = env();
  const auto other = CkksContext::create(CkksParameters::from_bit_sizes(e.ctx->n(), {50, 40}, {60}));
  KeyGenerator other_keys(other);
  expect_error_mentioning([&] { Encryptor(e.ctx, other_keys.secret_key()); }, "secret key was made for other parameters");
  expect_error_mentioning([&] { Decryptor(e.ctx, other_keys.secret_key()); }, "secret key was made for other parameters");
  const auto other_rk = other_keys.create_relin_keys();
  const auto x = random_vector(8, -1, 1, 23);
  Ciphertext m = e.ev->multiply(e.encrypt(x), e.encrypt(x));
  expect_error_mentioning([&] { e.ev->relinearize_inplace(m, other_rk); }, "relinearize: relinearization key was made for other parameters");
  Ciphertext wide = e.encrypt(random_vector(16, -1, 1, 24));
  expect_error_mentioning([&] { e.ev->add(e.encrypt(x), wide); }, "add: operands have 8 and 16 slots");  // 8 vs 16 slots
}

INSTANTIATE_TEST_SUITE_P(RingDegrees, Ckks, ::testing::Values(std::size_t{8192}, std::size_t{16384}),
                         [](const auto& info) { return "N" + std::to_string(info.param); });

TEST(CkksDeep, TenMultiplicationsAtN32768) {
  const auto params = CkksParameters::from_bit_sizes(32768, {50, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40}, {60});
  auto ctx = CkksContext::create(params);
  KeyGenerator keygen(ctx);
  const auto pk = keygen.create_public_key();
  const auto rk = keygen.create_relin_keys();
  CkksEncoder encoder(ctx);
  Encryptor enc(ctx, pk);
  Decryptor dec(ctx, keygen.secret_key());
  Evaluator ev(ctx);
  const std::size_t n = encoder.max_slots();
  auto want = random_vector(n, 0.8, 1.2, 30);
  Ciphertext acc = enc.encrypt(encoder.encode(want, kScale));
  for (int k = 0; k < 10; ++k) {
    const auto y = random_vector(n, 0.8, 1.2, 31 + static_cast<unsigned>(k));
    Plaintext py;
    encoder.encode(y, kScale, acc.level(), py);
    ev.multiply_inplace(acc, enc.encrypt(py));
    ev.relinearize_inplace(acc, rk);
    ev.rescale_inplace(acc);
    for (std::size_t i = 0; i < n; ++i) want[i] *= y[i];
  }
  EXPECT_EQ(acc.level(), 0u);
  const double bits = precision_bits(encoder.decode(dec.decrypt(acc)), want);
  std::printf("10 multiplications at N=32768: %.1f bits of precision\n", bits);
  EXPECT_GE(bits, 20.5);  // lowest of 12 runs: 21.8
}

TEST(CkksKeySwitching, KeysRestrictedToTheirLevel) {
  // Multi-prime digits (2 per digit): a key kept up to level l has the digits and limbs of level l,
  // rotates exactly as the full key at l and below, is refused above, and survives serialization.
  const auto params = CkksParameters::from_bit_sizes(16384, {50, 40, 40, 40, 40}, {60, 60});
  auto ctx = CkksContext::create(params);
  KeyGenerator keygen(ctx);
  const auto full = keygen.create_galois_keys({3, -7}, false);
  const std::uint32_t e3 = ctx->galois_element(3), e7 = ctx->galois_element(-7);
  // Generated restricted (a repeated step keeps its highest level): the shapes.
  const auto made = keygen.create_galois_keys({3, -7, 3}, {1, 2, 0});
  EXPECT_EQ(made.keys.at(e3).chain, 2u);
  EXPECT_EQ(made.keys.at(e7).chain, 3u);
  // The full keys restricted: the same words where used.
  GaloisKeys low = full;
  restrict_to_level(low.keys.at(e3), *ctx, 1);
  restrict_to_level(low.keys.at(e7), *ctx, 2);
  EXPECT_EQ(low.keys.at(e3).chain, 2u);
  EXPECT_EQ(low.keys.at(e3).b.size(), ctx->key_switch(1).digit_count);
  EXPECT_LT(low.keys.at(e3).b[0].size(), full.keys.at(e3).b[0].size());
  CkksEncoder encoder(ctx);
  Encryptor enc(ctx, keygen.secret_key());
  Evaluator ev(ctx);
  const auto x = random_vector(encoder.max_slots(), -1, 1, 45);
  for (std::size_t level = 0; level <= 2; ++level) {
    Plaintext px;
    encoder.encode(x, kScale, level, px);
    const Ciphertext cx = enc.encrypt(px);
    const Ciphertext a = ev.rotate(cx, -7, full), b = ev.rotate(cx, -7, low);
    EXPECT_TRUE(std::equal(a.poly(0), a.poly(0) + a.word_count(), b.poly(0))) << "level " << level;
    if (level <= 1) {
      const Ciphertext c = ev.rotate(cx, 3, full), d = ev.rotate(cx, 3, low);
      EXPECT_TRUE(std::equal(c.poly(0), c.poly(0) + c.word_count(), d.poly(0))) << "level " << level;
    } else {
      expect_error_mentioning([&] { ev.rotate(cx, 3, low); }, "key-switching key made for levels below 2, used at level 2");
    }
  }
  // Serialization (seeded and not) keeps the restriction.
  for (bool seeded : {true, false}) {
    std::stringstream ss;
    save(ss, *ctx, low, seeded);
    const GaloisKeys back = load_galois_keys(ss, *ctx);
    EXPECT_EQ(back.keys.at(e3).chain, 2u);
    EXPECT_EQ(back.keys.at(e3).b, low.keys.at(e3).b);
    EXPECT_EQ(back.keys.at(e3).a, low.keys.at(e3).a);
    EXPECT_EQ(back.keys.at(e7).a, low.keys.at(e7).a);
  }
  KeySwitchKey k = low.keys.at(e3);
  expect_error_mentioning([&] { restrict_to_level(k, *ctx, 3); }, "the key covers only 2 chain primes");
  // The generated restricted keys rotate correctly.
  Plaintext px;
  encoder.encode(x, kScale, 1, px);
  const auto back = encoder.decode(Decryptor(ctx, keygen.secret_key()).decrypt(ev.rotate(enc.encrypt(px), 3, made)));
  std::vector<double> want(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) want[i] = x[(i + 3) % x.size()];
  EXPECT_GE(precision_bits(back, want), 20.0);
}

TEST(CkksKeySwitching, MultiPrimeDigitsAtEveryLevel) {
  // Two special primes: digits of two chain primes each, the last one partial at some levels.
  const auto params = CkksParameters::from_bit_sizes(16384, {50, 40, 40, 40, 40}, {60, 60});
  ASSERT_EQ(params.digit_size(), 2u);
  ASSERT_EQ(params.digits(), 3u);
  auto ctx = CkksContext::create(params);
  KeyGenerator keygen(ctx);
  const auto rk = keygen.create_relin_keys();
  const auto gk = keygen.create_galois_keys({1, -5}, true);
  CkksEncoder encoder(ctx);
  Encryptor enc(ctx, keygen.create_public_key());
  Decryptor dec(ctx, keygen.secret_key());
  Evaluator ev(ctx);
  const std::size_t n = encoder.max_slots();
  const auto x = random_vector(n, -1, 1, 40), y = random_vector(n, -1, 1, 41);
  std::vector<double> want(n), want_rot(n);
  for (std::size_t i = 0; i < n; ++i) want[i] = x[i] * y[i];
  for (std::size_t i = 0; i < n; ++i) want_rot[i] = x[(i + n - 5) % n];
  for (std::size_t level = ctx->max_level(); level >= 1; --level) {
    Plaintext px, py;
    encoder.encode(x, kScale, level, px);
    encoder.encode(y, kScale, level, py);
    const Ciphertext cx = enc.encrypt(px);
    Ciphertext m = ev.multiply(cx, enc.encrypt(py));
    Ciphertext f = m;
    ev.relinearize_inplace(m, rk);
    ev.rescale_inplace(m);
    // Lowest of 12 runs over all levels: 24.8 bits (product), 24.5 (rotation).
    EXPECT_GE(precision_bits(encoder.decode(dec.decrypt(m)), want), 23.5) << "level " << level;
    ev.relinearize_rescale_inplace(f, rk);  // the divisor's primes: both special primes and q_level
    EXPECT_EQ(f.level(), level - 1);
    EXPECT_GE(precision_bits(encoder.decode(dec.decrypt(f)), want), 23.5) << "level " << level;
    EXPECT_GE(precision_bits(encoder.decode(dec.decrypt(ev.rotate(cx, -5, gk))), want_rot), 23.5)
        << "level " << level;
  }
}

TEST(CkksKeySwitching, SeparateRotationsEqualHoistedOnesWithMultiPrimeDigits) {
  // A separate rotation applies the automorphism to c1 before the decomposition only with one-prime
  // digits, where both orders give the same words. With digits of several primes the fast base
  // conversion's overflow depends on the residues (3-prime digits: c1 o g decomposes into other words
  // than the permuted decomposition of c1), so it permutes after the decomposition, as
  // rotate_hoisted does, and the two stay equal.
  ParameterOptions insecure;
  insecure.allow_insecure = true;
  const std::vector<CkksParameters> cases = {
      CkksParameters::from_bit_sizes(8192, {45, 35, 35, 35, 35}, {50, 50}, insecure),                // 2-prime digits
      CkksParameters::from_bit_sizes(8192, {45, 30, 30, 30, 30, 30, 30}, {40, 40, 40}, insecure)};  // 3-prime digits
  for (const auto& params : cases) {
    ASSERT_GT(params.digit_size(), 1u);
    auto ctx = CkksContext::create(params);
    KeyGenerator keygen(ctx);
    const std::vector<int> steps = {1, -5, 100};
    const auto gk = keygen.create_galois_keys(steps, true);
    CkksEncoder encoder(ctx);
    Encryptor enc(ctx, keygen.secret_key());
    Evaluator ev(ctx);
    const Ciphertext c = enc.encrypt(encoder.encode(random_vector(encoder.max_slots(), -1, 1, 70), 0x1p30));
    const auto hoisted = ev.rotate_hoisted(c, steps, gk);
    for (std::size_t k = 0; k < steps.size(); ++k) {
      const Ciphertext sep = ev.rotate(c, steps[k], gk);
      ASSERT_EQ(sep.word_count(), hoisted[k].word_count());
      EXPECT_TRUE(std::equal(sep.poly(0), sep.poly(0) + sep.word_count(), hoisted[k].poly(0)))
          << params.describe() << ", step " << steps[k];
    }
  }
}

TEST(CkksKeySwitching, ErrorIsSpreadEvenlyOverTheSlots) {
  // Key switching adds sum_d digit_d * e_d / P plus the error of the division by P. A non-zero mean
  // per coefficient in either (digits taken in [0, Q_d), or the division's base-conversion overflow
  // left uncompensated) becomes mean * (1 + X + ... + X^(N-1)) * e_d (or * s), which the canonical
  // embedding concentrates in the slot of root exp(i pi / N): slot 0 for the division's error, slot
  // n - step for the digits' (they are permuted with the rotation). Those slots then carry 40 to 200
  // times the median slot error (the seal-n8192 demo lost 3 to 5 bits at its rotation). Here the error
  // of each rotation alone, in each of those two slots against the median over all slots, averaged
  // over 6 rotations, for 1, 2 and 3 special primes and 1- to 3-prime digits: about 1 for a centered
  // error (single ratios reach 7, so the average, not the worst, is bounded), 40 to 200 without it.
  ParameterOptions insecure;
  insecure.allow_insecure = true;
  const std::vector<std::pair<CkksParameters, double>> cases = {
      {CkksParameters::preset("seal-n8192"), 0x1p40},                                                      // K=1, alpha=1
      {CkksParameters::from_bit_sizes(8192, {45, 35, 35, 35, 35}, {50, 50}, insecure), 0x1p35},          // K=2, alpha=2
      {CkksParameters::from_bit_sizes(8192, {45, 30, 30, 30, 30, 30, 30}, {40, 40, 40}, insecure), 0x1p30}};  // K=3, alpha=3
  const std::vector<int> steps = {1, 2, 3, -1, 5, -7};
  for (const auto& [params, scale] : cases) {
    auto ctx = CkksContext::create(params);
    KeyGenerator keygen(ctx);
    const auto gk = keygen.create_galois_keys(steps, false);
    CkksEncoder encoder(ctx);
    Encryptor enc(ctx, keygen.secret_key());
    Decryptor dec(ctx, keygen.secret_key());
    Evaluator ev(ctx);
    const std::size_t n = encoder.max_slots();
    const auto x = random_vector(n, -1, 1, 60);
    for (std::size_t level : {ctx->max_level(), ctx->max_level() - 1}) {
      Plaintext px;
      encoder.encode(x, scale, level, px);
      const Ciphertext c = enc.encrypt(px);
      const auto before = encoder.decode_complex(dec.decrypt(c));
      double at_zero = 0, at_step = 0;  // sums of the ratios
      for (int step : steps) {
        const std::size_t shift = static_cast<std::size_t>((step % static_cast<long>(n) + static_cast<long>(n))) % n;
        const auto after = encoder.decode_complex(dec.decrypt(ev.rotate(c, step, gk)));
        std::vector<double> err(n);
        for (std::size_t i = 0; i < n; ++i) err[i] = std::abs(after[i] - before[(i + shift) % n]);
        const double e0 = err[0], es = err[(n - shift) % n];
        std::nth_element(err.begin(), err.begin() + static_cast<long>(n / 2), err.end());
        ASSERT_GT(err[n / 2], 0.0);
        at_zero += e0 / err[n / 2];
        at_step += es / err[n / 2];
      }
      at_zero /= static_cast<double>(steps.size());
      at_step /= static_cast<double>(steps.size());
      std::printf("%s, level %zu: key-switching error in slot 0 / slot n - step: %.1f / %.1f times the median\n",
                  params.describe().c_str(), level, at_zero, at_step);
      EXPECT_LT(at_zero, 5.0) << params.describe() << ", level " << level;
      EXPECT_LT(at_step, 5.0) << params.describe() << ", level " << level;
    }
  }
}
