// Word arithmetic, prime generation, NTT and Galois permutations against slow references.
#include <gtest/gtest.h>

#include <random>

#include "ckks/context.h"
#include "common/error.h"
#include "ring/modarith.h"
#include "ring/ntt.h"
#include "ckks/polyops.h"
#include "ring/primes.h"
#include "test_util.h"

using namespace hecnn::ckks;
using namespace hecnn::ring;
using hecnn::test::expect_error_mentioning;

TEST(ModArith, BarrettMatchesDivision) {
  std::mt19937_64 rng(1);
  for (int bits : {20, 40, 50, 59, 60}) {
    const u64 q = ntt_primes(bits, 1024, 1)[0];
    const Modulus m(q);
    for (int i = 0; i < 20000; ++i) {
      const u64 a = rng() % q, b = rng() % q;
      ASSERT_EQ(m.mul(a, b), static_cast<u64>(static_cast<u128>(a) * b % q));
      const u128 big = (static_cast<u128>(rng()) << 64) | rng();
      ASSERT_EQ(m.reduce128(big), static_cast<u64>(big % q));
      const u64 x = rng();
      ASSERT_EQ(m.reduce(x), x % q);
      ASSERT_EQ(mul_shoup(x, b, shoup(b, q), q), static_cast<u64>(static_cast<u128>(x) * b % q));
    }
    EXPECT_EQ(m.mul(m.inv(12345), 12345), 1u);
    expect_error_mentioning([&] { m.inv(0); }, "no modular inverse of 0");
  }
}

TEST(ModArith, SignedAndLargeDoubleResidues) {
  const Modulus m(ntt_primes(50, 1024, 1)[0]);
  EXPECT_EQ(reduce_signed(-1, m), m.value - 1);
  EXPECT_EQ(reduce_signed(INT64_MIN, m), static_cast<u64>((static_cast<__int128>(INT64_MIN) % m.value + m.value) % m.value));
  // 2^70 + 2^20 exactly representable; residue via 128-bit arithmetic.
  const double big = std::ldexp(1.0, 70) + std::ldexp(1.0, 20);
  const u128 exact = (static_cast<u128>(1) << 70) + (static_cast<u128>(1) << 20);
  EXPECT_EQ(detail::double_to_residue(big, m), static_cast<u64>(exact % m.value));
  EXPECT_EQ(detail::double_to_residue(-big, m), m.value - static_cast<u64>(exact % m.value));
  EXPECT_EQ(detail::double_to_residue(-2.6, m), m.value - 3);
  expect_error_mentioning([&] { detail::double_to_residue(std::nan(""), m); }, "cannot encode a non-finite value (NaN or infinity)");
}

TEST(Primes, NttFriendlyAndDistinct) {
  EXPECT_TRUE(is_prime(2305843009213693951ULL));  // 2^61 - 1
  EXPECT_FALSE(is_prime(3215031751ULL));          // strong pseudoprime to bases 2, 3, 5, 7
  const auto ps = ntt_primes(40, 8192, 5);
  ASSERT_EQ(ps.size(), 5u);
  for (std::size_t i = 0; i < ps.size(); ++i) {
    EXPECT_TRUE(is_prime(ps[i]));
    EXPECT_EQ(ps[i] % 16384, 1u);
    EXPECT_EQ(64 - __builtin_clzll(ps[i]), 40);
    if (i) {
      EXPECT_LT(ps[i], ps[i - 1]);
    }
  }
  expect_error_mentioning([&] { ntt_primes(61, 8192, 1); }, "prime bit size must be between 2 and 60, got 61");
}

namespace {
// Schoolbook negacyclic product.
std::vector<u64> negacyclic(const std::vector<u64>& a, const std::vector<u64>& b, const Modulus& m) {
  const std::size_t n = a.size();
  std::vector<u64> r(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      const u64 p = m.mul(a[i], b[j]);
      const std::size_t k = i + j;
      if (k < n) r[k] = m.add(r[k], p);
      else r[k - n] = m.sub(r[k - n], p);
    }
  }
  return r;
}
}  // namespace

TEST(Ntt, RoundTripAndConvolution) {
  std::mt19937_64 rng(2);
  for (int bits : {30, 50, 60}) {
    const std::size_t n = 256;
    const u64 q = ntt_primes(bits, n, 1)[0];
    NttTables t(q, n);
    const Modulus& m = t.modulus();
    std::vector<u64> a(n), b(n);
    for (auto& x : a) x = rng() % q;
    for (auto& x : b) x = rng() % q;
    const auto want = negacyclic(a, b, m);
    auto fa = a, fb = b;
    t.forward(fa.data());
    t.forward(fb.data());
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_LT(fa[i], q);
      fa[i] = m.mul(fa[i], fb[i]);
    }
    t.inverse(fa.data());
    EXPECT_EQ(fa, want);
    auto rt = a;
    t.forward(rt.data());
    t.inverse(rt.data());
    EXPECT_EQ(rt, a);
  }
}

TEST(Ntt, GaloisPermutationMatchesCoefficientAutomorphism) {
  const auto params = CkksParameters::from_bit_sizes(1024, {30}, {30}, {.allow_insecure = true});
  auto ctx = CkksContext::create(params);
  const std::size_t n = ctx->n();
  const Modulus& m = ctx->modulus(0);
  std::mt19937_64 rng(3);
  std::vector<u64> a(n);
  for (auto& x : a) x = rng() % m.value;
  for (std::uint32_t g : {ctx->galois_element(1), ctx->galois_element(-7), ctx->conjugation_element()}) {
    std::vector<u64> want(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t j = (i * g) % (2 * n);
      if (j < n) want[j] = a[i];
      else want[j - n] = m.neg(a[i]);
    }
    ctx->ntt(0).forward(want.data());
    auto fa = a;
    ctx->ntt(0).forward(fa.data());
    const auto perm = ctx->galois_permutation_ntt(g);
    std::vector<u64> got(n);
    for (std::size_t i = 0; i < n; ++i) got[i] = fa[perm[i]];
    EXPECT_EQ(got, want) << "galois element " << g;
  }
}
