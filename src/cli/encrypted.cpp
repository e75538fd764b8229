// Encrypted inference from the command line: `hecnn eval --encrypted` (everything in one process)
// and `hecnn plan` (the compiled computation and its parameters).
#include "cli/encrypted.h"

#include <cstdio>

#include "cli/batches.h"
#include "cli/commands.h"
#include "cli/outputs.h"
#include "common/error.h"
#include "common/stopwatch.h"
#include "common/threads.h"
#include "he/batch/engine.h"
#include "nn/forward.h"
#include "nn/safetensors.h"

namespace hecnn::cli {

void run_encrypted_eval(const EncryptedEvalOptions& o) {
  protect_secrets();  // this process generates and holds a secret key
  apply_threads(o.threads);
  const nn::Model model = nn::load_model(o.model);
  const nn::Dataset data = load_dataset(o.data);
  if (!(model.input == data.shape)) {
    throw Error("the model expects " + model.input.to_string() + " inputs, " + o.data.dataset + " images are " +
                data.shape.to_string());
  }
  const std::size_t n = selected_count(o.data, data.size());
  const he::HePlan plan = he::compile(model, o.compile);
  const std::vector<he::BatchInfo> batches = split_batches(0, n, plan.batch_size());
  std::printf("%s", plan.describe().c_str());
  std::printf("threads: %d; %zu test images of %s in %zu batch(es)\n\n", hecnn::num_threads(), n, o.data.dataset.c_str(),
              batches.size());

  // Plaintext reference (the model as stored) and, on request, the compiled computation on doubles.
  Stopwatch t;
  const nn::Evaluation plain = nn::evaluate(model, data, n, true);
  std::printf("plaintext model:       %.2f %% (%.1f s)\n", 100.0 * plain.accuracy(), t.seconds());
  if (o.simulate) {
    t.restart();
    std::size_t ok = 0;
#pragma omp parallel for reduction(+ : ok) schedule(dynamic, 16)
    for (std::size_t i = 0; i < n; ++i) ok += nn::argmax(he::simulate(plan.program, data.image(i))) == data.labels[i];
    std::printf("compiled, simulated:   %.2f %% (%.1f s)\n", 100.0 * static_cast<double>(ok) / static_cast<double>(n), t.seconds());
  }

  t.restart();
  const auto ctx = ckks::CkksContext::create(*plan.params);
  ckks::KeyGenerator keygen(ctx);
  he::EvaluationKeys keys;
  keys.relin = keygen.create_relin_keys();
  if (!plan.keys.rotations.empty()) keys.galois = keygen.create_galois_keys(plan.keys.rotations, false);
  const double t_keygen = t.seconds();
  const he::batch::Client client(plan.client_spec(), ctx, keygen.secret_key());
  const he::batch::Engine engine(plan, ctx, keys);

  StepTimes times;
  Tally tally(&data, &plain);
  for (const auto& b : batches) {
    if (!o.quiet) std::fprintf(stderr, "batch of %zu images (%zu-%zu)\n", b.count, b.first, b.first + b.count - 1);
    auto result = infer_batch(engine, encrypt_batch(client, data, b, times), o.quiet, times);
    tally.add(b, decrypt_batch(client, result, b, times), false);
  }
  const double total = times.encrypt + times.infer + times.decrypt;
  tally.print_summary();
  std::printf("time: keygen %.2f s, encrypt %.2f s, infer %.2f s, decrypt %.2f s\n", t_keygen, times.encrypt, times.infer,
              times.decrypt);
  std::printf("inference by stage:");
  const auto& stages = plan.program.stages;
  for (std::size_t k = 0; k < stages.size(); ++k) {
    std::printf(" %s %.2f s%s", stages[k].name.c_str(), k < times.stages.size() ? times.stages[k] : 0.0,
                k + 1 < stages.size() ? ";" : "\n");
  }
  std::printf("throughput: %.1f images/s end to end (encrypt + infer + decrypt; key generation excluded)\n",
              static_cast<double>(n) / total);
  std::printf("peak memory: %.2f GiB\n", peak_memory_gib());
}

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

}  // namespace hecnn::cli
