// The client/server split through files: keygen, encrypt (client), infer (server: it never reads
// a secret key), decrypt (client).
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli/batches.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "cli/outputs.h"
#include "common/error.h"
#include "he/backend.h"
#include "common/stopwatch.h"
#include "he/files.h"
#include "he/runtime.h"
#include "he/session.h"
#include "nn/dataset.h"
#include "nn/safetensors.h"

namespace hecnn::cli {

namespace {

std::string mib(std::size_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return b;
}

struct KeygenOptions {
  std::string model, out;
  bool force = false;
  he::CompileOptions compile;
  std::string mode = "auto", memory_limit;
  std::size_t images = 1;
};

void run_keygen(const KeygenOptions& o) {
  protect_secrets();
  for (const auto& f : key_directory_files(o.out)) {
    std::error_code ec;
    if (std::filesystem::exists(f, ec) && std::filesystem::equivalent(f, o.model, ec)) {
      throw Error("--model " + o.model + " is the key file " + f + "; refusing to overwrite it");
    }
  }
  const nn::Model m = nn::load_model(o.model);
  std::vector<std::string> notes;
  const he::HePlan plan = he::compile_for_mode(m, o.compile, o.mode, o.images, memory_limit(o.memory_limit).bytes,
                                               hecnn::num_threads(), he::batch::kDefaultTile, &notes);
  for (const auto& n : notes) std::fprintf(stderr, "%s\n", n.c_str());
  std::printf("%s", plan.describe().c_str());
  const Stopwatch t;
  const he::KeyFiles k = he::generate_keys(plan, o.model, o.out, o.force);
  std::printf("keys written to %s in %.2f s:\n", o.out.c_str(), t.seconds());
  std::printf("  secret.key  %10s  client only: never send it anywhere\n", mib(k.secret_bytes).c_str());
  if (k.relin_bytes) std::printf("  relin.key   %10s  evaluation key, for the server\n", mib(k.relin_bytes).c_str());
  if (k.galois_bytes) std::printf("  galois.key  %10s  rotation keys, for the server\n", mib(k.galois_bytes).c_str());
  if (k.bootstrap_bytes) {
    std::printf("  bootstrap.key %8s  bootstrapping's switches to a sparse secret and back, for the server\n", mib(k.bootstrap_bytes).c_str());
  }
  std::printf("  params.bin  %10s  for the server\n", mib(k.params_bytes).c_str());
  std::printf("  keys.json               for the server\n");
}

struct EncryptOptions {
  std::string keys, out;
  DatasetOptions data;
  int threads = 0;
};

void run_encrypt(const EncryptOptions& o) {
  protect_secrets();
  apply_threads(o.threads);
  check_output("--out", o.out, key_directory_files(o.keys));
  const he::ClientKeys keys = he::load_client_keys(o.keys);
  warn_if_insecure(keys.info, keys.ctx->params());
  const he::ClientSpec& spec = keys.info.spec;
  const nn::Dataset data = load_dataset(o.data);
  if (!(data.shape == spec.input)) {
    throw Error("the keys are for " + spec.input.to_string() + " inputs, " + o.data.dataset + " images are " + data.shape.to_string());
  }
  const std::size_t n = selected_count(o.data, data.size());
  he::StreamHeader h;
  h.kind = "query";
  h.key_id = keys.info.key_id;
  h.params_id = spec.params_id;
  h.shape = spec.input;
  h.per_batch = spec.input_ciphertexts;
  h.dataset = o.data.dataset;
  h.dataset_size = data.size();
  h.batches = split_batches(o.data.offset, n, spec.batch_size);
  const auto client = he::make_client(spec, keys.ctx, keys.secret);
  he::StreamWriter w(o.out, h, keys.ctx);
  StepTimes times;
  for (const auto& b : h.batches) {
    w.write_batch(encrypt_batch(*client, data, b, times));
    std::fprintf(stderr, "encrypted images %zu-%zu\n", b.first, b.first + b.count - 1);
  }
  w.close();
  std::printf("encrypted %zu images (%zu batch(es)) in %.2f s: %s, %s\n", n, h.batches.size(), times.encrypt, o.out.c_str(),
              mib(std::filesystem::file_size(o.out)).c_str());
}

struct InferOptions {
  std::string model, keys, in, out, memory_limit;
  StreamOptions stream;
  int threads = 0;
  bool quiet = false;
};

void run_infer(const InferOptions& o) {
  apply_threads(o.threads);
  std::vector<std::string> inputs = key_directory_files(o.keys);
  inputs.push_back(o.model);
  inputs.push_back(o.in);
  check_output("--out", o.out, inputs);
  he::KeyReadOptions ko;
  ko.secret = he::SecretPart::Ignore;  // a server never reads secret.key
  const nn::Model m = nn::load_model(o.model);
  he::Session session(m, he::KeyBundle::load_directory(o.keys, ko));
  const he::KeyInfo& info = session.info();
  warn_if_insecure(info, session.context()->params());
  const he::ClientSpec& spec = info.spec;
  const he::HePlan& plan = session.plan();
  he::StreamReader r(o.in, "query", info, session.context());
  if (!(r.header().shape == plan.program.input)) {
    throw Error("the query holds " + r.header().shape.to_string() + " images, the model expects " + plan.program.input.to_string());
  }
  he::StreamHeader h = r.header();
  h.kind = "result";
  h.shape = {static_cast<int>(spec.outputs), 1, 1};
  h.per_batch = spec.output_ciphertexts;
  he::StreamWriter w(o.out, h, session.context());
  session.start(plan_memory(plan, memory_limit(o.memory_limit), false, o.quiet, o.stream));
  he::InferenceEngine& engine = session.engine();
  StepTimes times;
  std::size_t images = 0;
  for (std::size_t b = 0; b < h.batches.size(); ++b) {
    std::fprintf(stderr, "batch %zu/%zu: %zu images\n", b + 1, h.batches.size(), h.batches[b].count);
    w.write_batch(infer_batch(engine, r.read_batch(), o.quiet, times));
    images += h.batches[b].count;
  }
  r.finish();
  w.close();
  std::printf("classified %zu encrypted images in %.2f s (%.1f images/s); results: %s; peak memory %.2f GiB\n", images,
              times.infer, static_cast<double>(images) / times.infer, o.out.c_str(), peak_memory_gib());
}

struct DecryptOptions {
  std::string keys, in, labels_dataset, data_dir;
  bool print = false;
};

void run_decrypt(const DecryptOptions& o) {
  protect_secrets();
  const he::ClientKeys keys = he::load_client_keys(o.keys);
  warn_if_insecure(keys.info, keys.ctx->params());
  he::StreamReader r(o.in, "result", keys.info, keys.ctx);
  if (r.header().per_batch != keys.info.spec.output_ciphertexts) {
    throw Error(o.in + ": the result does not have the model's output count");
  }
  std::optional<nn::Dataset> labels;
  if (!o.labels_dataset.empty()) {
    he::check_dataset_name(r.header(), o.in, o.labels_dataset);
    labels = nn::load_dataset(o.labels_dataset, nn::Split::Test, o.data_dir);
    // The labels must be those of the images encrypted: same dataset, same test set, indices in it.
    he::check_dataset(r.header(), o.in, o.labels_dataset, labels->size());
  }
  const auto client = he::make_client(keys.info.spec, keys.ctx, keys.secret);
  Tally tally(labels ? &*labels : nullptr, nullptr);
  StepTimes times;
  for (const auto& b : r.header().batches) tally.add(b, decrypt_batch(*client, r.read_batch(), b, times), o.print);
  r.finish();
  std::printf("decrypted %zu predictions", tally.count());
  if (labels) {
    std::printf("; accuracy %.2f %% (%zu / %zu)", 100.0 * static_cast<double>(tally.correct()) / static_cast<double>(tally.count()),
                tally.correct(), tally.count());
  }
  std::printf("\n");
}

}  // namespace

void register_client_server(CLI::App& app) {
  auto k = std::make_shared<KeygenOptions>();
  CLI::App* kg = app.add_subcommand("keygen", "Generate keys for a model (client side)");
  kg->add_option("--model,-m", k->model, "Model file (.safetensors)")->required();
  kg->add_option("--out,-o", k->out, "Key directory to write (new or empty)")->required();
  kg->add_flag("--force", k->force,
               "Replace the keys of an existing key directory (files are replaced atomically; symbolic links "
               "are still refused)");
  add_compile_options(kg, k->compile);
  add_mode_option(kg, k->mode);
  kg->add_option("--images", k->images,
                 "Images per query the keys are for (auto mode: packed for a few, batch for many; the packed layout is "
                 "planned for that many)")
      ->transform(whole_number(1, 1000000))
      ->capture_default_str();
  add_memory_limit_option(kg, k->memory_limit);
  kg->callback([k] { run_keygen(*k); });

  auto e = std::make_shared<EncryptOptions>();
  CLI::App* en = app.add_subcommand("encrypt", "Encrypt test images into a query file (client side)");
  en->add_option("--keys,-k", e->keys, "Key directory (from hecnn keygen)")->required();
  add_dataset_options(en, e->data, true);
  en->add_option("--out,-o", e->out, "Query file to write")->required();
  add_threads_option(en, e->threads);
  en->callback([e] { run_encrypt(*e); });

  auto i = std::make_shared<InferOptions>();
  CLI::App* in = app.add_subcommand("infer", "Classify an encrypted query (server side; reads no secret key)");
  in->add_option("--model,-m", i->model, "Model file (.safetensors)")->required();
  in->add_option("--eval-keys,-k", i->keys, "Key directory: keys.json, params.bin, relin.key")->required();
  in->add_option("--in,-i", i->in, "Query file")->required();
  in->add_option("--out,-o", i->out, "Result file to write")->required();
  add_threads_option(in, i->threads);
  add_quiet_flag(in, i->quiet);
  add_memory_limit_option(in, i->memory_limit);
  add_stream_options(in, i->stream);
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
