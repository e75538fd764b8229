// Encrypted inference from the command line: `hecnn eval --encrypted` (everything in one process)
// and `hecnn plan` (the compiled computation and its parameters).
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "common/threads.h"
#include "cli/commands.h"
#include "cli/encrypted.h"
#include "he/engine.h"
#include "nn/forward.h"
#include "nn/safetensors.h"

namespace hecnn::cli {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

double peak_memory_gib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB on Linux
}

void add_compile_options(CLI::App* cmd, he::CompileOptions& o) {
  cmd->add_option("--log-n", o.log_n, "Ring degree 2^k (default: the smallest secure one)");
  cmd->add_option("--scale-bits", o.scale_bits, "Scale 2^k (default: the largest the security bound allows, up to 40)");
  cmd->add_option("--extra-levels", o.extra_levels, "Levels beyond those the model needs");
  cmd->add_flag("--allow-insecure", o.allow_insecure,
                "Allow parameters above the 128-bit security bound (INSECURE: for tests and experiments only)");
}

he::ProgressFn stage_progress(bool enabled) {
  if (!enabled) return nullptr;
  auto last = std::make_shared<Clock::time_point>(Clock::now());
  return [last](const he::Progress& p) {
    if (since(*last) < 0.25 && p.done != p.total) return;
    *last = Clock::now();
    std::fprintf(stderr, "\r  stage %zu/%zu %-24.24s %6zu/%-6zu %7.1f s", p.stage + 1, p.stages, p.name.c_str(), p.done,
                 p.total, p.elapsed_s);
    if (p.done > 0 && p.done < p.total) {
      const double left = p.stage_elapsed_s * static_cast<double>(p.total - p.done) / static_cast<double>(p.done);
      std::fprintf(stderr, ", ~%.0f s left in stage   ", left);
    } else {
      std::fprintf(stderr, "%28s\n", "");
    }
  };
}

namespace {

struct EncEvalOptions {
  std::string model, dataset = "mnist", data_dir;
  std::size_t limit = 0;
  int threads = 0;
  bool quiet = false, simulate = false;
  he::CompileOptions compile;
};

void run_encrypted_eval(const EncEvalOptions& o) {
  hecnn::set_num_threads(o.threads);
  const nn::Model model = nn::load_model(o.model);
  const nn::Dataset data = nn::load_dataset(o.dataset, nn::Split::Test, o.data_dir);
  if (!(model.input == data.shape)) {
    throw Error("the model expects " + model.input.to_string() + " inputs, " + o.dataset + " images are " +
                data.shape.to_string());
  }
  const std::size_t n = o.limit == 0 ? data.size() : std::min(o.limit, data.size());
  const he::HePlan plan = he::compile(model, o.compile);
  std::printf("%s", plan.describe().c_str());
  std::printf("threads: %d; %zu test images of %s in %zu batch(es)\n\n", hecnn::num_threads(), n, o.dataset.c_str(),
              (n + plan.batch_size() - 1) / plan.batch_size());

  // Plaintext reference (the model as stored) and, on request, the compiled computation on doubles.
  auto t = Clock::now();
  const nn::Evaluation plain = nn::evaluate(model, data, n, true);
  std::printf("plaintext model:       %.2f %% (%.1f s)\n", 100.0 * plain.accuracy(), since(t));
  if (o.simulate) {
    t = Clock::now();
    std::size_t ok = 0;
#pragma omp parallel for reduction(+ : ok) schedule(dynamic, 16)
    for (std::size_t i = 0; i < n; ++i) ok += nn::argmax(he::simulate(plan, data.image(i))) == data.labels[i];
    std::printf("compiled, simulated:   %.2f %% (%.1f s)\n", 100.0 * static_cast<double>(ok) / static_cast<double>(n), since(t));
  }

  t = Clock::now();
  const auto ctx = ckks::CkksContext::create(*plan.params);
  ckks::KeyGenerator keygen(ctx);
  const ckks::RelinKeys rk = keygen.create_relin_keys();
  const double t_keygen = since(t);
  const he::Client client(plan, ctx, keygen.secret_key());
  const he::Engine engine(plan, ctx, rk);

  double t_enc = 0, t_inf = 0, t_dec = 0, max_diff = 0;
  std::vector<double> stage_s(plan.stages.size(), 0.0);
  std::size_t correct = 0, agree = 0;
  const auto pixels = static_cast<std::size_t>(plan.input.size());
  for (std::size_t start = 0; start < n; start += plan.batch_size()) {
    const std::size_t count = std::min(plan.batch_size(), n - start);
    if (!o.quiet) std::fprintf(stderr, "batch of %zu images (%zu-%zu)\n", count, start, start + count - 1);
    t = Clock::now();
    std::vector<ckks::Ciphertext> q = client.encrypt(data.images.data() + start * pixels, count);
    t_enc += since(t);
    t = Clock::now();
    std::vector<ckks::Ciphertext> r = engine.run(std::move(q), stage_progress(!o.quiet && isatty(fileno(stderr))));
    t_inf += since(t);
    for (std::size_t k = 0; k < stage_s.size(); ++k) stage_s[k] += engine.stage_seconds()[k];
    t = Clock::now();
    const auto logits = client.decrypt(r, count);
    t_dec += since(t);
    for (std::size_t b = 0; b < count; ++b) {
      const std::size_t i = start + b;
      const int pred = nn::argmax(logits[b]);
      correct += pred == data.labels[i];
      agree += pred == plain.predictions[i];
      for (std::size_t k = 0; k < logits[b].size(); ++k) max_diff = std::max(max_diff, std::fabs(logits[b][k] - plain.logits[i][k]));
    }
  }
  const double total = t_enc + t_inf + t_dec;
  std::printf("encrypted:             %.2f %% (%zu / %zu)\n", 100.0 * static_cast<double>(correct) / static_cast<double>(n),
              correct, n);
  std::printf("agreement with plaintext predictions: %.2f %% (%zu / %zu); largest logit difference %.3g\n",
              100.0 * static_cast<double>(agree) / static_cast<double>(n), agree, n, max_diff);
  std::printf("time: keygen %.2f s, encrypt %.2f s, infer %.2f s, decrypt %.2f s\n", t_keygen, t_enc, t_inf, t_dec);
  std::printf("inference by stage:");
  for (std::size_t k = 0; k < stage_s.size(); ++k) std::printf(" %s %.2f s%s", plan.stages[k].name.c_str(), stage_s[k], k + 1 < stage_s.size() ? ";" : "\n");
  std::printf("throughput: %.1f images/s end to end (encrypt + infer + decrypt; key generation excluded)\n",
              static_cast<double>(n) / total);
  std::printf("peak memory: %.2f GiB\n", peak_memory_gib());
}

}  // namespace

void register_plan(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  auto opts = std::make_shared<he::CompileOptions>();
  CLI::App* cmd = app.add_subcommand("plan", "Compile a model for encrypted inference and print the plan");
  cmd->add_option("--model,-m", *model, "Model file (.safetensors)")->required();
  add_compile_options(cmd, *opts);
  cmd->callback([model, opts] {
    const nn::Model m = nn::load_model(*model);
    std::printf("%s", he::compile(m, *opts).describe().c_str());
  });
}

void run_encrypted_eval_cli(const std::string& model, const std::string& dataset, const std::string& data_dir,
                            std::size_t limit, int threads, bool quiet, bool simulate, const he::CompileOptions& c) {
  EncEvalOptions o;
  o.model = model;
  o.dataset = dataset;
  o.data_dir = data_dir;
  o.limit = limit;
  o.threads = threads;
  o.quiet = quiet;
  o.simulate = simulate;
  o.compile = c;
  run_encrypted_eval(o);
}

}  // namespace hecnn::cli
