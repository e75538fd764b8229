// The server's life (start, shutdown), the offered models, ListModels, GetStats and the
// authentication of calls. The other calls: sessions.cpp, queries.cpp, workers.cpp.
#include "service/server.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "he/backend.h"
#include "common/stopwatch.h"
#include "common/threads.h"
#include "he/memory.h"
#include "nn/safetensors.h"
#include "service/server_impl.h"
#include "service/wire.h"

namespace hecnn::service {

namespace fs = std::filesystem;

namespace {

std::string read_small_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + what + " " + path);
  std::string s;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    s.append(buf, static_cast<std::size_t>(in.gcount()));
    if (s.size() > (1u << 20)) throw Error(what + " " + path + " is larger than 1 MiB");
  }
  return s;
}

}  // namespace

bool is_loopback_address(const std::string& listen) {
  std::string host = listen;
  if (!host.empty() && host.front() == '[') {
    const auto e = host.find(']');
    host = e == std::string::npos ? host : host.substr(1, e - 1);
  } else if (std::count(host.begin(), host.end(), ':') == 1) {
    host = host.substr(0, host.find(':'));
  }
  if (host == "localhost" || host == "::1") return true;
  return host.rfind("127.", 0) == 0 && std::all_of(host.begin(), host.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; });
}

void Server::Impl::load_models() {
  if (opt.models_dir.empty()) throw Error("--models: no model directory given");
  if (!fs::is_directory(opt.models_dir)) throw Error("--models: " + opt.models_dir + " is not a directory");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(opt.models_dir)) {
    if (e.is_regular_file() && e.path().extension() == ".safetensors") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error("--models: no *.safetensors file in " + opt.models_dir);
  threads_per_query = std::max(1, (opt.threads > 0 ? opt.threads : hecnn::num_threads()) /
                                      static_cast<int>(std::max<std::size_t>(1, opt.concurrent_queries)));
  for (const auto& f : files) {
    auto m = std::make_unique<ModelEntry>();
    m->name = f.stem().string();
    const Stopwatch t;
    m->model = nn::load_model(f.string());
    for (const he::Backend* b : he::backends()) {
      const he::Layout l = b->layout();
      try {
        Offer o;
        o.plan = he::compile(m->model, opt.compile, l);
        std::ostringstream os(std::ios::binary);
        ckks::save(os, *o.plan.params);
        o.params_bytes = std::move(os).str();
        o.query_memory =
            he::estimate_memory(o.plan, threads_per_query, kSessionPlaintextBudget, false).ciphertexts;
        m->offers.emplace(l, std::move(o));
      } catch (const Error& e) {
        log.event("model_layout_unavailable", {{"model", m->name}, {"layout", he::to_string(l)}, {"reason", e.what()}});
      }
    }
    if (m->offers.empty()) throw Error(f.string() + ": no layout can run this model");
    log.event("model_loaded", {{"model", m->name}, {"layouts", static_cast<std::uint64_t>(m->offers.size())},
                               {"compile_s", t.seconds()}});
    models.push_back(std::move(m));
  }
}

const ModelEntry* Server::Impl::find_model(const std::string& name) const {
  for (const auto& m : models) {
    if (m->name == name) return m.get();
  }
  return nullptr;
}

void Server::Impl::fill_stats(v1::Stats* s) {
  const std::lock_guard<std::mutex> lock(mu);
  s->set_sessions_opened(counters.sessions_opened);
  s->set_sessions_refused(counters.sessions_refused);
  s->set_sessions_active(sessions.size());
  s->set_queries_served(counters.served);
  s->set_queries_refused(counters.refused);
  s->set_queries_failed(counters.failed);
  s->set_queries_cancelled(counters.cancelled);
  s->set_queries_queued(queue.size());
  s->set_queries_running(running);
  s->set_results_stored(results_stored);
  s->set_memory_reserved(reserved);
  s->set_memory_limit(capacity);
}

grpc::Status Server::Impl::authenticate(grpc::ServerContext* ctx, std::shared_ptr<ClientSession>& out) {
  const auto& md = ctx->client_metadata();
  const auto sid = md.find(kSessionHeader);
  const auto auth = md.find(kAuthorizationHeader);
  const grpc::Status denied = status(grpc::StatusCode::UNAUTHENTICATED, "unknown session or wrong token");
  if (sid == md.end() || auth == md.end()) {
    return status(grpc::StatusCode::UNAUTHENTICATED, "missing session credentials (metadata hecnn-session and authorization)");
  }
  const std::string id(sid->second.data(), std::min<std::size_t>(sid->second.size(), 64));
  std::string value(auth->second.data(), std::min<std::size_t>(auth->second.size(), 128));
  const std::lock_guard<std::mutex> lock(mu);
  const auto it = sessions.find(id);
  const bool ok = it != sessions.end() && it->second->token.matches_bearer(value);
  sodium_memzero(value.data(), value.size());
  if (!ok) return denied;
  it->second->last_used = Clock::now();
  out = it->second;
  return grpc::Status::OK;
}

grpc::Status Server::Impl::ListModels(grpc::ServerContext*, const v1::ListModelsRequest*, v1::ListModelsResponse* r) {
  for (const auto& m : models) {
    auto* mi = r->add_models();
    mi->set_name(m->name);
    mi->add_input_shape(static_cast<std::uint32_t>(m->model.input.c));
    mi->add_input_shape(static_cast<std::uint32_t>(m->model.input.h));
    mi->add_input_shape(static_cast<std::uint32_t>(m->model.input.w));
    bool first = true;
    for (const auto& [layout, o] : m->offers) {
      const he::ClientSpec spec = o.plan.client_spec();
      if (first) mi->set_outputs(static_cast<std::uint32_t>(spec.outputs));
      first = false;
      auto* lo = mi->add_layouts();
      lo->set_layout(he::to_string(layout));
      lo->set_params(o.params_bytes);
      lo->set_client_spec_json(spec.to_json().dump());
      lo->set_relinearization_key(o.plan.keys.relinearization);
      for (const int r : o.plan.keys.rotations) lo->add_rotations(r);
      for (const std::size_t l : o.plan.keys.rotation_levels) lo->add_rotation_levels(static_cast<std::uint32_t>(l));
      lo->set_images_per_query(static_cast<std::uint32_t>(spec.batch_size));
      lo->set_summary(o.plan.params->describe());
      lo->set_predicted_query_memory(o.query_memory);
      lo->set_insecure(o.plan.params->insecure());
    }
  }
  fill_stats(r->mutable_stats());
  return grpc::Status::OK;
}

grpc::Status Server::Impl::GetStats(grpc::ServerContext*, const v1::GetStatsRequest*, v1::Stats* s) {
  fill_stats(s);
  return grpc::Status::OK;
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  auto& o = impl_->opt;
  if (sodium_init() < 0) throw Error("libsodium failed to initialize");
  if (o.max_sessions == 0 || o.max_queries == 0 || o.max_results == 0 || o.concurrent_queries == 0) {
    throw Error("the server's limits must be at least 1");
  }
  if (!(o.result_lifetime_s > 0) || !(o.session_idle_s > 0) || !(o.request_deadline_s > 0)) {
    throw Error("the server's lifetimes and deadline must be positive");
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) throw Error("--tls-cert and --tls-key go together");
  if (o.tls_cert.empty() && !o.insecure_plaintext && !is_loopback_address(o.listen)) {
    throw Error("refusing to listen in plaintext on the non-loopback address " + o.listen +
                ": give --tls-cert and --tls-key, or --insecure-plaintext to accept it");
  }
  impl_->capacity = o.memory_limit ? o.memory_limit : he::available_memory();
  if (impl_->capacity == 0) impl_->capacity = static_cast<std::size_t>(-1) / 2;
  impl_->load_models();
}

Server::~Server() { shutdown(); }

void Server::start() {
  auto& s = *impl_;
  auto& o = s.opt;
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!o.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({read_small_file(o.tls_key, "--tls-key"), read_small_file(o.tls_cert, "--tls-cert")});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  grpc::ServerBuilder b;
  b.AddListeningPort(o.listen, creds, &s.bound_port);
  b.RegisterService(&s);
  b.SetMaxReceiveMessageSize(kMaxMessageBytes);
  b.SetMaxSendMessageSize(kMaxMessageBytes);
  grpc::ResourceQuota quota("hecnn-serve");
  quota.SetMaxThreads(static_cast<int>(std::min<std::size_t>(4 * o.max_sessions + 16, 1024)));
  b.SetResourceQuota(quota);
  s.server = b.BuildAndStart();
  if (!s.server || s.bound_port == 0) {
    throw Error("cannot listen on " + o.listen + " (address in use, or not an address of this machine?)");
  }
  for (std::size_t i = 0; i < o.concurrent_queries; ++i) s.workers.emplace_back([&s] { s.work(); });
  s.reaper = std::thread([&s] { s.reap(); });
  s.log.event("server_started", {{"listen", o.listen}, {"port", s.bound_port}, {"tls", o.tls_cert.empty() ? "no" : "yes"},
                                 {"models", static_cast<std::uint64_t>(s.models.size())},
                                 {"concurrent_queries", static_cast<std::uint64_t>(o.concurrent_queries)},
                                 {"threads_per_query", s.threads_per_query}, {"memory_limit", static_cast<std::uint64_t>(s.capacity)}});
}

int Server::port() const { return impl_->bound_port; }

void Server::shutdown() {
  auto& s = *impl_;
  {
    const std::lock_guard<std::mutex> lock(s.stop_mu);
    if (s.stopped) return;
    s.stopped = true;
  }
  {
    const std::lock_guard<std::mutex> lock(s.mu);
    s.stopping = true;
  }
  s.cv.notify_all();
  s.stop_cv.notify_all();
  if (s.server) s.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  for (auto& w : s.workers) w.join();
  s.workers.clear();
  if (s.reaper.joinable()) s.reaper.join();
  if (s.server) s.server->Wait();
  if (s.server) {
    std::uint64_t served = 0, refused = 0, failed = 0;
    {
      const std::lock_guard<std::mutex> lock(s.mu);
      served = s.counters.served;
      refused = s.counters.refused;
      failed = s.counters.failed;
    }
    s.log.event("server_stopped", {{"queries_served", served}, {"queries_refused", refused}, {"queries_failed", failed}});
  }
}

}  // namespace hecnn::service
