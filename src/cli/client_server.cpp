// The client/server split through files: keygen, encrypt (client), infer (server: it never reads
// a secret key), decrypt (client).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "common/threads.h"
#include "cli/commands.h"
#include "cli/encrypted.h"
#include "he/files.h"
#include "nn/dataset.h"
#include "nn/forward.h"
#include "nn/safetensors.h"

namespace hecnn::cli {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
std::string mib(std::size_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return b;
}

he::CompileOptions options_from(const he::KeyInfo& k) {
  he::CompileOptions o = k.compile;
  return o;
}

struct KeygenOptions {
  std::string model, out;
  he::CompileOptions compile;
};

void run_keygen(const KeygenOptions& o) {
  const nn::Model m = nn::load_model(o.model);
  const he::HePlan plan = he::compile(m, o.compile);
  std::printf("%s", plan.describe().c_str());
  const auto t = Clock::now();
  const he::KeyFiles k = he::generate_keys(plan, o.model, o.out);
  std::printf("keys written to %s in %.2f s:\n", o.out.c_str(), since(t));
  std::printf("  secret.key  %10s  client only: never send it anywhere\n", mib(k.secret_bytes).c_str());
  std::printf("  relin.key   %10s  evaluation key, for the server\n", mib(k.relin_bytes).c_str());
  std::printf("  params.bin  %10s  for the server\n", mib(k.params_bytes).c_str());
  std::printf("  keys.json               for the server\n");
}

struct EncryptOptions {
  std::string keys, dataset = "mnist", data_dir, out;
  std::size_t limit = 0, offset = 0;
  int threads = 0;
};

void run_encrypt(const EncryptOptions& o) {
  hecnn::set_num_threads(o.threads);
  const he::ClientKeys keys = he::load_client_keys(o.keys);
  const nn::Dataset data = nn::load_dataset(o.dataset, nn::Split::Test, o.data_dir);
  if (!(data.shape == keys.info.input)) {
    throw Error("the keys are for " + keys.info.input.to_string() + " inputs, " + o.dataset + " images are " + data.shape.to_string());
  }
  if (o.offset >= data.size()) throw Error("--offset is beyond the " + std::to_string(data.size()) + " images");
  const std::size_t n = std::min(o.limit == 0 ? data.size() : o.limit, data.size() - o.offset);
  // The client needs only the parameters and scale: a plan shell with the input shape.
  he::HePlan shell;
  shell.input = keys.info.input;
  shell.params = keys.ctx->params();
  shell.scale_bits = keys.info.scale_bits;
  he::StreamHeader h;
  h.kind = "query";
  h.key_id = keys.info.key_id;
  h.params_id = keys.info.params_id;
  h.shape = keys.info.input;
  h.per_batch = static_cast<std::size_t>(keys.info.input.size());
  h.dataset = o.dataset;
  for (std::size_t s = 0; s < n; s += keys.info.batch_size) h.batches.push_back({o.offset + s, std::min(keys.info.batch_size, n - s)});
  const he::Client client(shell, keys.ctx, keys.secret);
  he::StreamWriter w(o.out, h, keys.ctx);
  const auto t = Clock::now();
  const auto pixels = static_cast<std::size_t>(keys.info.input.size());
  for (const auto& b : h.batches) {
    w.write_batch(client.encrypt(data.images.data() + b.first * pixels, b.count));
    std::fprintf(stderr, "encrypted images %zu-%zu\n", b.first, b.first + b.count - 1);
  }
  w.close();
  std::printf("encrypted %zu images (%zu batch(es)) in %.2f s: %s, %s\n", n, h.batches.size(), since(t), o.out.c_str(),
              mib(std::filesystem::file_size(o.out)).c_str());
}

struct InferOptions {
  std::string model, keys, in, out;
  int threads = 0;
  bool quiet = false;
};

void run_infer(const InferOptions& o) {
  hecnn::set_num_threads(o.threads);
  const he::ServerKeys keys = he::load_server_keys(o.keys);
  const nn::Model m = nn::load_model(o.model);
  const he::HePlan plan = he::compile(m, options_from(keys.info));
  if (plan.params->id() != keys.info.params_id) {
    throw Error("the evaluation keys were made for another model or other options (parameters differ); run hecnn "
                "keygen with this model");
  }
  he::StreamReader r(o.in, "query", keys.info, keys.ctx);
  if (!(r.header().shape == plan.input)) {
    throw Error("the query holds " + r.header().shape.to_string() + " images, the model expects " + plan.input.to_string());
  }
  he::StreamHeader h = r.header();
  h.kind = "result";
  h.shape = {static_cast<int>(plan.outputs()), 1, 1};
  h.per_batch = plan.outputs();
  he::StreamWriter w(o.out, h, keys.ctx);
  const he::Engine engine(plan, keys.ctx, keys.relin);
  const auto t = Clock::now();
  std::size_t images = 0;
  for (std::size_t b = 0; b < h.batches.size(); ++b) {
    std::fprintf(stderr, "batch %zu/%zu: %zu images\n", b + 1, h.batches.size(), h.batches[b].count);
    w.write_batch(engine.run(r.read_batch(), stage_progress(!o.quiet && isatty(fileno(stderr)))));
    images += h.batches[b].count;
  }
  r.finish();
  w.close();
  std::printf("classified %zu encrypted images in %.2f s (%.1f images/s); results: %s; peak memory %.2f GiB\n", images,
              since(t), static_cast<double>(images) / since(t), o.out.c_str(), peak_memory_gib());
}

struct DecryptOptions {
  std::string keys, in, labels_dataset, data_dir;
  bool print = false;
};

void run_decrypt(const DecryptOptions& o) {
  const he::ClientKeys keys = he::load_client_keys(o.keys);
  he::StreamReader r(o.in, "result", keys.info, keys.ctx);
  if (r.header().per_batch != keys.info.outputs) throw Error(o.in + ": the result does not have the model's output count");
  he::HePlan shell;
  shell.input = keys.info.input;
  shell.params = keys.ctx->params();
  shell.scale_bits = keys.info.scale_bits;
  shell.output_factor = keys.info.output_factor;
  he::Stage last;
  last.out = {static_cast<int>(keys.info.outputs), 1, 1};
  shell.stages.push_back(last);
  const he::Client client(shell, keys.ctx, keys.secret);
  std::optional<nn::Dataset> labels;
  if (!o.labels_dataset.empty()) labels = nn::load_dataset(o.labels_dataset, nn::Split::Test, o.data_dir);
  std::size_t n = 0, correct = 0;
  for (const auto& b : r.header().batches) {
    const auto logits = client.decrypt(r.read_batch(), b.count);
    for (std::size_t i = 0; i < b.count; ++i) {
      const int pred = nn::argmax(logits[i]);
      const std::size_t idx = b.first + i;
      if (labels) {
        if (idx >= labels->size()) throw Error("image index " + std::to_string(idx) + " is beyond the label set");
        correct += pred == labels->labels[idx];
      }
      if (o.print) {
        std::printf("%zu: %d", idx, pred);
        if (labels) std::printf(" (label %d)", labels->labels[idx]);
        std::printf("\n");
      }
      ++n;
    }
  }
  r.finish();
  std::printf("decrypted %zu predictions", n);
  if (labels) std::printf("; accuracy %.2f %% (%zu / %zu)", 100.0 * static_cast<double>(correct) / static_cast<double>(n), correct, n);
  std::printf("\n");
}

}  // namespace

void register_client_server(CLI::App& app) {
  auto k = std::make_shared<KeygenOptions>();
  CLI::App* kg = app.add_subcommand("keygen", "Generate keys for a model (client side)");
  kg->add_option("--model,-m", k->model, "Model file (.safetensors)")->required();
  kg->add_option("--out,-o", k->out, "Key directory to write")->required();
  add_compile_options(kg, k->compile);
  kg->callback([k] { run_keygen(*k); });

  auto e = std::make_shared<EncryptOptions>();
  CLI::App* en = app.add_subcommand("encrypt", "Encrypt test images into a query file (client side)");
  en->add_option("--keys,-k", e->keys, "Key directory (from hecnn keygen)")->required();
  en->add_option("--dataset,-d", e->dataset, "mnist | fashion-mnist | cifar10")->capture_default_str();
  en->add_option("--data-dir", e->data_dir, "Directory holding the dataset files");
  en->add_option("--limit,-n", e->limit, "Number of images (default: all)");
  en->add_option("--offset", e->offset, "Index of the first image");
  en->add_option("--out,-o", e->out, "Query file to write")->required();
  en->add_option("--threads,-t", e->threads, "Threads (0: all cores)");
  en->callback([e] { run_encrypt(*e); });

  auto i = std::make_shared<InferOptions>();
  CLI::App* in = app.add_subcommand("infer", "Classify an encrypted query (server side; reads no secret key)");
  in->add_option("--model,-m", i->model, "Model file (.safetensors)")->required();
  in->add_option("--eval-keys,-k", i->keys, "Key directory: keys.json, params.bin, relin.key")->required();
  in->add_option("--in,-i", i->in, "Query file")->required();
  in->add_option("--out,-o", i->out, "Result file to write")->required();
  in->add_option("--threads,-t", i->threads, "Threads (0: all cores)");
  in->add_flag("--quiet,-q", i->quiet, "No progress output");
  in->callback([i] { run_infer(*i); });

  auto d = std::make_shared<DecryptOptions>();
  CLI::App* de = app.add_subcommand("decrypt", "Decrypt a result file into predictions (client side)");
  de->add_option("--keys,-k", d->keys, "Key directory (from hecnn keygen)")->required();
  de->add_option("--in,-i", d->in, "Result file")->required();
  de->add_option("--labels", d->labels_dataset, "Dataset whose test labels give the accuracy (mnist, fashion-mnist, cifar10)");
  de->add_option("--data-dir", d->data_dir, "Directory holding the dataset files");
  de->add_flag("--print", d->print, "Print every prediction");
  de->callback([d] { run_decrypt(*d); });
}

}  // namespace hecnn::cli
