// `hecnn demo`: a walkthrough of the CKKS library. Generates keys, encrypts a vector, multiplies,
// rotates, decrypts and prints the precision reached at each step.

#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>

#include "ckks/ckks.h"
#include "cli/commands.h"
#include "cli/demo_bootstrap.h"
#include "cli/options.h"
#include "common/stopwatch.h"

namespace hecnn::cli {

namespace {


double precision_bits(const std::vector<double>& got, const std::vector<double>& want) {
  double err = 0;
  for (std::size_t i = 0; i < want.size(); ++i) err = std::max(err, std::fabs(got[i] - want[i]));
  return err == 0 ? 64.0 : -std::log2(err);
}

struct DemoOptions {
  std::string preset;
  double log_scale = 40;
  int threads = 0;
  std::string simd = "auto";
  int rotation = 3;
  bool bootstrap = false;
  std::size_t ring_degree = 0, slots = 0;
  bool allow_insecure = false;
  std::size_t cts_levels = 3, stc_levels = 3;
  int double_angles = 2, degree = 0;
};

void run_demo(const DemoOptions& o) {
  using namespace hecnn::ckks;
  set_num_threads(o.threads);
  if (o.simd != "auto") set_simd_level(parse_simd_level(o.simd));
  const CkksParameters params = CkksParameters::preset(o.preset);
  std::printf("Parameters (%s): %s\n", o.preset.c_str(), params.describe().c_str());
  std::printf("Threads: %d, SIMD: %s (CPU supports up to %s)\n", num_threads(), simd_level_name(simd_level()),
              simd_level_name(detected_simd_level()));
  auto ctx = CkksContext::create(params);
  const double scale = std::ldexp(1.0, static_cast<int>(o.log_scale));

  Stopwatch t;
  KeyGenerator keygen(ctx);
  const PublicKey pk = keygen.create_public_key();
  const RelinKeys rk = keygen.create_relin_keys();
  const GaloisKeys gk = keygen.create_galois_keys({o.rotation}, false);
  std::printf("Key generation (public, relinearization, rotation by %d): %.1f ms\n", o.rotation, t.milliseconds());

  CkksEncoder encoder(ctx);
  Encryptor encryptor(ctx, pk);
  Decryptor decryptor(ctx, keygen.secret_key());
  Evaluator evaluator(ctx);

  const std::size_t slots = encoder.max_slots();
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> x(slots), y(slots);
  for (auto& v : x) v = dist(rng);
  for (auto& v : y) v = dist(rng);

  t.restart();
  Ciphertext cx = encryptor.encrypt(encoder.encode(x, scale));
  Ciphertext cy = encryptor.encrypt(encoder.encode(y, scale));
  std::printf("Encode + encrypt 2 x %zu slots: %.1f ms\n", slots, t.milliseconds());
  std::printf("  fresh ciphertext precision: %.1f bits\n",
              precision_bits(encoder.decode(decryptor.decrypt(cx)), x));

  t.restart();
  Ciphertext prod = evaluator.multiply(cx, cy);
  evaluator.relinearize_inplace(prod, rk);
  evaluator.rescale_inplace(prod);
  const double mul_ms = t.milliseconds();
  std::vector<double> want(slots);
  for (std::size_t i = 0; i < slots; ++i) want[i] = x[i] * y[i];
  std::printf("Multiply + relinearize + rescale: %.1f ms, level %zu -> %zu, precision %.1f bits\n", mul_ms,
              cx.level(), prod.level(), precision_bits(encoder.decode(decryptor.decrypt(prod)), want));

  t.restart();
  Ciphertext rot = evaluator.rotate(prod, o.rotation, gk);
  const double rot_ms = t.milliseconds();
  std::vector<double> want_rot(slots);
  for (std::size_t i = 0; i < slots; ++i) want_rot[i] = want[(i + static_cast<std::size_t>(o.rotation)) % slots];
  std::printf("Rotate by %d: %.1f ms, precision %.1f bits\n", o.rotation, rot_ms,
              precision_bits(encoder.decode(decryptor.decrypt(rot)), want_rot));

  const auto got = encoder.decode(decryptor.decrypt(rot));
  std::printf("First slots (x*y rotated): ");
  for (std::size_t i = 0; i < 4; ++i) std::printf("%+.6f (want %+.6f)  ", got[i], want_rot[i]);
  std::printf("\n");
}
}  // namespace

void register_demo(CLI::App& app) {
  auto opts = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand("demo", "walk through keygen, encrypt, multiply, rotate, decrypt (or bootstrap)");
  cmd->add_option("--params", opts->preset, "parameter preset (see `hecnn params`; --bootstrap: boot-n65536)");
  cmd->add_option("--log-scale", opts->log_scale, "log2 of the encoding scale")->capture_default_str()->check(
      CLI::Range(10.0, 60.0));
  cmd->add_option("--threads", opts->threads, "worker threads (0: all cores)")->transform(whole_number(0, max_threads()));
  cmd->add_option("--rotate", opts->rotation, "rotation step to demonstrate")->capture_default_str();
  cmd->add_option("--simd", opts->simd, "vector level: auto, portable, avx2, avx512, ifma (also HECNN_SIMD)")
      ->capture_default_str();
  cmd->add_flag("--bootstrap", opts->bootstrap,
                "encrypt, compute down to the last level, bootstrap, compute again (levels, precision, time, memory)");
  cmd->add_option("--ring-degree", opts->ring_degree,
                  "--bootstrap: the preset's chain at another ring degree (below 65536 it needs --allow-insecure)")
      ->check(CLI::IsMember({1024, 2048, 4096, 8192, 16384, 32768, 65536}));
  cmd->add_option("--slots", opts->slots, "--bootstrap: slots, a power of two up to N/2 (default N/2)")->transform(whole_number(0, 32768));
  cmd->add_option("--cts-levels", opts->cts_levels, "--bootstrap: levels of CoeffsToSlots")->capture_default_str()->check(CLI::Range(1, 15));
  cmd->add_option("--stc-levels", opts->stc_levels, "--bootstrap: levels of SlotsToCoeffs")->capture_default_str()->check(CLI::Range(1, 15));
  cmd->add_option("--double-angles", opts->double_angles, "--bootstrap: EvalMod's double-angle steps")->capture_default_str()->check(CLI::Range(0, 8));
  cmd->add_option("--degree", opts->degree, "--bootstrap: EvalMod's interpolant degree (0: the smallest reaching 2^-48)")
      ->capture_default_str()->check(CLI::Range(0, 255));
  cmd->add_flag("--allow-insecure", opts->allow_insecure,
                "Allow parameters above the 128-bit security bound (INSECURE: for tests and experiments only)");
  cmd->callback([opts] {
    if (!opts->bootstrap) {
      if (opts->preset.empty()) opts->preset = "n16384-l7";
      if (opts->ring_degree || opts->slots || opts->allow_insecure) throw CLI::ValidationError("--ring-degree, --slots and --allow-insecure go with --bootstrap");
      run_demo(*opts);
      return;
    }
    BootstrapDemoOptions b;
    if (!opts->preset.empty()) b.preset = opts->preset;
    b.ring_degree = opts->ring_degree;
    b.allow_insecure = opts->allow_insecure;
    b.slots = opts->slots;
    b.cts_levels = opts->cts_levels;
    b.stc_levels = opts->stc_levels;
    b.double_angles = opts->double_angles;
    b.degree = opts->degree;
    b.threads = opts->threads;
    b.simd = opts->simd;
    run_bootstrap_demo(b);
  });
}

void register_params(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("params", "list the parameter presets and their security");
  cmd->callback([] {
    std::printf("SIMD level: %s (CPU supports up to %s; HECNN_SIMD=portable|avx2|avx512|ifma forces one)\n\n",
                hecnn::ckks::simd_level_name(hecnn::ckks::simd_level()),
                hecnn::ckks::simd_level_name(hecnn::ckks::detected_simd_level()));
    for (const auto& name : hecnn::ckks::CkksParameters::preset_names()) {
      const auto p = hecnn::ckks::CkksParameters::preset(name);
      std::printf("%-12s %s\n             %s\n", name.c_str(), hecnn::ckks::CkksParameters::preset_description(name).c_str(),
                  p.describe().c_str());
    }
  });
}

}  // namespace hecnn::cli
