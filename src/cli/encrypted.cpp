// Encrypted inference from the command line: `hecnn eval --encrypted` (everything in one process)
// and `hecnn plan` (the compiled computation and its parameters).
#include "cli/encrypted.h"

#include <omp.h>

#include <cstdio>

#include "ckks/ciphertext.h"
#include "cli/batches.h"
#include "cli/commands.h"
#include "cli/outputs.h"
#include "common/error.h"
#include "common/stopwatch.h"
#include "common/threads.h"
#include "he/backend.h"
#include "he/cost.h"
#include "he/memory.h"
#include "he/runtime.h"
#include "nn/forward.h"
#include "nn/safetensors.h"

namespace hecnn::cli {

void run_encrypted_eval(const EncryptedEvalOptions& o) {
  protect_secrets();  // this process generates and holds a secret key
  apply_threads(o.threads);
  const nn::Model model = nn::load_model(o.model);
  if (!o.predictions.empty()) check_output("--predictions", o.predictions, {o.model});
  nn::Dataset all = load_dataset(o.data);
  if (!(model.input == all.shape)) {
    throw Error("the model expects " + model.input.to_string() + " inputs, " + o.data.dataset + " images are " +
                all.shape.to_string());
  }
  const std::size_t n = selected_count(o.data, all.size());
  // Images [offset, offset + n) as a dataset of their own: batches, the plaintext reference and
  // the tally index it from 0; progress lines and --predictions give the true indices.
  const std::size_t offset = o.data.offset;
  const nn::Dataset data = nn::take_range(std::move(all), offset, n);
  const he::MemoryLimit limit = memory_limit(o.memory_limit);
  he::CompileOptions copts = o.compile;
  copts.packed_images = n;  // the packed layout is chosen for this many images
  std::vector<std::string> notes;
  const he::HePlan plan = he::compile_for_mode(model, copts, o.mode, n, limit.bytes, hecnn::num_threads(), o.stream.tile, &notes);
  for (const auto& note : notes) std::fprintf(stderr, "%s\n", note.c_str());
  const he::Backend& be = he::backend(plan.layout);
  const std::vector<he::BatchInfo> batches = split_batches(0, n, plan.batch_size());
  std::printf("%s", plan.describe().c_str());
  const he::EngineOptions engine_options = plan_memory(plan, limit, true, false, o.stream);
  const std::string from = offset > 0 ? " from index " + std::to_string(offset) : "";
  std::printf("mode: %s; threads: %d; %zu test images of %s%s in %zu %s(s)\n\n", he::to_string(plan.layout).c_str(),
              hecnn::num_threads(), n, o.data.dataset.c_str(), from.c_str(), batches.size(), be.query_unit().c_str());

  // Plaintext reference (the model as stored) and, on request, the compiled computation on doubles.
  Stopwatch t;
  const nn::Evaluation plain = nn::evaluate(model, data, n, true);
  std::printf("plaintext model:       %.2f %% (%.1f s)\n", 100.0 * plain.accuracy(), t.seconds());
  if (o.simulate) {
    t.restart();
    std::size_t ok = 0;
    // Inputs outside the range their polynomial (or a bootstrap) is planned for: the encrypted run
    // would be wrong there, so they are counted and shown.
    he::RangeReport ranges;
    std::vector<he::RangeReport> per_thread(static_cast<std::size_t>(omp_get_max_threads()));
#pragma omp parallel for reduction(+ : ok) schedule(dynamic, 16)
    for (std::size_t i = 0; i < n; ++i) {
      auto& r = per_thread[static_cast<std::size_t>(omp_get_thread_num())];
      ok += nn::argmax(he::simulate(plan.program, data.image(i), &r)) == data.labels[i];
    }
    for (auto& r : per_thread) ranges.merge(r);
    std::printf("compiled, simulated:   %.2f %% (%.1f s)\n", 100.0 * static_cast<double>(ok) / static_cast<double>(n), t.seconds());
    std::printf("inputs outside their range (activations' polynomials, bootstraps):\n%s", ranges.describe(plan.program).c_str());
  }

  t.restart();
  const auto ctx = ckks::CkksContext::create(*plan.params);
  ckks::KeyGenerator keygen(ctx);
  const he::EvaluationKeys keys = he::make_evaluation_keys(keygen, plan.keys);
  const double t_keygen = t.seconds();
  t.restart();
  const auto client = he::make_client(plan.client_spec(), ctx, keygen.secret_key());
  const auto engine = he::make_engine(plan, ctx, keys, engine_options);
  const double t_setup = t.seconds();

  StepTimes times;
  Tally tally(&data, &plain);
  std::vector<std::vector<double>> all_logits;  // for --predictions
  for (const auto& b : batches) {
    if (!o.quiet) std::fprintf(stderr, "batch of %zu images (%zu-%zu)\n", b.count, offset + b.first, offset + b.first + b.count - 1);
    // The back end's way of running a query whose client is in the process (batch: each input
    // encrypted as the streamed schedule takes it, so the whole query is never in memory).
    const std::vector<ckks::Ciphertext> result = infer_local(be, *engine, *client, data, b, o.quiet, times);
    auto logits = decrypt_batch(*client, result, b, times);
    tally.add(b, logits, false);
    if (!o.predictions.empty()) all_logits.insert(all_logits.end(), logits.begin(), logits.end());
  }
  if (!o.predictions.empty()) write_predictions(o.predictions, offset, all_logits);
  const double total = times.encrypt + times.infer + times.decrypt;
  tally.print_summary();
  std::printf("time: keygen %.2f s, engine setup %.2f s, encrypt %.2f s, infer %.2f s, decrypt %.2f s\n", t_keygen, t_setup,
              times.encrypt, times.infer, times.decrypt);
  if (batches.size() > 0) {
    std::printf("per %s: %.3f s end to end (encrypt + infer + decrypt)\n", be.query_unit().c_str(),
                total / static_cast<double>(batches.size()));
  }
  std::printf("inference by stage:");
  const auto& stages = plan.program.stages;
  for (std::size_t k = 0; k < stages.size(); ++k) {
    std::printf(" %s %.2f s%s", stages[k].name.c_str(), k < times.stages.size() ? times.stages[k] : 0.0,
                k + 1 < stages.size() ? ";" : "\n");
  }
  std::printf("throughput: %.1f images/s end to end (encrypt + infer + decrypt; key generation excluded)\n",
              static_cast<double>(n) / total);
  // The process's peak resident set, and the most polynomial storage (keys, ciphertexts, tables)
  // live at once: what the memory plan predicts. The difference is the rest of the process and heap
  // the allocator keeps for reuse.
  std::printf("peak memory: %.2f GiB (polynomial storage at most %.2f GiB)\n", peak_memory_gib(),
              static_cast<double>(ckks::polynomial_bytes_peak()) / (1024.0 * 1024.0 * 1024.0));
  if (!o.predictions.empty()) std::printf("predictions: %s\n", o.predictions.c_str());
}

void register_plan(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  auto opts = std::make_shared<he::CompileOptions>();
  auto mode = std::make_shared<std::string>("batch");
  auto stream = std::make_shared<StreamOptions>();
  CLI::App* cmd = app.add_subcommand("plan", "Compile a model for encrypted inference and print the plan");
  add_stream_options(cmd, *stream);
  cmd->add_option("--model,-m", *model, "Model file (.safetensors)")->required();
  add_compile_options(cmd, *opts);
  cmd->add_option("--mode", *mode, "Layout to plan: batch, packed, or both")
      ->check(CLI::IsMember({"batch", "packed", "both"}))
      ->capture_default_str();
  cmd->callback([model, opts, mode, stream] {
    const nn::Model m = nn::load_model(*model);
    const auto show = [&](he::Layout layout) {
      const he::HePlan plan = he::compile(m, *opts, layout);
      const he::Backend& be = he::backend(layout);
      std::printf("%s", plan.describe().c_str());
      const int threads = hecnn::num_threads();
      const he::MemoryEstimate all = he::estimate_memory(plan, threads, static_cast<std::size_t>(-1), false, stream->tile);
      std::printf("predicted peak memory of the server (%s layout, %d threads%s): %s\n", he::to_string(layout).c_str(), threads,
                  be.streams() ? (", tile " + (stream->tile == he::batch::kAutoTile ? std::string("auto") : std::to_string(stream->tile))).c_str() : "",
                  all.describe(true).c_str());
      if (be.streams()) {
        const he::MemoryEstimate streamed = he::estimate_memory(plan, threads, 0, true, stream->tile);
        std::printf("with the query encrypted as the schedule takes it (eval --encrypted): %s\n", streamed.describe(true).c_str());
      }
      // Weight diagonals kept across runs (the packed layout's): the estimate without them.
      const he::MemoryEstimate least = he::estimate_memory(plan, threads, 0, false, stream->tile);
      if (least.plaintexts < all.plaintexts) {
        std::printf("  with the weight diagonals encoded at every run instead of once: %s\n", least.describe().c_str());
      }
      std::printf("query %.2f MiB, result %.2f MiB (per %s)\n", static_cast<double>(he::query_bytes(plan)) / (1 << 20),
                  static_cast<double>(he::result_bytes(plan)) / (1 << 20), be.query_unit().c_str());
      const he::UnitCosts unit = he::measure_unit_costs(*plan.params);
      std::printf("predicted inference time on this machine (%d threads): %s", threads,
                  he::estimate_time(plan, unit, threads, all.preencoded).describe().c_str());
      if (least.plaintexts < all.plaintexts) {
        std::printf("; %.3g s with the diagonals encoded at every run", he::estimate_time(plan, unit, threads, least.preencoded).seconds);
      }
      std::printf("\n");
    };
    bool first = true;
    for (const he::Backend* b : he::backends()) {
      if (*mode != "both" && *mode != he::to_string(b->layout())) continue;
      if (!first) std::printf("\n");
      first = false;
      show(b->layout());
    }
  });
}

}  // namespace hecnn::cli
