// `hecnn demo --bootstrap`: encrypt, compute down to the last level, bootstrap, compute again;
// prints the levels, the precision in bits and the times, and the memory predicted up front against
// the peak measured.
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "circuits/bootstrap.h"
#include "ckks/ckks.h"
#include "cli/demo_bootstrap.h"
#include "common/error.h"
#include "common/stopwatch.h"
#include "he/memory.h"

namespace hecnn::cli {

namespace {

using ckks::Ciphertext;

struct Precision {
  double mean_bits, min_bits;
};

// Peak resident set size of the process (bytes).
std::size_t peak_rss() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return static_cast<std::size_t>(r.ru_maxrss) * 1024;
}

Precision precision(const std::vector<double>& want, const std::vector<double>& got) {
  double sum = 0, worst = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double e = std::fabs(want[i] - got[i]);
    sum += e;
    worst = std::max(worst, e);
  }
  const double mean = sum / static_cast<double>(want.size());
  return {mean == 0 ? 64.0 : -std::log2(mean), worst == 0 ? 64.0 : -std::log2(worst)};
}

}  // namespace

void run_bootstrap_demo(const BootstrapDemoOptions& o) {
  set_num_threads(o.threads);
  if (o.simd != "auto") ckks::set_simd_level(ckks::parse_simd_level(o.simd));
  ckks::ParameterOptions po;
  po.allow_insecure = o.allow_insecure;
  const std::size_t baseline = peak_rss();
  const ckks::CkksParameters params = ckks::CkksParameters::preset_at(o.preset, o.ring_degree, po);
  std::printf("Parameters (%s): %s\n", o.preset.c_str(), params.describe().c_str());
  if (params.insecure()) std::printf("WARNING: INSECURE parameters (--allow-insecure): for tests and experiments only\n");
  std::printf("Threads: %d, SIMD: %s\n", num_threads(), ckks::simd_level_name(ckks::simd_level()));
  const auto ctx = ckks::CkksContext::create(params);
  circuits::BootstrapParameters bp;
  bp.slots = o.slots;
  bp.cts_levels = o.cts_levels;
  bp.stc_levels = o.stc_levels;
  bp.mod.double_angles = o.double_angles;
  bp.mod.degree = o.degree;
  // The plan first, with no plaintext stored: what the keys and an evaluation need.
  bp.plaintext_budget = 0;
  const circuits::Bootstrapper probe(ctx, bp);
  const std::size_t keys = probe.key_bytes(), working = probe.working_bytes(), all_pt = probe.all_plaintext_bytes();
  const std::size_t limit = he::available_memory();
  // The demo's own ciphertexts: the value, a factor, a product and a spare at the top level.
  const std::size_t own = 4 * 2 * (probe.top_level() + 1) * ctx->n() * sizeof(std::uint64_t);
  const std::size_t fixed = keys + working + probe.table_bytes() + own;
  std::printf("Bootstrapping: %zu slots, levels %zu -> %zu (CoeffsToSlots %zu, EvalMod %d with a degree-%d interpolant and %d double angles, "
              "SlotsToCoeffs %zu), scale 2^%.0f, %zu rotation keys, %zu key switches per bootstrap\n",
              probe.slots(), probe.top_level(), probe.output_level(), bp.cts_levels, probe.eval_mod_circuit().depth(),
              probe.eval_mod_circuit().degree(), probe.eval_mod_circuit().options().double_angles, bp.stc_levels,
              std::log2(probe.scale()), probe.rotation_levels().size() + 1, probe.key_switches());
  if (limit != 0 && fixed > limit) {
    throw Error("bootstrapping at these parameters needs " + he::gib(fixed) + " (keys " + he::gib(keys) + ", working " + he::gib(working) +
                ") but this process may use " + he::gib(limit) + "; use sparse slots (--slots) or a smaller ring degree");
  }
  // DFT plaintexts stored while they fit (the rest encoded at every bootstrap).
  std::size_t budget = std::min({all_pt, circuits::BootstrapParameters{}.plaintext_budget, limit == 0 ? all_pt : (limit - fixed) / 2});
  if (o.plaintext_budget != static_cast<std::size_t>(-1)) budget = std::min(budget, o.plaintext_budget);
  bp.plaintext_budget = budget;
  Stopwatch t;
  const circuits::Bootstrapper boot(ctx, bp);
  const double setup_s = t.seconds();
  const std::size_t predicted =
      keys + boot.plaintext_bytes() + working + boot.table_bytes() + own;
  std::printf("Memory predicted: %s (keys %s, DFT plaintexts %s of %s, working %s, tables %s); this process may use %s\n",
              he::gib(predicted).c_str(), he::gib(keys).c_str(), he::gib(boot.plaintext_bytes()).c_str(), he::gib(all_pt).c_str(),
              he::gib(working).c_str(), he::gib(boot.table_bytes()).c_str(), limit == 0 ? "an unknown amount" : he::gib(limit).c_str());
  std::printf("Setup (DFT plaintexts): %.2f s\n", setup_s);
  t.restart();
  ckks::KeyGenerator keygen(ctx);
  const circuits::BootstrapKeys bk = boot.generate_keys(keygen);
  std::printf("Key generation: %.2f s, %s (%zu Galois keys)\n", t.seconds(), he::gib(bk.bytes()).c_str(), bk.galois.keys.size());

  ckks::CkksEncoder encoder(ctx);
  ckks::Encryptor encryptor(ctx, keygen.secret_key());
  ckks::Decryptor decryptor(ctx, keygen.secret_key());
  ckks::Evaluator ev(ctx);
  const std::size_t n = boot.slots(), top = boot.output_level();
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(-1.0, 1.0), mag(0.9, 1.0);
  std::vector<double> x(n), want(n);
  for (auto& v : x) v = u(rng);
  want = x;
  ckks::Plaintext pt;
  encoder.encode(std::span<const double>(x), boot.scale(), top, pt);
  Ciphertext ct = encryptor.encrypt(pt);
  auto report = [&](const char* what, double seconds) {
    const auto got = encoder.decode(decryptor.decrypt(ct));
    const Precision p = precision(want, std::vector<double>(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(n)));
    std::printf("%-44s level %2zu, precision %.1f bits mean, %.1f bits min, %.2f s\n", what, ct.level(), p.mean_bits, p.min_bits, seconds);
  };
  report("Encrypt at the top computation level:", 0);
  // One multiplication per level by fresh values y (|y| in [0.9, 1], random signs), encrypted at the
  // scale of the level's prime so that the product keeps the scale exactly.
  auto compute = [&](const char* what) {
    Stopwatch c;
    const std::size_t steps = ct.level();
    for (std::size_t k = 0; k < steps; ++k) {
      std::vector<double> y(n);
      for (std::size_t i = 0; i < n; ++i) {
        y[i] = (u(rng) < 0 ? -1 : 1) * mag(rng);
        want[i] *= y[i];
      }
      ckks::Plaintext py;
      encoder.encode(std::span<const double>(y), static_cast<double>(ctx->modulus(ct.level()).value), ct.level(), py);
      const Ciphertext cy = encryptor.encrypt(py);
      ev.multiply_inplace(ct, cy);
      ev.relinearize_rescale_inplace(ct, bk.relin);
      ct.set_scale(boot.scale());
    }
    char label[64];
    std::snprintf(label, sizeof label, "%s (%zu multiplications):", what, steps);
    report(label, c.seconds());
  };
  compute("Compute down to level 0");
  t.restart();
  circuits::Bootstrapper::Timings steps;
  ct = boot.bootstrap(ct, bk, &steps);
  report("Bootstrap:", t.seconds());
  std::printf("  ModRaise %.2f s, CoeffsToSlots %.2f s, EvalMod %.2f s, SlotsToCoeffs %.2f s\n", steps.raise, steps.coeffs_to_slots,
              steps.eval_mod, steps.slots_to_coeffs);
  compute("Compute again");
  // Two ciphertexts of real values at once: this one and a fresh one, as a + i b.
  {
    std::vector<double> x2(n);
    for (auto& v : x2) v = u(rng);
    ckks::Plaintext p2;
    encoder.encode(std::span<const double>(x2), boot.scale(), 0, p2);
    t.restart();
    auto [a, b] = boot.bootstrap_pair(ct, encryptor.encrypt(p2), bk);
    const double secs = t.seconds();
    ct = std::move(a);
    report("Bootstrap two real ciphertexts at once: 1st", secs);
    ct = std::move(b);
    want = x2;
    report("                                        2nd", secs);
  }
  const std::size_t peak = peak_rss() - baseline;
  std::printf("Memory peak measured (resident, above the program's start): %s, predicted %s (%+.1f %%)\n", he::gib(peak).c_str(), he::gib(predicted).c_str(),
              100.0 * (static_cast<double>(predicted) - static_cast<double>(peak)) / static_cast<double>(peak));
}

}  // namespace hecnn::cli
