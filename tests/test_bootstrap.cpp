// Bootstrapping and its circuits at small insecure parameters: every step against its plaintext
// definition (the DFT factors, CoeffsToSlots and SlotsToCoeffs, ModRaise with the encapsulation,
// EvalMod), whole bootstraps in full and sparse slots with real and complex values, 100 sequential
// multiplications, and the errors for bad inputs.
//
// Every bootstrapping test shares one context (N = 2^11) and one key set per slot count (key
// generation is the slow part); the linear-transform test has a small context of its own. The error
// bounds are the measured errors with a margin (each test states its measurement), far below what a
// wrong step gives.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <numbers>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "circuits/bootstrap.h"
#include "circuits/dft.h"
#include "circuits/linear_transform.h"
#include "circuits/mod1.h"
#include "ckks/ckks.h"
#include "common/error.h"

namespace hecnn::circuits {
namespace {

using cd = std::complex<double>;
using ckks::Ciphertext;
using ckks::u64;

// Ring degree n (insecure): q_0, `compute` levels for computation, SlotsToCoeffs 3, EvalMod up to 9 (the
// levels it does not use are left for computation), CoeffsToSlots 3.
ckks::CkksParameters test_parameters(std::size_t n = 4096, std::size_t compute = 3) {
  std::vector<int> q{50};
  for (std::size_t i = 0; i < compute; ++i) q.push_back(40);
  for (int i = 0; i < 3; ++i) q.push_back(42);
  for (int i = 0; i < 9; ++i) q.push_back(60);
  for (int i = 0; i < 3; ++i) q.push_back(56);
  ckks::ParameterOptions o;
  o.allow_insecure = true;
  return ckks::CkksParameters::from_bit_sizes(n, q, {60, 60, 60, 60}, o);
}

struct Fixture {
  ckks::ContextPtr ctx;
  ckks::KeyGenerator keygen;
  ckks::CkksEncoder encoder;
  ckks::Encryptor encryptor;
  ckks::Decryptor decryptor;
  ckks::Evaluator ev;
  explicit Fixture(const ckks::CkksParameters& p)
      : ctx(ckks::CkksContext::create(p)),
        keygen(ctx),
        encoder(ctx),
        encryptor(ctx, keygen.secret_key()),
        decryptor(ctx, keygen.secret_key()),
        ev(ctx) {}
  Ciphertext encrypt(const std::vector<cd>& v, double scale, std::size_t level) const {
    ckks::Plaintext pt;
    encoder.encode(std::span<const cd>(v), scale, level, pt);
    return encryptor.encrypt(pt);
  }
  std::vector<cd> decrypt(const Ciphertext& c) const { return encoder.decode_complex(decryptor.decrypt(c)); }
  double prime(std::size_t level) const { return static_cast<double>(ctx->modulus(level).value); }
};

// Expects `statement` to throw hecnn::Error with `word` in its message (so that the check is the
// one meant, not another that happens to fire).
#define EXPECT_ERROR(statement, word)                                                              \
  do {                                                                                             \
    try {                                                                                          \
      statement;                                                                                   \
      ADD_FAILURE() << "no hecnn::Error from " #statement;                                         \
    } catch (const hecnn::Error& e_) {                                                             \
      EXPECT_NE(std::string(e_.what()).find(word), std::string::npos) << "message: " << e_.what(); \
    }                                                                                              \
  } while (0)

std::vector<cd> random_values(std::size_t n, bool complex, unsigned seed, double bound = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-bound, bound);
  std::vector<cd> v(n);
  for (auto& x : v) x = complex ? cd(u(rng), u(rng)) : cd(u(rng), 0.0);
  return v;
}

struct Precision {
  double mean_bits, min_bits;
};
Precision precision(const std::vector<cd>& want, const std::vector<cd>& got) {
  double sum = 0, worst = 0;
  std::size_t count = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    for (double e : {std::fabs(want[i].real() - got[i].real()), std::fabs(want[i].imag() - got[i].imag())}) {
      sum += e;
      worst = std::max(worst, e);
      ++count;
    }
  }
  return {-std::log2(sum / static_cast<double>(count)), -std::log2(worst)};
}

double max_abs_error(const std::vector<cd>& a, const std::vector<cd>& b) {
  double w = 0;
  for (std::size_t i = 0; i < a.size(); ++i) w = std::max(w, std::abs(a[i] - b[i]));
  return w;
}

double max_abs(const std::vector<cd>& a) {
  double w = 0;
  for (const cd& x : a) w = std::max(w, std::abs(x));
  return w;
}

std::int64_t centered(u64 c, u64 q) {
  return c > q / 2 ? -static_cast<std::int64_t>(q - c) : static_cast<std::int64_t>(c);
}

// The coefficients of limb `l` (NTT form) of a polynomial, out of NTT form (not centered).
std::vector<u64> limb_coefficients(const ckks::CkksContext& ctx, const u64* limb, std::size_t l) {
  std::vector<u64> c(ctx.n());
  ctx.ntt(l).inverse(limb, c.data());
  return c;
}

// The coefficients of limb 0 centered modulo q_0.
std::vector<std::int64_t> centered_coefficients(const ckks::CkksContext& ctx, const u64* limb0) {
  const auto c = limb_coefficients(ctx, limb0, 0);
  std::vector<std::int64_t> out(c.size());
  for (std::size_t k = 0; k < c.size(); ++k) out[k] = centered(c[k], ctx.modulus(0).value);
  return out;
}

// The context every bootstrapping test uses: N = 2^11, 25 levels in all, 10 or more of them left for
// computation (the 100 multiplications bootstrap whenever they run out: every 10 levels or more keep
// the bootstraps few, the slow part of the whole binary); full slots (1024) and sparse (64).
constexpr std::size_t kCompute = 10;
constexpr std::size_t kRing = 2048, kFull = kRing / 2, kSparse = 64;

Fixture& shared_fixture() {
  static Fixture f(test_parameters(kRing, kCompute));
  return f;
}

struct BootSetup {
  Bootstrapper boot;
  BootstrapKeys keys;
  BootSetup(const Fixture& f, const BootstrapParameters& bp) : boot(f.ctx, bp), keys(boot.generate_keys(f.keygen)) {}
};

// The bootstrapper and its keys for `slots` slots, made once.
BootSetup& shared_setup(std::size_t slots) {
  static std::map<std::size_t, std::unique_ptr<BootSetup>> cache;
  auto& s = cache[slots];
  if (!s) {
    BootstrapParameters bp;
    bp.slots = slots;
    s = std::make_unique<BootSetup>(shared_fixture(), bp);
  }
  return *s;
}

// ---------------------------------------------------------------------------------------------
// The DFT in plaintext.

// The matrix of a list of factors applied in order, as one DiagonalMatrix.
DiagonalMatrix compose(const std::vector<DiagonalMatrix>& factors) {
  DiagonalMatrix m = factors.front();
  for (std::size_t k = 1; k < factors.size(); ++k) m = factors[k].after(m);
  return m;
}

std::vector<cd> basis(std::size_t n, std::size_t j) {
  std::vector<cd> e(n, cd(0, 0));
  e[j] = 1.0;
  return e;
}

TEST(Dft, FactorsComposeToTheReference) {
  for (std::size_t n : {4, 16, 256}) {
    const std::size_t stages = static_cast<std::size_t>(std::log2(static_cast<double>(n)));
    for (auto dir : {DftDirection::CoeffsToSlots, DftDirection::SlotsToCoeffs}) {
      // The reference's matrix, column by column.
      std::vector<std::vector<cd>> ref(n);
      for (std::size_t j = 0; j < n; ++j) ref[j] = dft_reference(basis(n, j), dir);
      for (std::size_t levels = 1; levels <= stages; ++levels) {
        SCOPED_TRACE("n " + std::to_string(n) + " levels " + std::to_string(levels) +
                     (dir == DftDirection::CoeffsToSlots ? " CtS" : " StC"));
        const cd c(0.3, -1.7);
        const auto factors = dft_factors(n, dir, levels, c);
        ASSERT_EQ(factors.size(), levels);
        // Stages grouped as evenly as possible, the larger groups first: a group of s stages has at
        // most 2^(s+1) - 1 diagonals.
        for (std::size_t f = 0; f < levels; ++f) {
          const std::size_t s = stages / levels + (f < stages % levels ? 1 : 0);
          EXPECT_EQ(factors[f].n, n);
          EXPECT_LE(factors[f].diagonals.size(), std::min(n, (std::size_t{2} << s) - 1));
        }
        // The product of the factors, entry by entry: row p, column (p + d) mod n is diagonal d at p.
        const DiagonalMatrix m = compose(factors);
        double worst = 0;
        for (std::size_t p = 0; p < n; ++p) {
          for (std::size_t j = 0; j < n; ++j) {
            const auto it = m.diagonals.find(static_cast<long>((j + n - p) % n));
            const cd got = it == m.diagonals.end() ? cd(0, 0) : it->second[p];
            worst = std::max(worst, std::abs(got - c * ref[j][p]));
          }
        }
        // And factor by factor on random vectors.
        for (unsigned seed = 0; seed < 3; ++seed) {
          const auto x = random_values(n, true, seed);
          auto want = dft_reference(x, dir);
          for (auto& v : want) v *= c;
          auto got = x;
          for (const auto& f : factors) got = f.apply(got);
          worst = std::max(worst, max_abs_error(want, got));
        }
        EXPECT_LT(worst, 1e-12);
      }
    }
  }
}

TEST(Dft, CoeffsToSlotsInvertsSlotsToCoeffs) {
  for (std::size_t n : {4, 16, 256}) {
    const std::size_t stages = static_cast<std::size_t>(std::log2(static_cast<double>(n)));
    for (std::size_t lc = 1; lc <= stages; ++lc) {
      for (std::size_t ls = 1; ls <= stages; ++ls) {
        // At 256 slots, equal and opposite budgets only (every pair takes a second).
        if (n > 16 && ls != lc && ls != stages + 1 - lc) continue;
        SCOPED_TRACE("n " + std::to_string(n) + " levels CtS " + std::to_string(lc) + " StC " + std::to_string(ls));
        auto all = dft_factors(n, DftDirection::SlotsToCoeffs, ls);
        for (auto& f : dft_factors(n, DftDirection::CoeffsToSlots, lc)) all.push_back(std::move(f));
        const DiagonalMatrix m = compose(all);
        // The identity: diagonal 0 all ones, every other diagonal zero.
        double worst = 0;
        for (const auto& [d, v] : m.diagonals)
          for (const cd& x : v) worst = std::max(worst, std::abs(x - (d == 0 ? cd(1, 0) : cd(0, 0))));
        ASSERT_TRUE(m.diagonals.count(0));
        EXPECT_LT(worst, 1e-9);
      }
    }
    // The references invert each other, both ways.
    const auto z = random_values(n, true, 11);
    EXPECT_LT(
        max_abs_error(z, dft_reference(dft_reference(z, DftDirection::SlotsToCoeffs), DftDirection::CoeffsToSlots)),
        1e-12);
    EXPECT_LT(
        max_abs_error(z, dft_reference(dft_reference(z, DftDirection::CoeffsToSlots), DftDirection::SlotsToCoeffs)),
        1e-12);
  }
}

// The reference is the encoder's transform: the coefficients of an encoding of z, complex-packed
// and bit-reversed, are dft_reference(z, CoeffsToSlots).
TEST(Dft, ReferenceMatchesTheEncoder) {
  const Fixture& f = shared_fixture();
  const std::size_t N = f.ctx->n();
  const double scale = 0x1p30;
  for (std::size_t n : {std::size_t{4}, std::size_t{16}, std::size_t{256}, kFull}) {
    SCOPED_TRACE("slots " + std::to_string(n));
    const auto z = random_values(n, true, 5 + static_cast<unsigned>(n));
    ckks::Plaintext pt;
    f.encoder.encode(std::span<const cd>(z), scale, 0, pt);
    ASSERT_EQ(pt.slots(), n);
    const auto t = centered_coefficients(*f.ctx, pt.limb(0));
    const std::size_t g = N / (2 * n);
    std::vector<cd> w(n);
    for (std::size_t i = 0; i < n; ++i)
      w[i] = cd(static_cast<double>(t[i * g]), static_cast<double>(t[(i + n) * g])) / scale;
    for (std::size_t k = 0; k < N; ++k) {
      if (k % g != 0) {
        ASSERT_EQ(t[k], 0) << "coefficient " << k << " of a sparse encoding";
      }
    }
    ckks::bit_reverse(w);
    // Rounding to integers: 2^-30 per coefficient.
    EXPECT_LT(max_abs_error(dft_reference(z, DftDirection::CoeffsToSlots), w), 1e-6);
    EXPECT_LT(max_abs_error(z, dft_reference(w, DftDirection::SlotsToCoeffs)), 1e-6);
  }
  std::vector<cd> v{1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0};
  ckks::bit_reverse(v);
  EXPECT_EQ(v, (std::vector<cd>{1.0, 5.0, 3.0, 7.0, 2.0, 6.0, 4.0, 8.0}));
}

// ---------------------------------------------------------------------------------------------
// Linear transforms.

TEST(LinearTransform, BsgsShape) {
  const std::vector<long> offsets{0, 1, 3, 7, 8, 13, 31, 40, 63, -5, 66};
  for (std::size_t bs : {0, 1, 4, 8, 64}) {
    const LtShape s = bsgs_shape(offsets, 64, bs);
    std::multiset<long> got, want;
    for (long d : offsets) want.insert(((d % 64) + 64) % 64);
    int prev = -1;
    for (const auto& g : s.giants) {
      EXPECT_GT(g.step, prev) << "giants ordered by step";
      prev = g.step;
      for (const auto& t : g.terms) {
        got.insert(term_offset(g, t, 64));
        if (bs != 0) {
          EXPECT_LT(t.baby, static_cast<int>(bs));
          EXPECT_EQ(g.step % static_cast<int>(bs), 0);
        }
      }
    }
    EXPECT_EQ(got, want);
    EXPECT_EQ(s.products(), offsets.size());
  }
  EXPECT_ERROR(bsgs_shape(offsets, 48), "power of two");
  EXPECT_ERROR(bsgs_shape({}, 64), "no diagonals");
  EXPECT_ERROR(bsgs_shape(offsets, 64, 128), "baby-step");
}

TEST(LinearTransform, ApplyMatchesThePlaintextProduct) {
  ckks::ParameterOptions o;
  o.allow_insecure = true;
  Fixture f(ckks::CkksParameters::from_bit_sizes(2048, {50, 40, 40}, {60}, o));
  const std::size_t n = 64, level = 2;
  const double delta = 0x1p40;
  const std::vector<long> offsets{0, 1, 3, 7, 8, 13, 31, 40, 63, -5, 66};
  DiagonalMatrix m;
  m.n = n;
  unsigned seed = 100;
  for (long d : offsets) m.diagonals[((d % 64) + 64) % 64] = random_values(n, true, seed++);
  const auto x = random_values(n, true, 1);
  const auto want = m.apply(x);
  for (std::size_t bs : {0, 4}) {
    const LtShape shape = bsgs_shape(offsets, n, bs);
    const auto gk = f.keygen.create_galois_keys(shape.rotation_steps(), false);
    const auto encode = [&](std::size_t g0, std::size_t g1) {
      std::vector<std::vector<ckks::Plaintext>> out(g1 - g0);
      for (std::size_t g = g0; g < g1; ++g) {
        const LtGiant& giant = shape.giants[g];
        for (const LtTerm& t : giant.terms) {
          const auto& diag = m.diagonals.at(term_offset(giant, t, n));
          std::vector<cd> u(n);  // rot(diag, -step)
          for (std::size_t r = 0; r < n; ++r) u[r] = diag[(r + n - static_cast<std::size_t>(giant.step)) % n];
          out[g - g0].emplace_back();
          f.encoder.encode(std::span<const cd>(u), f.prime(level), level, out[g - g0].back());
        }
      }
      return out;
    };
    const auto stored = encode(0, shape.giants.size());
    for (bool on_the_fly : {false, true}) {
      SCOPED_TRACE("baby size " + std::to_string(bs) + (on_the_fly ? " encoded per giant step" : " stored"));
      LtPlaintexts pts;
      std::size_t batches = 0;
      if (on_the_fly) {
        pts.encode = [&](std::size_t g0, std::size_t g1) {
          ++batches;
          return encode(g0, g1);
        };
        pts.batch_bytes = 1;  // one giant step a batch
        pts.plaintext_bytes = (level + 1) * f.ctx->n() * sizeof(u64);
      } else {
        pts.stored = &stored;
      }
      std::vector<Ciphertext> in{f.encrypt(x, delta, level)};
      auto out = apply(f.ev, gk, in, shape, pts);
      ASSERT_EQ(out.size(), 1u);
      EXPECT_TRUE(in.empty());
      EXPECT_EQ(out[0].level(), level);
      EXPECT_NEAR(out[0].scale(), delta * f.prime(level), 1e-9 * delta * f.prime(level));
      f.ev.rescale_inplace(out[0]);
      const double e = max_abs_error(want, f.decrypt(out[0]));
      std::printf("linear transform, baby size %zu%s: max error 2^%.1f, outputs up to %.1f\n", bs,
                  on_the_fly ? ", encoded per giant step" : "", std::log2(e), max_abs(want));
      // Measured 2^-30 to 2^-30.8 (outputs up to 3.9).
      EXPECT_LT(e, 0x1p-26);
      if (on_the_fly) {
        EXPECT_EQ(batches, shape.giants.size());
      }
    }
    // A missing rotation key is an error.
    std::vector<Ciphertext> in{f.encrypt(x, delta, level)};
    LtPlaintexts pts;
    pts.stored = &stored;
    EXPECT_THROW(apply(f.ev, ckks::GaloisKeys{}, in, shape, pts), hecnn::Error);
  }
}

// HomomorphicDft outside the bootstrapper: other level budgets, geometric intermediate scales, and
// plaintexts encoded at every run (plaintext_budget 0) against stored ones.
TEST(HomomorphicDftTest, LevelBudgets) {
  const Fixture& f = shared_fixture();
  const std::size_t n = kSparse, top = f.ctx->max_level();
  const auto z = random_values(n, true, 41);
  struct Case {
    DftDirection dir;
    std::size_t levels;
    bool geometric;
    std::size_t budget;
  };
  const std::size_t all = static_cast<std::size_t>(-1);
  for (const Case& k :
       {Case{DftDirection::CoeffsToSlots, 1, false, all}, Case{DftDirection::CoeffsToSlots, 2, false, 0},
        Case{DftDirection::SlotsToCoeffs, 6, true, all}, Case{DftDirection::SlotsToCoeffs, 4, true, 0},
        Case{DftDirection::SlotsToCoeffs, 2, false, all}}) {
    SCOPED_TRACE(std::string(k.dir == DftDirection::CoeffsToSlots ? "CtS" : "StC") + " levels " +
                 std::to_string(k.levels) + (k.geometric ? " geometric" : "") + (k.budget == 0 ? " on the fly" : ""));
    HomomorphicDft::Options o;
    o.slots = n;
    o.direction = k.dir;
    o.levels = k.levels;
    o.top_level = top;
    o.input_scale = 0x1p45;
    o.output_scale = 0x1p40;
    o.constant = cd(0.5, 0.25);
    o.geometric_scales = k.geometric;
    o.plaintext_budget = k.budget;
    const HomomorphicDft dft(f.ctx, o);
    if (k.budget == 0) {
      EXPECT_EQ(dft.stored_bytes(), 0u);
    } else {
      EXPECT_GT(dft.stored_bytes(), 0u);
    }
    std::vector<int> steps;
    std::vector<std::size_t> levels;
    for (const auto& [step, level] : dft.rotation_levels()) {
      steps.push_back(step);
      levels.push_back(level);
    }
    const auto gk = f.keygen.create_galois_keys(steps, levels);
    const Ciphertext out = dft.apply(f.ev, gk, f.encrypt(z, o.input_scale, top));
    EXPECT_EQ(out.level(), top - k.levels);
    EXPECT_EQ(out.level(), dft.output_level());
    EXPECT_EQ(out.scale(), o.output_scale);
    auto want = dft_reference(z, k.dir);
    for (auto& v : want) v *= o.constant;
    const double e = max_abs_error(want, f.decrypt(out)) / max_abs(want);
    std::printf("DFT %s, %zu levels%s%s: relative error 2^%.1f\n", k.dir == DftDirection::CoeffsToSlots ? "CtS" : "StC",
                k.levels, k.geometric ? ", geometric scales" : "", k.budget == 0 ? ", encoded at the run" : "",
                std::log2(e));
    // Measured 2^-27.6 to 2^-32.8 relative to the largest output (the noise at the output scale 2^40).
    EXPECT_LT(e, 0x1p-25);
    // The input must be at the top level and the input scale.
    EXPECT_ERROR(dft.apply(f.ev, gk, f.encrypt(z, o.input_scale, top - 1)), "level");
    EXPECT_ERROR(dft.apply(f.ev, gk, f.encrypt(z, 2 * o.input_scale, top)), "scale");
  }
}

// ---------------------------------------------------------------------------------------------
// The steps of bootstrapping, homomorphically, against their plaintext definitions.

TEST(BootstrapSteps, CoeffsToSlots) {
  const Fixture& f = shared_fixture();
  for (std::size_t slots : {kFull, kSparse}) {
    SCOPED_TRACE("slots " + std::to_string(slots));
    const BootSetup& s = shared_setup(slots);
    const auto& o = s.boot.cts().options();
    ASSERT_EQ(o.top_level, s.boot.top_level());
    EXPECT_EQ(o.slots, slots);
    // After ModRaise the bit-reversed coefficients y are t / q_0 = m / q_0 + I, |I| <= 16.
    const auto y = random_values(slots, true, 3, 16.0);
    const auto z = dft_reference(y, DftDirection::SlotsToCoeffs);
    const Ciphertext out = s.boot.coeffs_to_slots(f.encrypt(z, o.input_scale, o.top_level), s.keys.galois);
    EXPECT_EQ(out.level(), s.boot.cts().output_level());
    EXPECT_EQ(out.level(), s.boot.top_level() - s.boot.parameters().cts_levels);
    EXPECT_EQ(out.scale(), o.output_scale);
    std::vector<cd> want = y;
    for (auto& v : want) v *= o.constant;
    const double e = max_abs_error(want, f.decrypt(out));
    std::printf("CtS, %zu slots: max error %.3g (2^%.1f), outputs up to %.3g\n", slots, e, std::log2(e), max_abs(want));
    // Measured 2^-46.5 to 2^-46.7 (full) and 2^-49.5 to 2^-50.2 (64 slots) on outputs up to 0.65.
    EXPECT_LT(e, 0x1p-42);
  }
}

TEST(BootstrapSteps, SlotsToCoeffs) {
  const Fixture& f = shared_fixture();
  for (std::size_t slots : {kFull, kSparse}) {
    SCOPED_TRACE("slots " + std::to_string(slots));
    const BootSetup& s = shared_setup(slots);
    const auto& o = s.boot.stc().options();
    EXPECT_EQ(o.top_level, s.boot.cts().output_level() - static_cast<std::size_t>(s.boot.eval_mod_circuit().depth()));
    // EvalMod's outputs w = sin(2 pi m / q_0) (bit-reversed coefficients), back to m / scale.
    const auto z = random_values(slots, true, 4);
    std::vector<cd> w = dft_reference(z, DftDirection::CoeffsToSlots);
    for (auto& v : w) v /= o.constant;
    const Ciphertext out = s.boot.slots_to_coeffs(f.encrypt(w, o.input_scale, o.top_level), s.keys.galois);
    EXPECT_EQ(out.level(), s.boot.output_level());
    EXPECT_EQ(out.scale(), s.boot.scale());
    const double e = max_abs_error(z, f.decrypt(out));
    std::printf("StC, %zu slots: max error %.3g (2^%.1f)\n", slots, e, std::log2(e));
    // Measured 2^-28.6 to 2^-28.9 (full) and 2^-31.5 to 2^-31.9 (64 slots).
    EXPECT_LT(e, 0x1p-24);
  }
}

TEST(BootstrapSteps, EvalMod) {
  const Fixture& f = shared_fixture();
  const BootSetup& s = shared_setup(kFull);
  const EvalMod& mod = s.boot.eval_mod_circuit();
  const double q0 = f.prime(0), delta = s.boot.scale(), K = s.boot.parameters().mod.k;
  // The plaintext mirror against the sine over the whole interval.
  double sim = 0;
  for (int i = 0; i <= 20000; ++i) {
    const double x = -1.0 + i / 10000.0;
    sim = std::max(sim, std::fabs(mod.simulate(x) - std::sin(2 * std::numbers::pi * K * x)));
  }
  std::printf("EvalMod degree %d depth %d: simulate - sin max 2^%.1f\n", mod.degree(), mod.depth(), std::log2(sim));
  EXPECT_LT(sim, 1e-11);  // measured 2^-41.8
  // Homomorphically at x = (m / q_0 + I) / K.
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int> I(-16, 16);
  std::uniform_real_distribution<double> m(-1, 1);
  const std::size_t n = s.boot.slots();
  std::vector<cd> x(n), want(n), mirror(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double mm = m(rng) * delta;
    x[i] = (mm / q0 + I(rng)) / K;
    want[i] = std::sin(2 * std::numbers::pi * mm / q0);
    mirror[i] = mod.simulate(x[i].real());
  }
  const auto& co = s.boot.cts().options();
  const Ciphertext out = s.boot.eval_mod(f.encrypt(x, co.output_scale, s.boot.cts().output_level()), s.keys.relin);
  EXPECT_EQ(out.level(), s.boot.stc().options().top_level);
  EXPECT_EQ(out.scale(), s.boot.stc().options().input_scale);
  const auto got = f.decrypt(out);
  const double e_sin = max_abs_error(want, got), e_sim = max_abs_error(mirror, got);
  // In message units (m / scale): the StC constant q_0 / (2 pi scale) multiplies the error.
  const double units = q0 / (2 * std::numbers::pi * delta);
  std::printf("EvalMod: max error vs sin %.3g (message units 2^%.1f), vs simulate %.3g\n", e_sin,
              std::log2(e_sin * units), e_sim);
  // Measured 2.7e-12 to 6e-12 for both (message units 2^-31.1 to 2^-29.9).
  EXPECT_LT(e_sin, 5e-11);
  EXPECT_LT(e_sim, 5e-11);
}

TEST(BootstrapSteps, ModRaise) {
  const Fixture& f = shared_fixture();
  const auto& ctx = *f.ctx;
  const BootSetup& s = shared_setup(kFull);
  const std::size_t N = ctx.n(), top = s.boot.top_level();
  const u64 q0 = ctx.modulus(0).value;
  const Ciphertext ct = f.encrypt(random_values(s.boot.slots(), true, 9), s.boot.scale(), 0);
  const ckks::Plaintext d_in = f.decryptor.decrypt(ct);
  const auto m_in = centered_coefficients(ctx, d_in.limb(0));

  // ModRaise alone: every limb holds the centered lift of the level-0 coefficients, so decryption
  // (under the same secret) agrees with the input's exactly modulo q_0.
  const Ciphertext raised = s.boot.mod_raise(ct);
  ASSERT_EQ(raised.level(), top);
  EXPECT_EQ(raised.size(), 2u);
  EXPECT_EQ(raised.scale(), static_cast<double>(q0));
  EXPECT_EQ(raised.slots(), ct.slots());
  for (std::size_t k = 0; k < 2; ++k) {
    const auto lift = centered_coefficients(ctx, ct.poly(k));
    for (std::size_t l = 0; l <= top; ++l) {
      const auto c = limb_coefficients(ctx, raised.limb(k, l), l);
      const ckks::Modulus& q = ctx.modulus(l);
      for (std::size_t i = 0; i < N; ++i)
        ASSERT_EQ(c[i], ring::reduce_signed(lift[i], q)) << "component " << k << " limb " << l << " coefficient " << i;
    }
  }
  const ckks::Plaintext d_raised = f.decryptor.decrypt(raised);
  ASSERT_EQ(d_raised.level(), top);
  EXPECT_TRUE(std::equal(d_in.limb(0), d_in.limb(0) + N, d_raised.limb(0)));

  // With the encapsulation: to s', ModRaise, back to s. Decryption at the top level is
  // t = m' + q_0 I with m' the input's decryption plus a small noise and |I| <= (h + 1) / 2.
  Ciphertext r = s.boot.mod_raise(s.boot.encapsulate(ct, s.keys.to_sparse));
  f.ev.switch_key_inplace(r, s.keys.from_sparse);
  const ckks::Plaintext d = f.decryptor.decrypt(r);
  ASSERT_EQ(d.level(), top);
  const auto m = centered_coefficients(ctx, d.limb(0));
  std::int64_t noise = 0;
  for (std::size_t i = 0; i < N; ++i) noise = std::max(noise, std::abs(m[i] - m_in[i]));
  // I from every limb: (t_l - m') / q_0 mod q_l, centered; the same small integer in all of them
  // (then the centered CRT value of t is exactly m' + q_0 I).
  std::vector<std::int64_t> I(N);
  for (std::size_t l = 1; l <= top; ++l) {
    const ckks::Modulus& q = ctx.modulus(l);
    const u64 q0_inv = q.inv(q.reduce(q0));
    const auto t = limb_coefficients(ctx, d.limb(l), l);
    for (std::size_t i = 0; i < N; ++i) {
      const std::int64_t il = centered(q.mul(q.sub(t[i], ring::reduce_signed(m[i], q)), q0_inv), q.value);
      if (l == 1) I[i] = il;
      ASSERT_EQ(il, I[i]) << "coefficient " << i << " limb " << l;
    }
  }
  std::int64_t worst_i = 0;
  for (std::int64_t v : I) worst_i = std::max(worst_i, std::abs(v));
  std::printf("encapsulated ModRaise: decryption - input max %lld (2^%.1f), max |I| %lld\n",
              static_cast<long long>(noise), std::log2(static_cast<double>(std::max<std::int64_t>(noise, 1))),
              static_cast<long long>(worst_i));
  // Measured: noise up to 338 (2^8.4), |I| up to 6.
  EXPECT_LT(noise, std::int64_t{1} << 20);
  EXPECT_LE(static_cast<double>(worst_i), 0.5 * static_cast<double>(s.boot.parameters().ephemeral_weight + 1));
  EXPECT_GE(worst_i, 1);  // the raise does add multiples of q_0 (else this test checks nothing)
}

// Sparse slots: the trace keeps the coefficients at multiples of N / 2n (times N / 2n).
TEST(BootstrapSteps, Trace) {
  const Fixture& f = shared_fixture();
  const auto& ctx = *f.ctx;
  const BootSetup& s = shared_setup(kSparse);
  const std::size_t N = ctx.n(), g = N / (2 * kSparse), top = s.boot.top_level();
  // Any polynomial: a full-slot encryption at the top level.
  const Ciphertext ct = f.encrypt(random_values(N / 2, true, 12), 0x1p30, top);
  const auto c = centered_coefficients(ctx, f.decryptor.decrypt(ct).limb(0));
  const Ciphertext out = s.boot.trace(ct, s.keys.galois);
  EXPECT_EQ(out.level(), top);
  const auto t = centered_coefficients(ctx, f.decryptor.decrypt(out).limb(0));
  std::int64_t kept = 0, gone = 0, big = 0;
  for (std::size_t k = 0; k < N; ++k) {
    big = std::max(big, std::abs(c[k]));
    if (k % g == 0) {
      kept = std::max(kept, std::abs(t[k] - static_cast<std::int64_t>(g) * c[k]));
    } else {
      gone = std::max(gone, std::abs(t[k]));
    }
  }
  std::printf("trace: coefficients up to 2^%.1f; kept ones off by %lld, others up to %lld\n",
              std::log2(static_cast<double>(big)), static_cast<long long>(kept), static_cast<long long>(gone));
  // Measured: the rotations' noise up to 2854 (2^11.5); coefficients up to 2^26.
  EXPECT_LT(kept, 1 << 15);
  EXPECT_LT(gone, 1 << 15);
  EXPECT_GT(big, std::int64_t{1} << 22);
}

// ModRaise with the encapsulation, the trace (sparse), CoeffsToSlots and the split, composed:
// K re and K im hold t / q_0 = m / q_0 + I for the input's decrypted coefficients m.
TEST(BootstrapSteps, RaiseCoeffsToSlotsSplit) {
  const Fixture& f = shared_fixture();
  const auto& ctx = *f.ctx;
  for (std::size_t slots : {kFull, kSparse}) {
    SCOPED_TRACE("slots " + std::to_string(slots));
    const BootSetup& s = shared_setup(slots);
    const std::size_t n = slots, g = ctx.n() / (2 * n);
    const double q0 = f.prime(0), delta = s.boot.scale(), K = s.boot.parameters().mod.k;
    const Ciphertext ct = f.encrypt(random_values(n, true, 9), delta, 0);
    const auto c = centered_coefficients(ctx, f.decryptor.decrypt(ct).limb(0));
    Ciphertext r = s.boot.mod_raise(s.boot.encapsulate(ct, s.keys.to_sparse));
    f.ev.switch_key_inplace(r, s.keys.from_sparse);
    if (n < ctx.n() / 2) r = s.boot.trace(std::move(r), s.keys.galois);
    auto [re, im] = s.boot.split(s.boot.coeffs_to_slots(std::move(r), s.keys.galois), s.keys.galois);
    EXPECT_EQ(re.level(), s.boot.cts().output_level());
    EXPECT_EQ(im.scale(), s.boot.cts().options().output_scale);
    const auto x = f.decrypt(re), y = f.decrypt(im);
    std::vector<cd> got(n);
    for (std::size_t i = 0; i < n; ++i) got[i] = cd(x[i].real(), y[i].real());
    ckks::bit_reverse(got);
    double worst = 0, worst_imag = 0;
    long worst_i = 0;
    for (std::size_t i = 0; i < n; ++i) {
      worst_imag = std::max({worst_imag, std::fabs(x[i].imag()), std::fabs(y[i].imag())});
      for (int part = 0; part < 2; ++part) {
        const double m = static_cast<double>(c[(i + part * n) * g]) / q0;
        const double v = (part ? got[i].imag() : got[i].real()) * K;  // t / q_0
        const double I = std::round(v - m);
        worst_i = std::max(worst_i, std::labs(static_cast<long>(I)));
        worst = std::max(worst, std::fabs(v - I - m) * q0 / delta);
      }
    }
    std::printf("raise + CtS + split, %zu slots: message-unit error 2^%.1f, max |I| %ld\n", n, std::log2(worst),
                worst_i);
    // Measured 2^-31.0 (full) and 2^-31.7 to 2^-32.2 (64 slots) in message units; |I| up to 7.
    EXPECT_LT(worst, 0x1p-27);
    EXPECT_LE(worst_i, 16);
    EXPECT_LT(worst_imag * K * q0 / delta, 0x1p-25);  // re and im are real
  }
}

TEST(BootstrapSteps, SplitAndCombine) {
  const Fixture& f = shared_fixture();
  const BootSetup& s = shared_setup(kSparse);
  const auto z = random_values(kSparse, true, 21);
  const std::size_t level = s.boot.cts().output_level();
  auto [re, im] = s.boot.split(f.encrypt(z, f.prime(level), level), s.keys.galois);
  std::vector<cd> want_re(z.size()), want_im(z.size()), want(z.size());
  for (std::size_t i = 0; i < z.size(); ++i) {
    want_re[i] = 2 * z[i].real();
    want_im[i] = 2 * z[i].imag();
    want[i] = 2.0 * z[i];
  }
  EXPECT_LT(max_abs_error(want_re, f.decrypt(re)), 1e-9);
  EXPECT_LT(max_abs_error(want_im, f.decrypt(im)), 1e-9);
  EXPECT_LT(max_abs_error(want, f.decrypt(s.boot.combine(re, im))), 1e-9);
}

// ---------------------------------------------------------------------------------------------
// Whole bootstraps.

void check_bootstrap(std::size_t slots, bool complex, std::size_t in_level) {
  const Fixture& f = shared_fixture();
  const BootSetup& s = shared_setup(slots);
  const auto v = random_values(slots, complex, 7 + static_cast<unsigned>(in_level));
  const Ciphertext ct = f.encrypt(v, s.boot.scale(), in_level);
  const Ciphertext out = s.boot.bootstrap(ct, s.keys);
  EXPECT_EQ(out.level(), s.boot.output_level());
  EXPECT_EQ(out.level(), s.boot.top_level() - s.boot.depth());
  EXPECT_GE(out.level(), kCompute);
  EXPECT_EQ(out.scale(), s.boot.scale());
  EXPECT_EQ(out.slots(), slots);
  EXPECT_EQ(out.size(), 2u);
  const auto p = precision(v, f.decrypt(out));
  std::printf("bootstrap, %zu slots, %s, from level %zu: precision mean %.2f min %.2f bits\n", slots,
              complex ? "complex" : "real", in_level, p.mean_bits, p.min_bits);
  // The acceptance numbers (measured: full slots 27.3 to 27.7 mean, 25.1 to 25.6 min; 64 slots
  // 24.0 to 25.9 mean, 22.4 to 23.5 min, less because each coefficient is larger, see ConstantValues).
  EXPECT_GE(p.mean_bits, 20.0);
  EXPECT_GE(p.min_bits, 15.0);
}

TEST(Bootstrap, FullSlotsReal) {
  check_bootstrap(kFull, false, 0);
}
TEST(Bootstrap, FullSlotsComplex) {
  check_bootstrap(kFull, true, 0);
}
TEST(Bootstrap, SparseSlotsReal) {
  check_bootstrap(kSparse, false, 0);
}
TEST(Bootstrap, SparseSlotsComplex) {
  check_bootstrap(kSparse, true, 3);
}  // dropped to level 0 first

// Two real ciphertexts through one bootstrap (a + i b), full and sparse slots: each comes back at the
// output level and the scale, with the precision of a single bootstrap.
TEST(Bootstrap, RealPair) {
  const Fixture& f = shared_fixture();
  for (std::size_t slots : {kFull, kSparse}) {
    SCOPED_TRACE("slots " + std::to_string(slots));
    const BootSetup& s = shared_setup(slots);
    const auto a = random_values(slots, false, 31), b = random_values(slots, false, 32);
    const auto [oa, ob] = s.boot.bootstrap_pair(f.encrypt(a, s.boot.scale(), 0), f.encrypt(b, s.boot.scale(), 2), s.keys);
    for (const Ciphertext* o : {&oa, &ob}) {
      EXPECT_EQ(o->level(), s.boot.output_level());
      EXPECT_EQ(o->scale(), s.boot.scale());
      EXPECT_EQ(o->slots(), slots);
    }
    const auto pa = precision(a, f.decrypt(oa)), pb = precision(b, f.decrypt(ob));
    std::printf("bootstrap_pair, %zu slots: a %.2f / %.2f bits, b %.2f / %.2f bits (mean / min)\n", slots, pa.mean_bits,
                pa.min_bits, pb.mean_bits, pb.min_bits);
    for (const auto& p : {pa, pb}) {
      EXPECT_GE(p.mean_bits, 20.0);
      EXPECT_GE(p.min_bits, 15.0);
    }
  }
  // Each input is checked like bootstrap()'s.
  const BootSetup& s = shared_setup(kFull);
  const Ciphertext good = f.encrypt(random_values(kFull, false, 33), s.boot.scale(), 0);
  const Ciphertext bad = f.encrypt(random_values(kFull, false, 34), 2 * s.boot.scale(), 0);
  EXPECT_THROW(s.boot.bootstrap_pair(good, bad, s.keys), Error);
  EXPECT_THROW(s.boot.bootstrap_pair(bad, good, s.keys), Error);
}

// All slots 1: the whole message in the constant coefficient, m = scale, the worst case for EvalMod's
// missing arcsine: sin(2 pi m / q_0) q_0 / (2 pi) = m (1 - (2 pi m / q_0)^2 / 6), a relative 2^-17.3 at
// q_0 / scale = 2^10 (the default scale).
TEST(Bootstrap, ConstantValues) {
  const Fixture& f = shared_fixture();
  const BootSetup& s = shared_setup(kSparse);
  for (double value : {1.0, -0.5}) {
    const std::vector<cd> v(kSparse, cd(value, 0));
    const auto got = f.decrypt(s.boot.bootstrap(f.encrypt(v, s.boot.scale(), 0), s.keys));
    const auto p = precision(v, got);
    const double r = 2 * std::numbers::pi * value * s.boot.scale() / f.prime(0);
    std::printf("bootstrap of %g: precision mean %.2f min %.2f bits (curvature alone %.2f)\n", value, p.mean_bits,
                p.min_bits, -std::log2(std::fabs(value) * r * r / 6));
    // Measured 17.3 bits (1.0) and 20.3 bits (-0.5): the curvature.
    EXPECT_GE(p.min_bits, 15.0);
  }
}

TEST(Bootstrap, Depth) {
  const Fixture& f = shared_fixture();
  const BootSetup& s = shared_setup(kSparse);
  const double delta = s.boot.scale();
  std::mt19937_64 rng(77);
  std::uniform_real_distribution<double> angle(-std::numbers::pi, std::numbers::pi);
  std::vector<cd> z0(kSparse), u(kSparse), want(kSparse);
  constexpr int kProducts = 100;
  for (std::size_t i = 0; i < kSparse; ++i) {
    z0[i] = std::polar(1.0, angle(rng));
    const double theta = angle(rng);
    u[i] = std::polar(1.0, theta);
    want[i] = z0[i] * std::polar(1.0, kProducts * theta);
  }
  Ciphertext ct = f.encrypt(z0, delta, s.boot.output_level());
  int boots = 0;
  for (int k = 0; k < kProducts; ++k) {
    if (ct.level() == 0) {
      ASSERT_NEAR(ct.scale(), delta, 1e-9 * delta);
      ct = s.boot.bootstrap(ct, s.keys);
      ++boots;
    }
    // u at the scale of the prime that the rescale divides by: the product lands at scale delta.
    const std::size_t l = ct.level();
    const Ciphertext uc = f.encrypt(u, f.prime(l), l);
    Ciphertext prod;
    f.ev.multiply(ct, uc, prod);
    f.ev.relinearize_rescale(prod, s.keys.relin, ct);
    ASSERT_EQ(ct.level(), l - 1);
  }
  const auto got = f.decrypt(ct);
  const double e = max_abs_error(want, got);
  std::printf("%d products, %d bootstraps: max error %.3g (2^%.1f)\n", kProducts, boots, e, std::log2(e));
  // Each bootstrap leaves output_level() products; the first ones run on the fresh ciphertext.
  const int per = static_cast<int>(s.boot.output_level());
  EXPECT_EQ(boots, (kProducts + per - 1) / per - 1);
  // One bootstrap's bound (15 bits); measured 2^-19.2 after 9 bootstraps (2^-18.4 after 16 with 5
  // computation levels): the sine's curvature (see ConstantValues) shrinks the values a little at
  // every bootstrap, and that adds up.
  EXPECT_LE(e, 0x1p-15);
}

// ---------------------------------------------------------------------------------------------
// Errors.

TEST(BootstrapErrors, BadInputs) {
  const Fixture& f = shared_fixture();
  BootSetup& full = shared_setup(kFull);
  BootSetup& sparse = shared_setup(kSparse);
  const double delta = sparse.boot.scale();
  const auto v = random_values(kSparse, true, 31);
  const Ciphertext ok = f.encrypt(v, delta, 1);
  // Another scale.
  EXPECT_ERROR(sparse.boot.bootstrap(f.encrypt(v, 2 * delta, 0), sparse.keys), "scale");
  // Another slot count.
  EXPECT_ERROR(full.boot.bootstrap(ok, full.keys), "this bootstrapper");
  EXPECT_ERROR(sparse.boot.bootstrap(f.encrypt(random_values(kSparse / 2, true, 1), delta, 0), sparse.keys),
               "this bootstrapper");
  // Unrelinearized (at the right scale otherwise).
  Ciphertext prod = f.ev.multiply(ok, ok);
  ASSERT_EQ(prod.size(), 3u);
  prod.set_scale(delta);
  EXPECT_ERROR(sparse.boot.bootstrap(prod, sparse.keys), "relinearize");
  // Keys lacking a rotation step (one of the DFTs', one of the trace's) or conjugation.
  const auto steps = sparse.boot.rotation_levels();
  ASSERT_TRUE(steps.count(static_cast<int>(kSparse)));  // the trace's first step
  for (std::uint32_t elt : {f.ctx->galois_element(steps.begin()->first),
                            f.ctx->galois_element(static_cast<int>(kSparse)), f.ctx->conjugation_element()}) {
    auto node = sparse.keys.galois.keys.extract(elt);
    ASSERT_FALSE(node.empty());
    EXPECT_ERROR(sparse.boot.bootstrap(ok, sparse.keys), "lack");
    sparse.keys.galois.keys.insert(std::move(node));
  }
  // Keys of another bootstrapper (the full-slot keys have no trace steps).
  EXPECT_ERROR(sparse.boot.bootstrap(ok, full.keys), "lack");
  // The steps take level 0.
  EXPECT_ERROR(sparse.boot.encapsulate(ok, sparse.keys.to_sparse), "level 0");
  EXPECT_ERROR(sparse.boot.mod_raise(ok), "level 0");
  // And the inputs were fine otherwise.
  EXPECT_NO_THROW(sparse.boot.bootstrap(ok, sparse.keys));
}

TEST(BootstrapErrors, BadParameters) {
  // CtS 3 + EvalMod + StC 3 levels above q_0: a chain of exactly that many works, one fewer does not.
  {
    BootstrapParameters sparse;
    sparse.slots = kSparse;
    const std::size_t need = 6 + static_cast<std::size_t>(EvalMod(sparse.mod).depth());
    const auto chain = [](std::size_t levels) {
      ckks::ParameterOptions o;
      o.allow_insecure = true;
      std::vector<int> q{50};
      for (std::size_t i = 0; i < levels; ++i) q.push_back(i < 3 ? 42 : 56);
      return ckks::CkksContext::create(ckks::CkksParameters::from_bit_sizes(kRing, q, {60, 60, 60, 60}, o));
    };
    const auto ctx = chain(need), short_ctx = chain(need - 1);
    EXPECT_NO_THROW((Bootstrapper{ctx, sparse}));
    EXPECT_ERROR((Bootstrapper{short_ctx, sparse}), "levels");
    EXPECT_ERROR((Bootstrapper{short_ctx, BootstrapParameters{}}), "levels");
    BootstrapParameters bp = sparse;
    ++bp.cts_levels;  // one level more than the chain has
    EXPECT_ERROR((Bootstrapper{ctx, bp}), "levels");
  }
  const Fixture& f = shared_fixture();
  {
    // K must cover |I| <= (h + 1) / 2 = 16.5 for h = 32.
    BootstrapParameters bp;
    bp.slots = kSparse;
    bp.mod.k = 16;
    EXPECT_ERROR((Bootstrapper{f.ctx, bp}), "interval K");
    bp.mod.k = 16.5;
    EXPECT_NO_THROW((Bootstrapper{f.ctx, bp}));
    bp.mod.k = 9;
    bp.ephemeral_weight = 16;  // (16 + 1) / 2 = 8.5
    EXPECT_NO_THROW((Bootstrapper{f.ctx, bp}));
  }
  for (std::size_t slots : {std::size_t{3}, kRing, 2 * kRing}) {
    BootstrapParameters bp;
    bp.slots = slots;
    SCOPED_TRACE(std::to_string(slots) + " slots");
    EXPECT_ERROR((Bootstrapper{f.ctx, bp}), "slot count");
  }
  {
    BootstrapParameters bp;
    bp.scale = f.prime(0);  // no room for I
    EXPECT_ERROR((Bootstrapper{f.ctx, bp}), "scale");
  }
  // DFT level budgets: 1 .. log2(n).
  {
    HomomorphicDft::Options o;
    o.slots = 16;
    o.top_level = f.ctx->max_level();
    o.input_scale = f.prime(0);
    o.output_scale = 0x1p40;
    o.levels = 4;
    EXPECT_NO_THROW((HomomorphicDft{f.ctx, o}));
    o.levels = 5;
    EXPECT_ERROR((HomomorphicDft{f.ctx, o}), "level budget");
    o.levels = 0;
    EXPECT_ERROR((HomomorphicDft{f.ctx, o}), "level budget");
    EXPECT_ERROR(dft_factors(16, DftDirection::SlotsToCoeffs, 5), "level budget");
    EXPECT_ERROR(dft_factors(12, DftDirection::SlotsToCoeffs, 2), "power of two");
  }
  // EvalMod.
  {
    EvalModOptions o;
    o.degree = 300;
    EXPECT_ERROR(EvalMod{o}, "degree");
    o.degree = 0;
    o.k = 0.5;
    EXPECT_ERROR(EvalMod{o}, "interval K");
    o.k = 17;
    o.double_angles = 9;
    EXPECT_ERROR(EvalMod{o}, "double-angle");
  }
}

}  // namespace
}  // namespace hecnn::circuits
