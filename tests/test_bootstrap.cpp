// Bootstrapping and its circuits at small insecure parameters: every step against its plaintext
// definition (the DFT factors, CoeffsToSlots and SlotsToCoeffs, ModRaise with the encapsulation,
// EvalMod), whole bootstraps in full and sparse slots with real and complex values, 100 sequential
// multiplications, and the errors for bad inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <numbers>
#include <random>

#include "circuits/bootstrap.h"
#include "circuits/dft.h"
#include "circuits/linear_transform.h"
#include "circuits/mod1.h"
#include "ckks/ckks.h"

namespace hecnn::circuits {
namespace {

using cd = std::complex<double>;
using ckks::Ciphertext;

// N = 2^12 (insecure): q_0, 3 levels for computation, SlotsToCoeffs 3, EvalMod 9, CoeffsToSlots 3.
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
      : ctx(ckks::CkksContext::create(p)), keygen(ctx), encoder(ctx), encryptor(ctx, keygen.secret_key()),
        decryptor(ctx, keygen.secret_key()), ev(ctx) {}
  Ciphertext encrypt(const std::vector<cd>& v, double scale, std::size_t level) const {
    ckks::Plaintext pt;
    encoder.encode(std::span<const cd>(v), scale, level, pt);
    return encryptor.encrypt(pt);
  }
  std::vector<cd> decrypt(const Ciphertext& c) const { return encoder.decode_complex(decryptor.decrypt(c)); }
};

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

TEST(Bootstrap, FullSlotsExperiment) {
  Fixture f(test_parameters());
  BootstrapParameters bp;
  Bootstrapper boot(f.ctx, bp);
  std::printf("depth %zu output level %zu evalmod degree %d depth %d interp err %g\n", boot.depth(), boot.output_level(),
              boot.eval_mod_circuit().degree(), boot.eval_mod_circuit().depth(), boot.eval_mod_circuit().interpolation_error());
  const BootstrapKeys keys = boot.generate_keys(f.keygen);
  std::printf("keys %zu bytes (predicted %zu), plaintexts %zu, working %zu, key switches %zu\n", keys.bytes(), boot.key_bytes(),
              boot.plaintext_bytes(), boot.working_bytes(), boot.key_switches());
  for (bool complex : {false, true}) {
    const auto v = random_values(boot.slots(), complex, 7);
    const Ciphertext ct = f.encrypt(v, boot.scale(), 0);
    const Ciphertext out = boot.bootstrap(ct, keys);
    const auto p = precision(v, f.decrypt(out));
    std::printf("complex %d: level %zu precision mean %.2f min %.2f\n", complex, out.level(), p.mean_bits, p.min_bits);
  }
}

double max_abs_error(const std::vector<cd>& a, const std::vector<cd>& b) {
  double w = 0;
  for (std::size_t i = 0; i < a.size(); ++i) w = std::max(w, std::abs(a[i] - b[i]));
  return w;
}

TEST(Bootstrap, StepsExperiment) {
  Fixture f(test_parameters());
  BootstrapParameters bp;
  Bootstrapper boot(f.ctx, bp);
  const BootstrapKeys keys = boot.generate_keys(f.keygen);
  const std::size_t n = boot.slots();
  const double q0 = static_cast<double>(f.ctx->modulus(0).value), delta = boot.scale();
  const double K = bp.mod.k;
  // ModRaise + CtS + split against the input's decrypted coefficients.
  {
    const auto v = random_values(n, false, 9);
    const Ciphertext ct = f.encrypt(v, delta, 0);
    const ckks::Plaintext pt = f.decryptor.decrypt(ct);
    std::vector<std::uint64_t> c(f.ctx->n());
    f.ctx->ntt(0).inverse(pt.limb(0), c.data());
    Ciphertext r = boot.mod_raise(boot.encapsulate(ct, keys.to_sparse));
    f.ev.switch_key_inplace(r, keys.from_sparse);
    auto [re, im] = boot.split(boot.coeffs_to_slots(r, keys.galois), keys.galois);
    auto x = f.decrypt(re);
    auto y = f.decrypt(im);
    std::vector<cd> got(n);
    for (std::size_t i = 0; i < n; ++i) got[i] = cd(x[i].real(), y[i].real());
    bit_reverse_in_place(got);
    double worst = 0, sum = 0;
    for (std::size_t i = 0; i < n; ++i) {
      for (int part = 0; part < 2; ++part) {
        const std::uint64_t ci = c[i + part * n];
        const double t0 = ci > f.ctx->modulus(0).value / 2 ? -static_cast<double>(f.ctx->modulus(0).value - ci) : static_cast<double>(ci);
        const double g = (part ? got[i].imag() : got[i].real()) * K;  // t/q0
        const double frac = g - std::round(g - t0 / q0);
        const double e = std::fabs(frac - t0 / q0) * q0 / delta;
        worst = std::max(worst, e);
        sum += e;
      }
    }
    std::printf("raise+CtS+split: message-unit error max 2^%.1f mean 2^%.1f\n", std::log2(worst), std::log2(sum / (2 * n)));
  }
  // CtS: z at top, scale q0 -> BR(w) * c.
  {
    const auto z = random_values(n, true, 3, 4.0);
    const Ciphertext out = boot.coeffs_to_slots(f.encrypt(z, q0, boot.top_level()), keys.galois);
    auto want = dft_reference(z, DftDirection::CoeffsToSlots);
    for (auto& x : want) x *= 1.0 / (2.0 * K);
    const double e = max_abs_error(want, f.decrypt(out));
    std::printf("CtS max error %g = message units %g (2^%.1f)\n", e, e * 2 * K * q0 / delta, std::log2(e * 2 * K * q0 / delta));
  }
  // EvalMod: x = (m/q0 + I) / K.
  {
    std::mt19937_64 rng(5);
    std::uniform_int_distribution<int> I(-16, 16);
    std::uniform_real_distribution<double> m(-1, 1);
    std::vector<cd> x(n), want(n);
    for (std::size_t i = 0; i < n; ++i) {
      const double mm = m(rng) * delta;
      x[i] = (mm / q0 + I(rng)) / K;
      want[i] = std::sin(2 * std::numbers::pi * mm / q0);
    }
    const std::size_t lc = boot.top_level() - bp.cts_levels;
    const Ciphertext out = boot.eval_mod(f.encrypt(x, static_cast<double>(f.ctx->modulus(lc).value), lc), keys.relin);
    const double e = max_abs_error(want, f.decrypt(out));
    std::printf("EvalMod max error %g = message units %g (2^%.1f)\n", e, e * q0 / (2 * std::numbers::pi * delta), std::log2(e * q0 / (2 * std::numbers::pi * delta)));
  }
  // StC.
  {
    const auto w = random_values(n, true, 4, 2 * std::numbers::pi * delta / q0);
    const Ciphertext out = boot.slots_to_coeffs(f.encrypt(w, boot.stc().options().input_scale, boot.stc().options().top_level), keys.galois);
    auto want = dft_reference(w, DftDirection::SlotsToCoeffs);
    for (auto& x : want) x *= q0 / (2 * std::numbers::pi * delta);
    const double e = max_abs_error(want, f.decrypt(out));
    std::printf("StC max error %g (2^%.1f)\n", e, std::log2(e));
  }
}

}  // namespace
}  // namespace hecnn::circuits
