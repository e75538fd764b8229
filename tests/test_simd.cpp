// Every vectorized kernel against the portable one on the same inputs: results must be identical.
// One instance per vector level (avx2, avx512, ifma); a level this CPU lacks is reported skipped.
#include <gtest/gtest.h>

#include <random>

#include "common/error.h"
#include "ring/kernels.h"
#include "ring/ntt.h"
#include "ring/primes.h"
#include "ring/simd.h"
#include "test_util.h"

using namespace hecnn::ring;

namespace {

// Restores the active level when a test ends.
class SimdLevelGuard {
 public:
  SimdLevelGuard() : saved_(simd_level()) {}
  ~SimdLevelGuard() { set_simd_level(saved_); }

 private:
  SimdLevel saved_;
};

// One vector level against the portable kernels; skipped (not passed) where the CPU lacks it.
class SimdLevels : public ::testing::TestWithParam<SimdLevel> {
 protected:
  void SetUp() override {
    if (!simd_level_supported(GetParam())) GTEST_SKIP() << "CPU lacks " << simd_level_name(GetParam());
  }
  SimdLevelGuard guard_;
};

std::vector<u64> random_below(std::size_t n, u64 bound, std::mt19937_64& rng) {
  std::vector<u64> v(n);
  for (auto& x : v) x = rng() % bound;
  return v;
}

// Primes of several sizes: 60 and 59 bits (64-bit lanes), 50 bits (largest for IFMA: just below
// 2^50), 49 and 40 bits, and small ones.
std::vector<u64> test_primes(std::size_t n) {
  std::vector<u64> ps;
  for (int bits : {60, 59, 50, 49, 40, 30, 20}) ps.push_back(ntt_primes(bits, n, 1)[0]);
  return ps;
}

}  // namespace

TEST(Simd, LevelApi) {
  SimdLevelGuard guard;
  EXPECT_TRUE(simd_level_supported(SimdLevel::portable));
  EXPECT_EQ(supported_simd_levels().front(), SimdLevel::portable);
  EXPECT_EQ(supported_simd_levels().back(), detected_simd_level());
  // Every level: settable exactly when supported, else refused with a message; its name parses back.
  for (SimdLevel l : {SimdLevel::portable, SimdLevel::avx2, SimdLevel::avx512, SimdLevel::ifma}) {
    EXPECT_EQ(parse_simd_level(simd_level_name(l)), l);
    if (simd_level_supported(l)) {
      set_simd_level(l);
      EXPECT_EQ(simd_level(), l);
    } else {
      hecnn::test::expect_error_mentioning([&] { set_simd_level(l); },
                                           std::string("SIMD level ") + simd_level_name(l) + " is not supported by this CPU");
    }
  }
  hecnn::test::expect_error_mentioning([] { parse_simd_level("sse9"); }, "unknown SIMD level 'sse9'");
}

TEST_P(SimdLevels, NttMatchesPortable) {
  const SimdLevel l = GetParam();
  std::mt19937_64 rng(11);
  for (std::size_t n : {std::size_t{16}, std::size_t{32}, std::size_t{64}, std::size_t{256}, std::size_t{2048},
                        std::size_t{4096}, std::size_t{8192}, std::size_t{16384}, std::size_t{32768}, std::size_t{65536}}) {
    for (u64 q : test_primes(n)) {
      const NttTables t(q, n);
      // Forward accepts [0, 4q), inverse [0, 2q).
      const auto in_fwd = random_below(n, 4 * q, rng), in_inv = random_below(n, 2 * q, rng);
      const auto in_off = random_below(n, 3 * q, rng);  // plus an offset below q
      const u64 offset = rng() % q;
      set_simd_level(SimdLevel::portable);
      auto want_f = in_fwd, want_i = in_inv;
      t.forward(want_f.data());
      t.inverse(want_i.data());
      std::vector<u64> want_o(n);
      t.forward(in_off.data(), want_o.data(), offset);
      {
        auto shifted = in_off;
        for (auto& x : shifted) x = (x + offset) % q;
        t.forward(shifted.data());
        ASSERT_EQ(shifted, want_o) << "portable offset forward, n=" << n;
      }
      for (u64 x : want_f) ASSERT_LT(x, q);
      {
        set_simd_level(l);
        auto f = in_fwd, i = in_inv;
        t.forward(f.data());
        t.inverse(i.data());
        ASSERT_EQ(f, want_f) << simd_level_name(l) << " forward, n=" << n << " q=" << q;
        ASSERT_EQ(i, want_i) << simd_level_name(l) << " inverse, n=" << n << " q=" << q;
        std::vector<u64> f2(n), i2(n);  // out of place
        t.forward(in_fwd.data(), f2.data());
        t.inverse(in_inv.data(), i2.data());
        ASSERT_EQ(f2, want_f) << simd_level_name(l);
        ASSERT_EQ(i2, want_i) << simd_level_name(l);
        t.forward(in_off.data(), f2.data(), offset);
        ASSERT_EQ(f2, want_o) << simd_level_name(l) << " offset forward, n=" << n << " q=" << q;
        auto rt = want_f;  // round trip
        t.inverse(rt.data());
        t.forward(rt.data());
        ASSERT_EQ(rt, want_f) << simd_level_name(l);
        // Scaled inverse: the output times c, word for word.
        const u64 c = rng() % q;
        std::vector<u64> scaled(n);
        t.inverse(in_inv.data(), scaled.data(), t.inverse_scale(c));
        for (std::size_t k = 0; k < n; ++k) {
          ASSERT_EQ(scaled[k], static_cast<u64>(static_cast<u128>(want_i[k]) * c % q))
              << simd_level_name(l) << " scaled inverse, n=" << n << " q=" << q << " k=" << k;
        }
      }
    }
  }
}

TEST_P(SimdLevels, ElementwiseKernelsMatchPortable) {
  const SimdLevel l = GetParam();
  std::mt19937_64 rng(12);
  const std::size_t n = 1000 + 7;  // not a multiple of the lane count: exercises the tails
  for (u64 qv : test_primes(1024)) {
    const Modulus m(qv);
    const auto a = random_below(n, qv, rng), b = random_below(n, qv, rng), c = random_below(n, qv, rng);
    const auto d = random_below(n, qv, rng), a4 = random_below(n, 4 * qv, rng);
    std::vector<u64> wide(n);
    for (auto& x : wide) x = rng();
    std::vector<std::int64_t> signed_wide(n);
    for (auto& x : signed_wide) x = static_cast<std::int64_t>(rng());
    signed_wide[0] = INT64_MIN;
    signed_wide[1] = INT64_MAX;
    signed_wide[2] = -1;
    signed_wide[3] = -static_cast<std::int64_t>(qv);
    const MulConst w(rng() % qv, qv);
    const u64 s = rng() % qv;
    std::vector<std::uint32_t> perm(n);
    for (std::size_t i = 0; i < n; ++i) perm[i] = static_cast<std::uint32_t>(i);
    std::shuffle(perm.begin(), perm.end(), rng);
    // Shaped like a Galois permutation in NTT order (the vector levels' load-and-permute path): every
    // aligned block of 8 outputs from one aligned block of 8 inputs, in some lane order; a few blocks
    // that repeat a lane or mix two blocks (the gather path); the tail a plain shuffle.
    std::vector<std::uint32_t> block_perm(n);
    {
      const std::size_t nb = n / 8;
      std::vector<std::uint32_t> blocks(nb);
      for (std::size_t b = 0; b < nb; ++b) blocks[b] = static_cast<std::uint32_t>(b);
      std::shuffle(blocks.begin(), blocks.end(), rng);
      for (std::size_t b = 0; b < nb; ++b) {
        std::uint32_t lanes[8] = {0, 1, 2, 3, 4, 5, 6, 7};
        std::shuffle(lanes, lanes + 8, rng);
        for (std::size_t k = 0; k < 8; ++k) block_perm[b * 8 + k] = blocks[b] * 8 + lanes[k];
      }
      for (std::size_t i = nb * 8; i < n; ++i) block_perm[i] = static_cast<std::uint32_t>(i);
      std::shuffle(block_perm.begin() + static_cast<long>(nb * 8), block_perm.end(), rng);
      block_perm[3 * 8 + 5] = block_perm[3 * 8 + 2];  // a repeated lane
      block_perm[7 * 8 + 1] = block_perm[9 * 8 + 4];  // two source blocks
    }

    // Runs every kernel at the active level; returns all outputs concatenated.
    auto run_all = [&]() {
      std::vector<std::vector<u64>> outs;
      auto out = [&]() -> u64* {
        outs.emplace_back(n, 0);
        return outs.back().data();
      };
      kernels::add_mod(a.data(), b.data(), out(), n, qv);
      kernels::sub_mod(a.data(), b.data(), out(), n, qv);
      kernels::neg_mod(a.data(), out(), n, qv);
      kernels::add_scalar_mod(a.data(), s, out(), n, qv);
      kernels::mul_scalar_mod(a4.data(), w, out(), n, qv);
      kernels::sub_mul_scalar_mod(a.data(), b.data(), s, w, out(), n, qv, false);
      u64* acc = out();
      std::copy(c.begin(), c.end(), acc);
      kernels::sub_mul_scalar_mod(a.data(), b.data(), s, w, acc, n, qv, true);
      kernels::mul_scalar_add_mod(a.data(), w, c.data(), out(), n, qv);
      kernels::sub_mul_add_scalar_mod(a.data(), b.data(), w, c.data(), MulConst(s, qv), out(), n, qv);
      kernels::reduce_mod(wide.data(), out(), n, m);
      kernels::reduce_signed_mod(signed_wide.data(), out(), n, m);
      kernels::mul_mod(a.data(), b.data(), out(), n, m);
      kernels::mul_add_mod(a.data(), b.data(), c.data(), out(), n, m);
      u64 *d0 = out(), *d1 = out(), *d2 = out();
      kernels::tensor_mod(a.data(), b.data(), c.data(), d.data(), d0, d1, d2, n, m);
      d0 = out(), d1 = out(), d2 = out();
      kernels::square_mod(a.data(), b.data(), d0, d1, d2, n, m);
      kernels::permute(a.data(), perm.data(), out(), n);
      kernels::permute(a.data(), block_perm.data(), out(), n);
      // In place (out aliasing an input).
      u64* inplace = out();
      std::copy(a.begin(), a.end(), inplace);
      kernels::mul_mod(inplace, b.data(), inplace, n, m);
      // Inner products over 1, 3, 8 and 11 digits (groups of 8 in the IFMA kernel), with no
      // permutation, a random one and a block-shaped one; base-conversion sums over 1, 2 and 9 terms.
      for (std::size_t D : {std::size_t{1}, std::size_t{3}, std::size_t{8}, std::size_t{11}}) {
        std::vector<std::vector<u64>> xs, ks0, ks1;
        std::mt19937_64 r2(D);
        std::vector<const u64*> xp, k0p, k1p;
        for (std::size_t i = 0; i < D; ++i) {
          xs.push_back(random_below(n, qv, r2));
          ks0.push_back(random_below(n, qv, r2));
          ks1.push_back(random_below(n, qv, r2));
        }
        for (std::size_t i = 0; i < D; ++i) {
          xp.push_back(xs[i].data());
          k0p.push_back(ks0[i].data());
          k1p.push_back(ks1[i].data());
        }
        u64 *o0 = out(), *o1 = out();
        kernels::ks_inner_product(xp.data(), k0p.data(), k1p.data(), D, nullptr, o0, o1, n, m);
        o0 = out(), o1 = out();
        kernels::ks_inner_product(xp.data(), k0p.data(), k1p.data(), D, perm.data(), o0, o1, n, m);
        o0 = out(), o1 = out();
        kernels::ks_inner_product(xp.data(), k0p.data(), k1p.data(), D, block_perm.data(), o0, o1, n, m);
      }
      for (std::size_t k : {std::size_t{1}, std::size_t{2}, std::size_t{9}}) {
        std::mt19937_64 r2(100 + k);
        const u64 src = ntt_primes(49, 1024, 1)[0];
        std::vector<std::vector<u64>> ys;
        std::vector<const u64*> yp;
        std::vector<u64> hat;
        for (std::size_t i = 0; i < k; ++i) {
          ys.push_back(random_below(n, src, r2));
          hat.push_back(r2() % qv);
        }
        for (auto& y : ys) yp.push_back(y.data());
        kernels::convert_sum(yp.data(), hat.data(), k, src, out(), n, m);
      }
      return outs;
    };

    set_simd_level(SimdLevel::portable);
    const auto want = run_all();
    for (const auto& o : want) {
      for (u64 x : o) ASSERT_LT(x, qv);
    }
    set_simd_level(l);
    const auto got = run_all();
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t k = 0; k < want.size(); ++k) {
      ASSERT_EQ(got[k], want[k]) << simd_level_name(l) << ": kernel output " << k << ", q=" << qv;
    }
  }
}

// The multi-term dot kernel of linear layers (Evaluator::multiply_sparse): every level equals the
// portable result, which equals the true sum mod q, up to the most terms a call takes with every
// operand q - 1.
TEST_P(SimdLevels, DotBlockMatchesPortable) {
  const SimdLevel l = GetParam();
  std::mt19937_64 rng(9);
  for (u64 qv : test_primes(2048)) {
    const Modulus q(qv);
    const kernels::DotConstants dc(q);
    for (std::size_t terms : {std::size_t{1}, std::size_t{25}, std::size_t{125}, kernels::kDotMaxTerms}) {
      for (std::size_t len : {kernels::kDotBlock, std::size_t{16}, std::size_t{5}}) {
        std::vector<u64> w = random_below(terms, qv, rng), data = random_below(terms * len, qv, rng);
        if (terms == kernels::kDotMaxTerms) {
          std::fill(w.begin(), w.end(), qv - 1);
          std::fill(data.begin(), data.end(), qv - 1);
        }
        std::vector<const u64*> src(terms);
        for (std::size_t t = 0; t < terms; ++t) src[t] = data.data() + t * len;
        std::vector<u64> expect(len), got(len);
        kernels::portable::dot_block(w.data(), src.data(), terms, len, expect.data(), q, dc);
        for (std::size_t i = 0; i < len; ++i) {
          u128 s = 0;
          for (std::size_t t = 0; t < terms; ++t) s = (s + static_cast<u128>(w[t]) * src[t][i]) % qv;
          ASSERT_EQ(expect[i], static_cast<u64>(s)) << qv << " " << terms << " terms, coefficient " << i;
        }
        set_simd_level(l);
        kernels::dot_block(w.data(), src.data(), terms, len, got.data(), q, dc);
        EXPECT_EQ(got, expect) << simd_level_name(l) << ", " << qv << ", " << terms << " terms, length " << len;
      }
    }
  }
}

// The rows-sharing-terms kernel (multiply_sparse's groups): every level equals the true sums mod q,
// for row counts that split into uneven chunks, with and without accumulation, up to the most terms
// a call takes with every operand q - 1.
TEST_P(SimdLevels, DotRowsMatchesTrueSums) {
  const SimdLevel l = GetParam();
  std::mt19937_64 rng(10);
  for (u64 qv : test_primes(2048)) {
    const Modulus q(qv);
    const kernels::DotConstants dc(q);
    for (std::size_t rows : {std::size_t{1}, std::size_t{5}, std::size_t{13}, std::size_t{50}}) {
      for (std::size_t terms : {std::size_t{1}, std::size_t{25}, kernels::kDotMaxTerms}) {
        for (std::size_t len : {std::size_t{1024}, std::size_t{16}, std::size_t{5}}) {
          if (rows * terms * len > 2'000'000) continue;
          std::vector<u64> w = random_below(terms * rows, qv, rng), data = random_below(terms * len, qv, rng);
          if (terms == kernels::kDotMaxTerms) {
            std::fill(w.begin(), w.end(), qv - 1);
            std::fill(data.begin(), data.end(), qv - 1);
          }
          std::vector<const u64*> src(terms);
          for (std::size_t t = 0; t < terms; ++t) src[t] = data.data() + t * len;
          for (bool accumulate : {false, true}) {
            std::vector<std::vector<u64>> got(rows, random_below(len, qv, rng));
            const auto before = got;
            std::vector<u64*> dst(rows);
            for (std::size_t r = 0; r < rows; ++r) dst[r] = got[r].data();
            set_simd_level(l);
            kernels::dot_rows(w.data(), rows, src.data(), terms, len, dst.data(), accumulate, q, dc);
            for (std::size_t r = 0; r < rows; ++r) {
              for (std::size_t i = 0; i < len; ++i) {
                u128 s = accumulate ? before[r][i] : 0;
                for (std::size_t t = 0; t < terms; ++t) s = (s + static_cast<u128>(w[t * rows + r]) * src[t][i]) % qv;
                ASSERT_EQ(got[r][i], static_cast<u64>(s))
                    << simd_level_name(l) << ", " << qv << ", " << rows << " rows, " << terms << " terms, length " << len
                    << ", row " << r << ", coefficient " << i << (accumulate ? ", accumulating" : "");
              }
            }
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(VectorLevels, SimdLevels,
                         ::testing::Values(SimdLevel::avx2, SimdLevel::avx512, SimdLevel::ifma),
                         [](const auto& info) { return std::string(simd_level_name(info.param)); });
