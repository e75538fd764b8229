// The network service: `hecnn serve` (service/server.h) and `hecnn client` (keys generated and
// images encrypted and decrypted here; the server sees evaluation keys and ciphertexts only).
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <iostream>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "ckks/serialization.h"
#include "cli/batches.h"
#include "cli/commands.h"
#include "cli/images.h"
#include "cli/options.h"
#include "cli/outputs.h"
#include "common/error.h"
#include "he/backend.h"
#include "common/files.h"
#include "common/progress.h"
#include "common/stopwatch.h"
#include "he/files.h"
#include "he/keys.h"
#include "he/memory.h"
#include "he/runtime.h"
#include "nn/forward.h"
#include "nn/safetensors.h"
#include "service/client.h"
#include "service/server.h"
#include "service/wire.h"

namespace hecnn::cli {

namespace {

namespace fs = std::filesystem;
namespace v1 = hecnn::v1;
using service::RpcError;

struct ServeOptions {
  service::ServerOptions server;
  std::string memory_limit, log_file;
};

void run_serve(ServeOptions& o) {
  // SIGINT and SIGTERM stop the server cleanly: blocked in every thread, awaited by this one.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::ofstream log_file;
  if (!o.log_file.empty()) {
    log_file.open(o.log_file, std::ios::app);
    if (!log_file) throw Error("cannot open --log " + o.log_file);
    o.server.log = &log_file;
  } else {
    o.server.log = &std::cerr;
  }
  if (!o.memory_limit.empty()) o.server.memory_limit = he::parse_memory_size(o.memory_limit, "--memory-limit");
  o.server.allow_insecure_keys = o.server.compile.allow_insecure;
  service::Server server(o.server);
  server.start();
  std::printf("hecnn serve: listening on %s (port %d)%s\n", o.server.listen.c_str(), server.port(),
              o.server.tls_cert.empty() ? ", plaintext" : ", TLS");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "hecnn serve: stopping (signal %d)\n", sig);
  server.shutdown();
}

struct ClientOptions {
  service::ChannelOptions channel;
  std::string model, mode = "auto", keys, compare_model;
  std::vector<std::string> images;
  DatasetOptions data;
  bool list = false, print = false, quiet = false;
  int threads = 0;
  double retry_seconds = 120, timeout_seconds = 3600;
  std::size_t window = 2;
  std::string latencies;  // file: one line per query (images, seconds from submission to decrypted result)
};

he::ClientSpec spec_of(const v1::LayoutOffer& o) {
  try {
    return he::ClientSpec::from_json(nlohmann::json::parse(o.client_spec_json()));
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("the server sent a malformed client specification: ") + e.what());
  }
}

void print_models(const v1::ListModelsResponse& r) {
  for (const auto& m : r.models()) {
    std::printf("%s: input", m.name().c_str());
    for (std::size_t i = 0; i < static_cast<std::size_t>(m.input_shape_size()); ++i) std::printf("%s%u", i ? "x" : " ", m.input_shape(static_cast<int>(i)));
    std::printf(", %u outputs\n", m.outputs());
    for (const auto& l : m.layouts()) {
      std::printf("  %-6s %u images per query, keys: %s%s; %s; query memory %s\n", l.layout().c_str(), l.images_per_query(),
                  l.relinearization_key() ? "relin.key" : "", l.rotations_size() ? (" + galois.key (" + std::to_string(l.rotations_size()) + " rotations)").c_str() : "",
                  l.summary().c_str(), he::gib(l.predicted_query_memory()).c_str());
    }
  }
  const auto& s = r.stats();
  std::printf("server: %llu sessions active; queries served %llu, refused %llu, failed %llu; %llu queued, %llu running\n",
              static_cast<unsigned long long>(s.sessions_active()), static_cast<unsigned long long>(s.queries_served()),
              static_cast<unsigned long long>(s.queries_refused()), static_cast<unsigned long long>(s.queries_failed()),
              static_cast<unsigned long long>(s.queries_queued()), static_cast<unsigned long long>(s.queries_running()));
}

bool retryable(grpc::StatusCode c) {
  return c == grpc::StatusCode::RESOURCE_EXHAUSTED || c == grpc::StatusCode::UNAVAILABLE;
}
// The session is gone (server restarted, session expired): open a new one and resubmit.
bool session_lost(grpc::StatusCode c) {
  return c == grpc::StatusCode::UNAUTHENTICATED || c == grpc::StatusCode::NOT_FOUND || c == grpc::StatusCode::UNAVAILABLE ||
         c == grpc::StatusCode::CANCELLED;
}

void run_client(const ClientOptions& o) {
  protect_secrets();
  apply_threads(o.threads);
  service::RemoteClient rc(o.channel);
  // A server not yet up, or restarting, is retried for --retry-seconds (so is a busy one, below).
  // Each run of failures of one call is retried for --retry-seconds from its first failure.
  struct Retry {
    int attempt = 0;
    std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
  };
  auto backoff = [&](Retry& r, const RpcError& e) {
    if (r.attempt == 0) r.since = std::chrono::steady_clock::now();
    const auto give_up = r.since + std::chrono::milliseconds(static_cast<long long>(o.retry_seconds * 1000));
    if (std::chrono::steady_clock::now() >= give_up) throw Error(std::string(e.what()) + " (gave up retrying after --retry-seconds)");
    const int ms = std::min(2000, 100 << std::min(r.attempt, 5));
    ++r.attempt;
    std::this_thread::sleep_for(std::min(std::chrono::milliseconds(ms), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                            give_up - std::chrono::steady_clock::now())));
  };
  const v1::ListModelsResponse models = [&] {
    for (Retry retry;;) {
      try {
        return rc.list_models();
      } catch (const RpcError& e) {
        if (!retryable(e.code()) && e.code() != grpc::StatusCode::DEADLINE_EXCEEDED) throw;
        if (!o.quiet && retry.attempt == 0 && o.retry_seconds > 0) {
          std::fprintf(stderr, "hecnn client: %s; retrying for up to %g s\n", e.what(), o.retry_seconds);
        }
        backoff(retry, e);
      }
    }
  }();
  if (o.list) {
    print_models(models);
    return;
  }
  const v1::ModelInfo* model = nullptr;
  for (const auto& m : models.models()) {
    if (m.name() == o.model || (o.model.empty() && models.models_size() == 1)) model = &m;
  }
  if (!model) throw Error(o.model.empty() ? "the server offers several models: choose one with --model (see --list)"
                                          : "the server offers no model named '" + o.model + "' (see --list)");
  if (model->input_shape_size() != 3) throw Error("the server sent a malformed input shape");
  const nn::Shape shape{static_cast<int>(model->input_shape(0)), static_cast<int>(model->input_shape(1)),
                        static_cast<int>(model->input_shape(2))};

  // The images: files, or a range of a dataset's test split.
  nn::Dataset data;
  std::size_t first = 0, n = 0;
  const bool files = !o.images.empty();
  if (files) {
    data.name = "files";
    data.shape = shape;
    for (const auto& f : o.images) {
      const auto px = read_image(f, shape);
      data.images.insert(data.images.end(), px.begin(), px.end());
      data.labels.push_back(0);
    }
    n = o.images.size();
  } else {
    data = load_dataset(o.data);
    if (!(data.shape == shape)) {
      throw Error("model '" + model->name() + "' takes " + shape.to_string() + " inputs, " + o.data.dataset + " images are " +
                  data.shape.to_string());
    }
    first = o.data.offset;
    n = selected_count(o.data, data.size());
  }

  // Keys: those of --keys when it holds some, else generated here for the server's plan, in
  // memory (stored in --keys when given: nothing is written to disk without it).
  const bool stored = !o.keys.empty() && fs::exists(fs::path(o.keys) / "keys.json");
  const he::KeyBundle keys = [&] {
    if (stored) {
      he::KeyReadOptions ko;
      ko.secret = he::SecretPart::Require;
      return he::KeyBundle::load_directory(o.keys, ko);
    }
    const v1::LayoutOffer* packed = nullptr;
    for (const auto& l : model->layouts()) {
      if (l.layout() == "packed") packed = &l;
    }
    const he::Layout layout = o.mode == "auto" ? he::auto_layout(n, packed ? packed->images_per_query() : 0) : he::parse_layout(o.mode);
    const v1::LayoutOffer* offer = nullptr;
    for (const auto& l : model->layouts()) {
      if (l.layout() == he::to_string(layout)) offer = &l;
    }
    if (!offer) throw Error("model '" + model->name() + "' is not offered in the " + he::to_string(layout) + " layout");
    ckks::ParameterOptions po;
    po.allow_insecure = offer->insecure();
    std::istringstream ps(offer->params(), std::ios::binary);
    const ckks::CkksParameters params = ckks::load_parameters(ps, po);
    he::KeyRequirements need;
    need.relinearization = offer->relinearization_key();
    // Bounded: a server may not make the client generate an unbounded key set.
    constexpr int kMaxRotationKeys = 4096;
    if (offer->rotations_size() > kMaxRotationKeys) {
      throw Error("the server asks for " + std::to_string(offer->rotations_size()) + " rotation keys, more than " +
                  std::to_string(kMaxRotationKeys));
    }
    need.rotations.assign(offer->rotations().begin(), offer->rotations().end());
    if (offer->rotation_levels_size() == offer->rotations_size()) {
      for (const std::uint32_t l : offer->rotation_levels()) need.rotation_levels.push_back(std::min<std::size_t>(l, params.max_level()));
    }
    const Stopwatch t;
    he::KeyBundle b = he::KeyBundle::generate(params, need, spec_of(*offer), model->name());
    if (!o.keys.empty()) b.save_directory(o.keys, false);
    if (!o.quiet) std::fprintf(stderr, "keys generated for %s (%s layout) in %.2f s\n", model->name().c_str(), offer->layout().c_str(), t.seconds());
    return b;
  }();
  warn_if_insecure(keys.info(), keys.params());
  const he::ClientSpec& spec = keys.info().spec;
  if (!(spec.input == shape)) {
    throw Error("the keys" + (stored ? " in " + o.keys : std::string()) + " are for " + spec.input.to_string() +
                " inputs, the model takes " + shape.to_string());
  }
  const auto client = he::make_client(spec, keys.context(), keys.secret_key());
  const std::string upload = keys.public_bytes();  // what the server gets: never the secret key

  std::optional<nn::Evaluation> plain;
  if (!o.compare_model.empty() && !files) plain = nn::evaluate(nn::load_model(o.compare_model), data, first + n, true);
  Tally tally(files ? nullptr : &data, plain ? &*plain : nullptr);

  const std::vector<he::BatchInfo> batches = split_batches(first, n, spec.batch_size);
  const Stopwatch total;
  service::SessionCredentials session;
  auto open = [&] {
    for (Retry retry;;) {
      try {
        session = rc.open_session(model->name(), he::to_string(spec.layout), upload);
        return;
      } catch (const RpcError& e) {
        // CANCELLED: a server shutting down cancels the calls it still has (a restart): try again.
        if (!retryable(e.code()) && e.code() != grpc::StatusCode::CANCELLED) throw;
        backoff(retry, e);
      }
    }
  };
  const Stopwatch t_open;
  open();
  if (!o.quiet) std::fprintf(stderr, "session opened in %.2f s; %zu images in %zu queries of up to %zu\n", t_open.seconds(), n, batches.size(), spec.batch_size);

  StepTimes times;
  ProgressLine line(!o.quiet);
  struct Pending {
    std::size_t batch;
    std::string id;
    Stopwatch since;  // from the query's encryption to its decrypted result
  };
  std::vector<double> latency;
  std::deque<Pending> pending;
  std::size_t next = 0, done = 0;
  double server_seconds = 0;
  auto submit = [&](std::size_t b) {
    const std::string cts = service::serialize_ciphertexts(*keys.context(), encrypt_batch(*client, data, batches[b], times), true);
    for (Retry retry;;) {
      try {
        return rc.submit(session, cts, batches[b].count, spec.input_ciphertexts);
      } catch (const RpcError& e) {
        if (!retryable(e.code())) throw;
        if (line.enabled()) line.update("query " + std::to_string(b + 1) + ": " + e.what() + "; retrying", true);
        backoff(retry, e);
      }
    }
  };
  int recoveries = 0;
  while (done < batches.size()) {
    try {
      while (next < batches.size() && pending.size() < std::max<std::size_t>(1, o.window)) {
        const Stopwatch since;
        pending.push_back({next, submit(next), since});
        ++next;
      }
      const Pending p = pending.front();
      const auto show = [&](const v1::QueryStatus& st) {
        if (!line.enabled()) return;
        char b[200];
        if (st.state() == v1::QueryStatus::QUEUED) {
          std::snprintf(b, sizeof b, "query %zu/%zu: queued, %u ahead", p.batch + 1, batches.size(), st.queue_position());
        } else if (st.state() == v1::QueryStatus::RUNNING) {
          std::snprintf(b, sizeof b, "query %zu/%zu: stage %u/%u %-20.20s %5.1f %%  %6.1f s", p.batch + 1, batches.size(), st.stage(),
                        st.stages(), st.stage_name().c_str(), 100.0 * st.stage_fraction(), st.elapsed_seconds());
        } else {
          std::snprintf(b, sizeof b, "query %zu/%zu: done", p.batch + 1, batches.size());
        }
        line.update(b);
      };
      const service::RemoteResult r = rc.get_result(session, p.id, true, show, o.timeout_seconds);
      if (r.ciphertexts != spec.output_ciphertexts || r.images != batches[p.batch].count) {
        throw Error("the server's result does not have the query's image or ciphertext count");
      }
      server_seconds += r.seconds;
      const auto result = service::parse_ciphertexts(r.bytes, *keys.context(), spec.output_ciphertexts);
      const auto logits = decrypt_batch(*client, result, batches[p.batch], times);
      line.clear();
      if (files && o.print) {
        for (std::size_t i = 0; i < logits.size(); ++i) {
          std::printf("%s: %d\n", o.images[batches[p.batch].first + i].c_str(), nn::argmax(logits[i]));
        }
        tally.add(batches[p.batch], logits, false);
      } else {
        tally.add(batches[p.batch], logits, o.print);
      }
      latency.push_back(p.since.seconds());
      pending.pop_front();
      ++done;
    } catch (const RpcError& e) {
      // The server restarted, or the session expired: a new session, and every pending query again.
      if (!session_lost(e.code()) || ++recoveries > 5) throw;
      std::fprintf(stderr, "hecnn client: %s; opening a new session and resubmitting %zu queries\n", e.what(), pending.size());
      pending.clear();
      next = done;
      open();
    }
  }
  line.clear();
  try {
    rc.close(session);
  } catch (const RpcError&) {
  }
  std::printf("classified %zu images through %s in %.2f s (server inference %.2f s; encrypt %.2f s, decrypt %.2f s)\n", n,
              o.channel.address.c_str(), total.seconds(), server_seconds, times.encrypt, times.decrypt);
  if (!latency.empty()) {
    std::vector<double> sorted = latency;
    std::sort(sorted.begin(), sorted.end());
    const auto pct = [&](double q) { return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(q * static_cast<double>(sorted.size())))]; };
    std::printf("query latency (encryption to decrypted result, %zu queries): p50 %.3f s, p90 %.3f s, p99 %.3f s, max %.3f s\n",
                sorted.size(), pct(0.5), pct(0.9), pct(0.99), sorted.back());
  }
  if (!o.latencies.empty()) {
    std::string text;
    char b[64];
    for (std::size_t i = 0; i < latency.size(); ++i) {
      std::snprintf(b, sizeof b, "%zu %.6f\n", batches[i].count, latency[i]);
      text += b;
    }
    hecnn::write_file_atomic(o.latencies, [&](std::ostream& os) { os << text; }, hecnn::FileMode::Public);
  }
  if (!files) tally.print_summary();
}

}  // namespace

void register_remote(CLI::App& app) {
  auto s = std::make_shared<ServeOptions>();
  CLI::App* sv = app.add_subcommand("serve", "Serve models over gRPC: encrypted queries in, encrypted scores out");
  auto& so = s->server;
  sv->add_option("--listen", so.listen, "ADDR:PORT to listen on (port 0: any free port, printed)")->capture_default_str();
  sv->add_option("--models", so.models_dir, "Directory of models: every *.safetensors, offered by file stem")->required();
  add_compile_options(sv, so.compile);
  add_threads_option(sv, so.threads);
  sv->add_option("--concurrent", so.concurrent_queries, "Queries running at once (each gets threads / this)")
      ->transform(whole_number(1, 64))->capture_default_str();
  sv->add_option("--max-sessions", so.max_sessions, "Sessions (uploaded key sets) held at once")->transform(whole_number(1, 100000))->capture_default_str();
  sv->add_option("--max-queries", so.max_queries, "Queries queued and running at once; beyond: RESOURCE_EXHAUSTED")
      ->transform(whole_number(1, 100000))->capture_default_str();
  sv->add_option("--max-results", so.max_results, "Results stored and not yet fetched")->transform(whole_number(1, 100000))->capture_default_str();
  sv->add_option("--result-lifetime", so.result_lifetime_s, "Seconds a result is kept after it is done")
      ->check(CLI::Range(0.1, 1e7))->capture_default_str();
  sv->add_option("--session-idle", so.session_idle_s, "Seconds a session is kept without a call (and no query)")
      ->check(CLI::Range(0.1, 1e7))->capture_default_str();
  sv->add_option("--max-key-bytes", so.max_key_bytes, "Largest key upload (bytes; k, M, G suffixes are powers of 1024)")
      ->transform(CLI::AsSizeValue(false))->capture_default_str();
  sv->add_option("--max-query-bytes", so.max_query_bytes, "Largest query (bytes; k, M, G suffixes)")
      ->transform(CLI::AsSizeValue(false))->capture_default_str();
  sv->add_option("--request-deadline", so.request_deadline_s, "Seconds one call may run (uploads, waits for a result)")
      ->check(CLI::Range(0.1, 1e7))->capture_default_str();
  add_memory_limit_option(sv, s->memory_limit);
  sv->add_option("--tls-cert", so.tls_cert, "PEM certificate (chain) of the server: TLS");
  sv->add_option("--tls-key", so.tls_key, "PEM private key of --tls-cert");
  sv->add_flag("--insecure-plaintext", so.insecure_plaintext, "Allow plaintext on a non-loopback address (UNSAFE)");
  sv->add_option("--log", s->log_file, "Append the structured log to this file (default: stderr)");
  sv->callback([s] { run_serve(*s); });

  auto c = std::make_shared<ClientOptions>();
  CLI::App* cl = app.add_subcommand("client", "Classify images through a hecnn server: keys made, images encrypted and scores decrypted here");
  cl->add_option("--server", c->channel.address, "ADDR:PORT of the server")->capture_default_str();
  cl->add_option("--tls-ca", c->channel.tls_ca, "PEM certificate authority to trust: TLS (default: plaintext)");
  cl->add_option("--tls-name", c->channel.tls_name, "Name the server's certificate must carry (default: the server's host)");
  cl->add_flag("--list", c->list, "List the server's models and counters, and stop");
  cl->add_option("--model,-m", c->model, "Model name on the server (default: its only model)");
  add_mode_option(cl, c->mode);
  cl->add_option("--keys,-k", c->keys, "Key directory: used when it holds keys, else keys are generated into it (default: keys in memory only, nothing written)");
  add_dataset_options(cl, c->data, true);
  cl->add_option("--image", c->images, "Image files to classify (PNG, JPEG, PGM/PPM) instead of a dataset")->check(CLI::ExistingFile);
  cl->add_option("--compare-model", c->compare_model, "Local model file: agreement of the predictions with its plaintext ones");
  cl->add_flag("--print", c->print, "Print every prediction");
  add_quiet_flag(cl, c->quiet);
  add_threads_option(cl, c->threads);
  cl->add_option("--window", c->window, "Queries submitted ahead of the results")->transform(whole_number(1, 64))->capture_default_str();
  cl->add_option("--latencies", c->latencies, "Write each query's latency (images, seconds from encryption to decrypted result) to this file");
  cl->add_option("--retry-seconds", c->retry_seconds, "How long to retry when the server is busy or unreachable")
      ->check(CLI::Range(0.0, 1e6))->capture_default_str();
  cl->add_option("--timeout", c->timeout_seconds, "Seconds to wait for one result")->check(CLI::Range(0.1, 1e7))->capture_default_str();
  cl->callback([c] { run_client(*c); });
}

}  // namespace hecnn::cli
