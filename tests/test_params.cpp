#include <gtest/gtest.h>

#include "common/error.h"
#include "ckks/params.h"
#include "test_util.h"

using namespace hecnn::ckks;
using hecnn::test::expect_error_mentioning;

TEST(Parameters, SecurityBoundIsEnforced) {
  EXPECT_EQ(security_bound_bits(8192), 218);
  EXPECT_EQ(security_bound_bits(16384), 438);
  EXPECT_EQ(security_bound_bits(32768), 881);
  // 6 x 40 = 240 bits > 218 for N = 8192.
  try {
    CkksParameters::from_bit_sizes(8192, {40, 40, 40, 40, 40}, {40});
    FAIL() << "expected rejection";
  } catch (const hecnn::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("218"), std::string::npos) << msg;
    EXPECT_NE(msg.find("security"), std::string::npos) << msg;
  }
  const auto p = CkksParameters::from_bit_sizes(8192, {40, 40, 40, 40, 40}, {40}, {.allow_insecure = true});
  EXPECT_TRUE(p.insecure());
  EXPECT_GT(p.total_bits(), 218);
  EXPECT_NE(p.describe().find("INSECURE"), std::string::npos);
}

TEST(Parameters, SealDefaultChainsFitExactly) {
  const auto a = CkksParameters::preset("seal-n8192");
  EXPECT_EQ(a.total_bits(), 218);
  EXPECT_EQ(a.q().size(), 4u);
  const auto b = CkksParameters::preset("seal-n16384");
  EXPECT_LE(b.total_bits(), 438);
  EXPECT_GE(b.total_bits(), 437);
  EXPECT_EQ(b.q().size(), 8u);
  EXPECT_EQ(b.p().size(), 1u);
  EXPECT_NE(a.id(), b.id());
  for (const auto& name : CkksParameters::preset_names()) EXPECT_NO_THROW(CkksParameters::preset(name)) << name;
  expect_error_mentioning([&] { CkksParameters::preset("nope"); }, "unknown parameter preset 'nope'; available: boot-n65536, n16384-l7");
}

TEST(Parameters, RejectsInvalidInput) {
  expect_error_mentioning([&] { CkksParameters::from_bit_sizes(3000, {40}, {40}); }, "ring degree must be a power of two between 1024 and 65536, got 3000");
  expect_error_mentioning([&] { CkksParameters::from_bit_sizes(1 << 17, {40}, {40}); }, "ring degree must be a power of two between 1024 and 65536, got 131072");
  expect_error_mentioning([&] { CkksParameters::from_bit_sizes(8192, {}, {40}); }, "the modulus chain needs at least one prime");
  expect_error_mentioning([&] { CkksParameters::from_bit_sizes(8192, {40}, {}); }, "key switching needs at least one special prime");
  expect_error_mentioning([&] { CkksParameters::from_bit_sizes(8192, {61}, {40}); }, "prime bit size must be between 2 and 60, got 61");
  expect_error_mentioning([&] { CkksParameters::from_primes(8192, {12289}, {40961}); }, "12289 is not congruent to 1 mod 2N (not NTT-friendly)");  // 12289 != 1 mod 16384
  expect_error_mentioning([&] { CkksParameters::from_primes(8192, {1000001}, {40961}); }, "1000001 is not prime");  // not prime
  const auto p = CkksParameters::from_bit_sizes(8192, {40, 40}, {50});
  expect_error_mentioning([&] { CkksParameters::from_primes(8192, {p.q()[0], p.q()[0]}, p.p()); }, "appears twice in the chain");  // repeated
  // Special primes too small for one digit of two 40-bit primes.
  expect_error_mentioning([&] { CkksParameters::from_bit_sizes(16384, {40, 40, 40, 40}, {40}, {.digits = 2}); }, "special primes (40 bits) are too small for key-switching digits of 80 bits");
}

TEST(Parameters, DigitCount) {
  const auto a = CkksParameters::from_bit_sizes(16384, {50, 40, 40, 40, 40}, {60});
  EXPECT_EQ(a.digits(), 5u);  // 60-bit P covers one prime per digit
  const auto b = CkksParameters::from_bit_sizes(16384, {40, 40, 40, 40, 40}, {60, 60});
  EXPECT_EQ(b.digits(), 2u);  // three 40-bit primes per digit fit under 120 bits
  const auto c = CkksParameters::from_bit_sizes(16384, {40, 40, 40, 40, 40}, {60, 60}, {.digits = 5});
  EXPECT_EQ(c.digits(), 5u);
  EXPECT_NE(b.id(), c.id());
  expect_error_mentioning([&] { CkksParameters::from_bit_sizes(16384, {40, 40}, {60}, {.digits = 3}); }, "number of key-switching digits (3) exceeds the number of chain primes (2)");
}
