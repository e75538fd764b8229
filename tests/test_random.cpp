// The randomness behind keys and encryption: the samplers' distributions, the seeded streams, and
// the noise actually present in keys and fresh ciphertexts. Decryption tests alone would pass with a
// zero secret key or noiseless encryption; these would not. Every bound is at least 6 standard
// deviations of its statistic (a false failure is rarer than 1 in 10^8), and far from what a zero,
// constant or periodic sampler gives.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

#include "ckks/ckks.h"
#include "ring/kernels.h"
#include "ring/primes.h"
#include "test_util.h"

using namespace hecnn::ckks;

namespace {

struct Moments {
  double mean = 0, variance = 0;
};

template <typename T>
Moments moments(const std::vector<T>& v) {
  Moments m;
  for (T x : v) m.mean += static_cast<double>(x);
  m.mean /= static_cast<double>(v.size());
  for (T x : v) m.variance += (static_cast<double>(x) - m.mean) * (static_cast<double>(x) - m.mean);
  m.variance /= static_cast<double>(v.size() - 1);
  return m;
}

// Pearson correlation of two equally long sequences.
template <typename T, typename U>
double correlation(const std::vector<T>& a, const std::vector<U>& b) {
  const Moments ma = moments(a), mb = moments(b);
  double c = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    c += (static_cast<double>(a[i]) - ma.mean) * (static_cast<double>(b[i]) - mb.mean);
  }
  return c / static_cast<double>(a.size() - 1) / std::sqrt(ma.variance * mb.variance);
}

// Binomial count of `n` trials with probability p: |count - n p| within 6 standard deviations.
void expect_binomial(std::size_t count, std::size_t n, double p, const std::string& what) {
  const double sd = std::sqrt(static_cast<double>(n) * p * (1 - p));
  EXPECT_NEAR(static_cast<double>(count), static_cast<double>(n) * p, 6 * sd) << what;
}

// Pearson's chi-square statistic of observed counts against equal expected counts.
double chi_square_uniform(const std::vector<std::size_t>& counts) {
  const double total = static_cast<double>(std::accumulate(counts.begin(), counts.end(), std::size_t{0}));
  const double expect = total / static_cast<double>(counts.size());
  double chi = 0;
  for (std::size_t c : counts) chi += (static_cast<double>(c) - expect) * (static_cast<double>(c) - expect) / expect;
  return chi;
}

Seed seed_from(std::uint8_t first) {
  Seed s;
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(first + i);
  return s;
}

std::vector<std::uint8_t> stream(const Seed& seed, std::uint64_t domain, std::size_t len) {
  Prng p(seed, domain);
  std::vector<std::uint8_t> out(len);
  p.fill(out.data(), len);
  return out;
}

// Fraction of positions where two byte streams agree (1/256 for independent streams).
double equal_fraction(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  std::size_t eq = 0;
  for (std::size_t i = 0; i < a.size(); ++i) eq += a[i] == b[i];
  return static_cast<double>(eq) / static_cast<double>(a.size());
}

constexpr std::size_t kSamples = std::size_t{1} << 18;

}  // namespace

TEST(Samplers, TernaryIsUniformOverMinusOneZeroOne) {
  Prng prng(seed_from(1));
  std::vector<std::int8_t> t(kSamples);
  sample_ternary(prng, t.size(), t.data());
  std::map<int, std::size_t> counts;
  for (auto v : t) ++counts[v];
  ASSERT_EQ(counts.size(), 3u) << "support must be exactly {-1, 0, 1}";
  for (int v : {-1, 0, 1}) {
    ASSERT_EQ(counts.count(v), 1u) << v;
    expect_binomial(counts[v], t.size(), 1.0 / 3, "frequency of " + std::to_string(v));
  }
  const Moments m = moments(t);
  // Standard deviation of the mean: sqrt(2/3 / n) = 0.0016; of the variance: sqrt((2/3 - 4/9) / n).
  EXPECT_NEAR(m.mean, 0.0, 6 * std::sqrt(2.0 / 3 / kSamples));
  EXPECT_NEAR(m.variance, 2.0 / 3, 6 * std::sqrt((2.0 / 3 - 4.0 / 9) / kSamples));
  // Consecutive pairs: all 9 equally likely (a periodic or repeating sampler has the right
  // frequencies but not this). Chi-square with 8 degrees of freedom: P(> 60) < 1e-9.
  std::vector<std::size_t> pairs(9, 0);
  for (std::size_t i = 0; i + 1 < t.size(); i += 2) ++pairs[static_cast<std::size_t>((t[i] + 1) * 3 + (t[i + 1] + 1))];
  EXPECT_LT(chi_square_uniform(pairs), 60.0);
}

TEST(Samplers, GaussianHasDeviation3Point2ClippedAt6Sigma) {
  Prng prng(seed_from(2));
  std::vector<std::int64_t> g(kSamples);
  sample_gaussian(prng, g.size(), g.data());
  const Moments m = moments(g);
  // Rounding adds 1/12 to the variance sigma^2 = 10.24 (clipping removes ~1e-9 of it).
  const double var = kErrorStdDev * kErrorStdDev + 1.0 / 12;
  EXPECT_NEAR(m.mean, 0.0, 6 * kErrorStdDev / std::sqrt(static_cast<double>(kSamples)));
  EXPECT_NEAR(m.variance, var, 6 * var * std::sqrt(2.0 / kSamples));  // sd of a Gaussian sample variance
  std::size_t zero = 0, positive = 0, negative = 0, beyond_3_sigma = 0;
  std::int64_t largest = 0;
  for (auto v : g) {
    zero += v == 0;
    positive += v > 0;
    negative += v < 0;
    beyond_3_sigma += std::llabs(v) > 3 * kErrorStdDev;
    largest = std::max(largest, static_cast<std::int64_t>(std::llabs(v)));
  }
  EXPECT_LE(largest, static_cast<std::int64_t>(std::lround(6 * kErrorStdDev))) << "clipped at 6 sigma (19.2)";
  EXPECT_GE(largest, 13) << "the tails are missing: P(|x| > 12.5) = 1e-4 per sample";
  // P(round(x) = 0) = P(|x| < 0.5) for x ~ N(0, 3.2^2): erf(0.5 / (3.2 sqrt 2)) = 0.1241.
  expect_binomial(zero, g.size(), std::erf(0.5 / (kErrorStdDev * std::sqrt(2.0))), "frequency of 0");
  // |round(x)| > 9.6 means |x| >= 9.5: erfc(9.5 / (3.2 sqrt 2)) = 0.00299.
  expect_binomial(beyond_3_sigma, g.size(), std::erfc(9.5 / (kErrorStdDev * std::sqrt(2.0))), "beyond 3 sigma");
  // Symmetric: positive and negative values equally likely among the non-zero ones.
  expect_binomial(positive, positive + negative, 0.5, "positive among non-zero");
  // Consecutive samples are uncorrelated.
  std::vector<std::int64_t> even, odd;
  for (std::size_t i = 0; i + 1 < g.size(); i += 2) {
    even.push_back(g[i]);
    odd.push_back(g[i + 1]);
  }
  EXPECT_NEAR(correlation(even, odd), 0.0, 6 / std::sqrt(static_cast<double>(even.size())));
}

// Seeded keys and ciphertexts are expanded again on loading, so the sampler must keep drawing the
// same values: the bulk sampler equals word-by-word rejection sampling of the stream, and leaves the
// stream where that would (also across whole-block fills and a 20-bit prime's many rejections).
TEST(Samplers, UniformKeepsTheWordByWordStream) {
  std::vector<Modulus> moduli;
  for (int bits : {33, 47, 49, 60, 20}) moduli.emplace_back(hecnn::ring::ntt_primes(bits, 1024, 1)[0]);
  for (std::size_t n : {std::size_t{16384}, std::size_t{1000}, std::size_t{3}}) {
    Prng bulk(seed_from(9), 5), words(seed_from(9), 5);
    std::vector<u64> got(moduli.size() * n), want(moduli.size() * n);
    sample_uniform(bulk, moduli, n, got.data());
    for (std::size_t i = 0; i < moduli.size(); ++i) {
      const u64 q = moduli[i].value, mask = (u64{1} << moduli[i].bits) - 1;
      for (std::size_t j = 0; j < n; ++j) {
        u64 v;
        do {
          v = words.next_u64() & mask;
        } while (v >= q);
        want[i * n + j] = v;
      }
    }
    EXPECT_EQ(got, want) << n;
    EXPECT_EQ(bulk.next_u64(), words.next_u64()) << n;
  }
}

TEST(Samplers, UniformIsBelowEachModulusAndIndependentPerLimb) {
  const std::size_t n = std::size_t{1} << 16;
  std::vector<Modulus> moduli;
  for (int bits : {60, 50, 40, 30, 20}) moduli.emplace_back(hecnn::ring::ntt_primes(bits, 1024, 1)[0]);
  moduli.emplace_back(hecnn::ring::ntt_primes(40, 1024, 2)[1]);  // a second 40-bit prime: same mask
  Prng prng(seed_from(3));
  std::vector<u64> out(moduli.size() * n);
  sample_uniform(prng, moduli, n, out.data());
  std::vector<std::vector<double>> unit(moduli.size());  // values / q, in [0, 1)
  for (std::size_t i = 0; i < moduli.size(); ++i) {
    const u64 q = moduli[i].value;
    std::size_t odd = 0, upper = 0;
    u64 largest = 0;
    for (std::size_t j = 0; j < n; ++j) {
      const u64 v = out[i * n + j];
      ASSERT_LT(v, q) << "limb " << i;
      odd += v & 1;
      upper += v >= q / 2;
      largest = std::max(largest, v);
      unit[i].push_back(static_cast<double>(v) / static_cast<double>(q));
    }
    const Moments m = moments(unit[i]);
    const std::string what = std::to_string(moduli[i].bits) + "-bit prime";
    // Uniform on [0, 1): mean 1/2 (sd sqrt(1/12 / n)), variance 1/12 (sd sqrt(1/180 / n)).
    EXPECT_NEAR(m.mean, 0.5, 6 * std::sqrt(1.0 / 12 / n)) << what;
    EXPECT_NEAR(m.variance, 1.0 / 12, 6 * std::sqrt(1.0 / 180 / n)) << what;
    expect_binomial(odd, n, 0.5, what + ": odd values");
    expect_binomial(upper, n, 0.5, what + ": values above q/2");
    // The largest of n uniform values is below q (1 - 40/n) with probability e^-40.
    EXPECT_GT(static_cast<double>(largest), static_cast<double>(q) * (1 - 40.0 / n)) << what;
  }
  // Every pair of limbs is independent: uncorrelated, and (for the two 40-bit primes, which share a
  // mask) not the same values.
  for (std::size_t i = 0; i < moduli.size(); ++i) {
    for (std::size_t k = i + 1; k < moduli.size(); ++k) {
      EXPECT_NEAR(correlation(unit[i], unit[k]), 0.0, 6 / std::sqrt(static_cast<double>(n))) << i << ", " << k;
    }
  }
  std::size_t same = 0;
  for (std::size_t j = 0; j < n; ++j) same += out[3 * n + j] == out[5 * n + j];
  EXPECT_LE(same, 2u);  // expected 2^-24 per position
}

TEST(Samplers, StreamsDependOnSeedAndDomainOnly) {
  const std::size_t len = 3 * 4096 + 100;  // across the 4096-byte refills
  const auto a = stream(seed_from(4), 0, len);
  EXPECT_EQ(stream(seed_from(4), 0, len), a);  // deterministic
  // The same bytes whatever the read sizes: fill in odd pieces, next_u8 and next_u64.
  {
    Prng p(seed_from(4));
    std::vector<std::uint8_t> b(len);
    std::size_t pos = 0;
    for (std::size_t piece = 1; pos < len; piece = piece * 3 % 1001 + 1) {
      const std::size_t take = std::min(piece, len - pos);
      p.fill(b.data() + pos, take);
      pos += take;
    }
    EXPECT_EQ(b, a);
    Prng q(seed_from(4));
    for (std::size_t i = 0; i < 100; ++i) ASSERT_EQ(q.next_u8(), a[i]) << i;
    for (std::size_t i = 100; i + 8 <= len; i += 8) {
      const std::uint64_t v = q.next_u64();
      ASSERT_EQ(std::memcmp(&v, a.data() + i, 8), 0) << i;
    }
  }
  // Independent streams agree on 1/256 of their bytes: over len bytes, 48 +- 6 sd (sd ~ 7).
  const double n = static_cast<double>(len), p = 1.0 / 256, tol = 6 * std::sqrt(p * (1 - p) / n);
  EXPECT_NEAR(equal_fraction(a, stream(seed_from(5), 0, len)), p, tol) << "other seed";
  EXPECT_NEAR(equal_fraction(a, stream(seed_from(4), 1, len)), p, tol) << "other domain";
  EXPECT_NEAR(equal_fraction(a, stream(seed_from(4), std::uint64_t{1} << 32, len)), p, tol) << "domain's high half";
  Seed flipped = seed_from(4);
  flipped[31] ^= 0x80;
  EXPECT_NEAR(equal_fraction(a, stream(flipped, 0, len)), p, tol) << "one seed bit";
  // Successive 4096-byte buffers differ (the block counter advances).
  const std::vector<std::uint8_t> first(a.begin(), a.begin() + 4096), second(a.begin() + 4096, a.begin() + 8192);
  EXPECT_NEAR(equal_fraction(first, second), p, 6 * std::sqrt(p * (1 - p) / 4096)) << "consecutive buffers";
  // Fresh seeds differ, and so do the streams of two fresh generators.
  EXPECT_NE(random_seed(), random_seed());
  Prng f1 = Prng::fresh(), f2 = Prng::fresh();
  std::vector<std::uint8_t> s1(len), s2(len);
  f1.fill(s1.data(), len);
  f2.fill(s2.data(), len);
  EXPECT_NEAR(equal_fraction(s1, s2), p, tol) << "fresh generators";
  // The stream is ChaCha20 (IETF) keyed by the seed, nonce = domain (little-endian) then 4 zero
  // bytes, block counter from 0: RFC 8439's block function test vector (section 2.3.2: key 00..1f,
  // nonce 00 00 00 09 00 00 00 4a 00 00 00 00, counter 1) is bytes 64..127. Stored seeds (keys,
  // symmetric ciphertexts) expand through this, so it must never change.
  const auto rfc = stream(seed_from(0), 0x4a00000009000000ULL, 128);
  const std::array<std::uint8_t, 16> want = {0x10, 0xf1, 0xe7, 0xe4, 0xd1, 0x3b, 0x59, 0x15,
                                             0x50, 0x0f, 0xdd, 0x1f, 0xa3, 0x20, 0x71, 0xc4};
  EXPECT_TRUE(std::equal(want.begin(), want.end(), rfc.begin() + 64));
}

// ---- keys and ciphertexts ----

namespace {

struct KeyEnv {
  ContextPtr ctx;
  std::unique_ptr<KeyGenerator> keygen;
  PublicKey pk;
  RelinKeys rk;
  GaloisKeys gk;
  std::unique_ptr<CkksEncoder> encoder;

  KeyEnv() {
    ctx = CkksContext::create(CkksParameters::from_bit_sizes(8192, {50, 40, 40}, {60}));
    keygen = std::make_unique<KeyGenerator>(ctx);
    pk = keygen->create_public_key();
    rk = keygen->create_relin_keys();
    gk = keygen->create_galois_keys({1}, false);
    encoder = std::make_unique<CkksEncoder>(ctx);
  }
  static KeyEnv& get() {
    static KeyEnv env;
    return env;
  }
  std::size_t n() const { return ctx->n(); }
  const SecretKey& sk() const { return keygen->secret_key(); }
  // Number of non-zero secret coefficients.
  std::size_t weight() const {
    return static_cast<std::size_t>(std::count_if(sk().coeffs.begin(), sk().coeffs.end(), [](auto c) { return c != 0; }));
  }

  // The integer polynomial behind `limbs` limbs of NTT-form residues (key indices idx): each limb's
  // coefficients, centered; all limbs must agree (a small integer has the same value modulo each).
  std::vector<std::int64_t> small_poly(const u64* data, const std::vector<std::size_t>& idx) const {
    std::vector<std::int64_t> out;
    for (std::size_t j = 0; j < idx.size(); ++j) {
      std::vector<u64> c(data + j * n(), data + (j + 1) * n());
      ctx->ntt(idx[j]).inverse(c.data());
      const u64 q = ctx->modulus(idx[j]).value;
      std::vector<std::int64_t> v(n());
      for (std::size_t i = 0; i < n(); ++i) {
        v[i] = c[i] > q / 2 ? -static_cast<std::int64_t>(q - c[i]) : static_cast<std::int64_t>(c[i]);
      }
      if (j == 0) out = v;
      else EXPECT_EQ(v, out) << "limb " << j << " holds another polynomial";
    }
    return out;
  }

  // e = c0 + c1 * s - m over q_0..q_l, as integers.
  std::vector<std::int64_t> noise(const Ciphertext& c, const Plaintext& m) const {
    const Plaintext d = Decryptor(ctx, sk()).decrypt(c);
    std::vector<u64> diff(d.word_count());
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i <= c.level(); ++i) {
      hecnn::ring::kernels::sub_mod(d.limb(i), m.limb(i), diff.data() + i * n(), n(), ctx->modulus(i).value);
      idx.push_back(i);
    }
    return small_poly(diff.data(), idx);
  }

  // b + a * s over every prime (q's and P), as integers.
  std::vector<std::int64_t> key_noise(const std::vector<u64>& b, const std::vector<u64>& a) const {
    const std::size_t total = ctx->chain_size() + ctx->special_count();
    std::vector<u64> e(total * n());
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < total; ++i) {
      hecnn::ring::kernels::mul_add_mod(a.data() + i * n(), sk().ntt.data() + i * n(), b.data() + i * n(),
                                        e.data() + i * n(), n(), ctx->modulus(i));
      idx.push_back(i);
    }
    return small_poly(e.data(), idx);
  }
};

// A Gaussian error polynomial from the sampler: variance sigma^2 + 1/12 within 6 standard deviations
// of the sample variance over N coefficients, mean 0, clipped.
void expect_gaussian_noise(const std::vector<std::int64_t>& e, const std::string& what) {
  ASSERT_FALSE(e.empty()) << what;
  const Moments m = moments(e);
  const double var = kErrorStdDev * kErrorStdDev + 1.0 / 12, n = static_cast<double>(e.size());
  std::printf("  %s: error mean %+.3f, standard deviation %.3f (sampler: %.3f)\n", what.c_str(), m.mean,
              std::sqrt(m.variance), std::sqrt(var));
  EXPECT_NEAR(m.variance, var, 6 * var * std::sqrt(2.0 / n)) << what;
  EXPECT_NEAR(m.mean, 0.0, 6 * kErrorStdDev / std::sqrt(n)) << what;
  for (auto v : e) ASSERT_LE(std::llabs(v), 19) << what;
}

}  // namespace

TEST(Noise, SecretKeyIsTernaryWithAThirdOfEachValue) {
  KeyEnv& env = KeyEnv::get();
  const auto& s = env.sk().coeffs;
  ASSERT_EQ(s.size(), env.n());
  std::map<int, std::size_t> counts;
  for (auto v : s) ++counts[v];
  for (int v : {-1, 0, 1}) expect_binomial(counts[v], s.size(), 1.0 / 3, "secret coefficients equal to " + std::to_string(v));
  EXPECT_EQ(counts[-1] + counts[0] + counts[1], s.size()) << "a coefficient outside {-1, 0, 1}";
  // The NTT form over every prime is that polynomial.
  std::vector<std::size_t> all(env.ctx->chain_size() + env.ctx->special_count());
  std::iota(all.begin(), all.end(), std::size_t{0});
  const auto back = env.small_poly(env.sk().ntt.data(), all);
  EXPECT_TRUE(std::equal(back.begin(), back.end(), s.begin()));
  // A second key generator draws another key: two independent keys agree on 1/3 of the positions.
  KeyGenerator other(env.ctx);
  std::size_t same = 0;
  for (std::size_t i = 0; i < s.size(); ++i) same += s[i] == other.secret_key().coeffs[i];
  expect_binomial(same, s.size(), 1.0 / 3, "positions where two secret keys agree");
}

TEST(Noise, PublicAndSwitchingKeysCarryGaussianErrors) {
  KeyEnv& env = KeyEnv::get();
  // pk: b = -a s + e.
  const auto e_pk = env.key_noise(env.pk.b, env.pk.a);
  expect_gaussian_noise(e_pk, "public key");
  // Key-switching keys: b_d = -a_d s + e_d + P * [digit d] * s', and P vanishes modulo the special
  // prime: there b_d + a_d s = e_d. Each digit's error is its own (uncorrelated with the others').
  const std::size_t L = env.ctx->chain_size(), n = env.n();
  auto special_limb = [&](const std::vector<u64>& v) { return std::vector<u64>(v.begin() + static_cast<long>(L * n), v.begin() + static_cast<long>((L + 1) * n)); };
  std::vector<std::vector<std::int64_t>> errors;
  auto check_key = [&](const KeySwitchKey& k, const std::string& what) {
    ASSERT_EQ(k.b.size(), env.ctx->params().digits()) << what;
    for (std::size_t d = 0; d < k.b.size(); ++d) {
      const auto b = special_limb(k.b[d]), a = special_limb(k.a[d]);
      std::vector<u64> e(n);
      hecnn::ring::kernels::mul_add_mod(a.data(), env.sk().ntt.data() + L * n, b.data(), e.data(), n, env.ctx->modulus(L));
      errors.push_back(env.small_poly(e.data(), {L}));
      expect_gaussian_noise(errors.back(), what + ", digit " + std::to_string(d));
    }
  };
  check_key(env.rk.key, "relinearization key");
  ASSERT_EQ(env.gk.keys.size(), 1u);
  check_key(env.gk.keys.begin()->second, "Galois key");
  errors.push_back(e_pk);
  for (std::size_t i = 0; i < errors.size(); ++i) {
    for (std::size_t j = i + 1; j < errors.size(); ++j) {
      EXPECT_NEAR(correlation(errors[i], errors[j]), 0.0, 6 / std::sqrt(static_cast<double>(n))) << i << ", " << j;
    }
  }
}

TEST(Noise, SecretKeyEncryptionHidesTheMessageBehindGaussianNoise) {
  KeyEnv& env = KeyEnv::get();
  const auto x = hecnn::test::random_vector(env.encoder->max_slots(), -1, 1, 1);
  const Plaintext pt = env.encoder->encode(x, 0x1p40);
  Encryptor enc(env.ctx, env.sk());
  const Ciphertext c = enc.encrypt(pt);
  // c0 alone (what a zero secret key would decrypt) is -a s + e + m: nothing like m.
  Plaintext c0(env.n(), c.level(), pt.slots(), pt.scale());
  std::copy(c.poly(0), c.poly(0) + c0.word_count(), c0.data());
  EXPECT_LT(hecnn::test::precision_bits(env.encoder->decode(c0), x), 0.0) << "c0 decodes to the message";
  // e = c0 + c1 s - m: the Gaussian sampler's error.
  expect_gaussian_noise(env.noise(c, pt), "symmetric encryption");
  // A second encryption of the same plaintext: another a (seed) and another error.
  const Ciphertext c2 = enc.encrypt(pt);
  ASSERT_TRUE(c.seed() && c2.seed());
  EXPECT_NE(*c.seed(), *c2.seed());
  EXPECT_NEAR(correlation(env.noise(c, pt), env.noise(c2, pt)), 0.0, 6 / std::sqrt(static_cast<double>(env.n())));
  // Encoding and encrypting in one step (the noise joins the message before its transform): the
  // same distribution, fresh seed and noise.
  Ciphertext c3;
  enc.encrypt(*env.encoder, x, 0x1p40, env.ctx->max_level(), c3);
  ASSERT_TRUE(c3.seed());
  EXPECT_NE(*c3.seed(), *c.seed());
  expect_gaussian_noise(env.noise(c3, pt), "symmetric encryption with the encoder");
  EXPECT_NEAR(correlation(env.noise(c, pt), env.noise(c3, pt)), 0.0, 6 / std::sqrt(static_cast<double>(env.n())));
}

TEST(Noise, PublicKeyEncryptionHidesTheMessageBehindRoundingNoise) {
  KeyEnv& env = KeyEnv::get();
  const auto x = hecnn::test::random_vector(env.encoder->max_slots(), -1, 1, 2);
  const Plaintext pt = env.encoder->encode(x, 0x1p40);
  Encryptor enc(env.ctx, env.pk);
  const Ciphertext c = enc.encrypt(pt);
  // c = round((b u + e0, a u + e1) / P) + (m, 0), u ternary: c0 alone is -a u s + m (+ small), not m.
  // (With u = 0 it would be m itself.)
  Plaintext c0(env.n(), c.level(), pt.slots(), pt.scale());
  std::copy(c.poly(0), c.poly(0) + c0.word_count(), c0.data());
  EXPECT_LT(hecnn::test::precision_bits(env.encoder->decode(c0), x), 0.0) << "c0 decodes to the message";
  // The noise is the rounding of the division by P, r0 + r1 s (e u + e0 + e1 s shrinks by P = 2^60
  // to nothing): variance (1 + h) / 12 for a secret of h non-zero coefficients. The sum over ~N/1.5
  // terms is near Gaussian: its sample variance has sd ~ var * sqrt(2 / N).
  const auto e = env.noise(c, pt);
  const Moments m = moments(e);
  const double var = (1.0 + static_cast<double>(env.weight())) / 12, n = static_cast<double>(e.size());
  std::printf("  public-key encryption: error mean %+.3f, standard deviation %.2f (expected %.2f)\n", m.mean,
              std::sqrt(m.variance), std::sqrt(var));
  EXPECT_NEAR(m.variance, var, 6 * var * std::sqrt(2.0 / n));
  EXPECT_NEAR(m.mean, 0.0, 6 * std::sqrt(var / n));
  // Two encryptions of one plaintext: unrelated ciphertexts and noises.
  const Ciphertext c2 = enc.encrypt(pt);
  const auto e2 = env.noise(c2, pt);
  EXPECT_NEAR(correlation(e, e2), 0.0, 6 / std::sqrt(n));
  std::size_t same = 0;
  const std::size_t words = c.word_count() / c.size();  // per component
  for (std::size_t i = 0; i < words; ++i) same += (c.poly(0)[i] == c2.poly(0)[i]) + (c.poly(1)[i] == c2.poly(1)[i]);
  EXPECT_LE(same, 2u) << "words shared by two encryptions (each ~2^-39)";
}
