#include "service/server.h"

#include <grpcpp/grpcpp.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "common/error.h"
#include "common/stopwatch.h"
#include "common/threads.h"
#include "he/files.h"
#include "he/memory.h"
#include "he/plan.h"
#include "he/runtime.h"
#include "hecnn/v1/inference.grpc.pb.h"
#include "nn/safetensors.h"
#include "service/log.h"
#include "service/wire.h"

namespace hecnn::service {

namespace fs = std::filesystem;
namespace v1 = hecnn::v1;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kMaxKeysJson = 1 << 20;
constexpr std::size_t kTokenBytes = 32;
// Packed layout: the bytes of weight diagonals a session's engine encodes once (beyond: at every run).
constexpr std::size_t kSessionPlaintextBudget = std::size_t{1} << 30;

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> b(bytes);
  randombytes_buf(b.data(), b.size());
  std::string hex(2 * bytes + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), b.data(), b.size());
  hex.pop_back();
  return hex;
}

std::string layout_name(he::Layout l) { return he::to_string(l); }

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

grpc::Status status(grpc::StatusCode code, const std::string& message) { return {code, message}; }

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

struct Offer {
  he::HePlan plan;
  std::string params_bytes;
  std::size_t query_memory = 0;
};

struct ModelEntry {
  std::string name;
  nn::Model model;
  std::map<he::Layout, Offer> offers;
};

struct Session {
  std::string id;
  std::array<unsigned char, kTokenBytes> token{};
  const ModelEntry* model = nullptr;
  he::ServerKeys keys;
  he::HePlan plan;
  std::unique_ptr<he::InferenceEngine> engine;
  std::size_t standing_bytes = 0;  // reserved while the session lives: keys, tables, diagonals
  std::size_t query_bytes = 0;     // reserved while one of its queries runs
  Clock::time_point last_used;
  bool busy = false;               // one of its queries is running (an engine runs one query at a time)
  bool closed = false;
  ~Session() { sodium_memzero(token.data(), token.size()); }
};

enum class State { Queued, Running, Done, Failed, Cancelled };

struct Query {
  std::string id;
  std::shared_ptr<Session> session;
  std::size_t images = 0, bytes_in = 0;
  std::vector<ckks::Ciphertext> input;
  State state = State::Queued;
  he::Progress progress;
  std::string error;
  std::shared_ptr<const std::string> result;
  std::size_t result_cts = 0;
  double seconds = 0;
  Clock::time_point submitted, done_at;
};

struct Server::Impl final : public v1::Inference::Service {
  ServerOptions opt;
  Log log;
  std::vector<std::unique_ptr<ModelEntry>> models;
  std::string root;  // private directory of the uploads being checked (mode 0700)
  int threads_per_query = 1;
  std::size_t capacity = 0;  // bytes the sessions and queries may reserve

  std::mutex mu;
  std::condition_variable cv;  // any change of a query, the queue, or stopping
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions;
  std::unordered_map<std::string, std::shared_ptr<Query>> queries;
  std::deque<std::shared_ptr<Query>> queue;
  std::size_t running = 0, results_stored = 0, reserved = 0;
  bool stopping = false;
  struct Counters {
    std::uint64_t sessions_opened = 0, sessions_refused = 0, served = 0, refused = 0, failed = 0, cancelled = 0;
  } counters;

  std::mutex calls_mu;
  std::map<grpc::ServerContext*, Clock::time_point> calls;  // in-flight streaming calls and their deadline

  std::unique_ptr<grpc::Server> server;
  int bound_port = 0;
  std::vector<std::thread> workers;
  std::thread reaper;
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopped = false, shut = false;

  explicit Impl(ServerOptions o) : opt(std::move(o)), log(opt.log) {}

  // ---- calls past the request deadline are cancelled by the reaper ----
  struct CallGuard {
    Impl& s;
    grpc::ServerContext* ctx;
    CallGuard(Impl& server, grpc::ServerContext* c) : s(server), ctx(c) {
      const std::lock_guard<std::mutex> lock(s.calls_mu);
      s.calls[ctx] = Clock::now() + std::chrono::milliseconds(static_cast<long long>(s.opt.request_deadline_s * 1000));
    }
    ~CallGuard() {
      const std::lock_guard<std::mutex> lock(s.calls_mu);
      s.calls.erase(ctx);
    }
  };

  void load_models() {
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
      for (const he::Layout l : {he::Layout::Batch, he::Layout::Packed}) {
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
          log.event("model_layout_unavailable", {{"model", m->name}, {"layout", layout_name(l)}, {"reason", e.what()}});
        }
      }
      if (m->offers.empty()) throw Error(f.string() + ": no layout can run this model");
      log.event("model_loaded", {{"model", m->name}, {"layouts", static_cast<std::uint64_t>(m->offers.size())},
                                 {"compile_s", t.seconds()}});
      models.push_back(std::move(m));
    }
  }

  const ModelEntry* find_model(const std::string& name) const {
    for (const auto& m : models) {
      if (m->name == name) return m.get();
    }
    return nullptr;
  }

  void fill_stats(v1::Stats* s) {
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

  // ---- authentication: the session id and token of the call's metadata ----
  grpc::Status authenticate(grpc::ServerContext* ctx, std::shared_ptr<Session>& out) {
    const auto& md = ctx->client_metadata();
    const auto sid = md.find(kSessionHeader);
    const auto auth = md.find(kAuthorizationHeader);
    const grpc::Status denied = status(grpc::StatusCode::UNAUTHENTICATED, "unknown session or wrong token");
    if (sid == md.end() || auth == md.end()) {
      return status(grpc::StatusCode::UNAUTHENTICATED, "missing session credentials (metadata hecnn-session and authorization)");
    }
    const std::string id(sid->second.data(), std::min<std::size_t>(sid->second.size(), 64));
    const std::string value(auth->second.data(), std::min<std::size_t>(auth->second.size(), 128));
    const std::string prefix = "Bearer ";
    std::array<unsigned char, kTokenBytes> token{};
    std::size_t len = 0;
    if (value.size() != prefix.size() + 2 * kTokenBytes || value.compare(0, prefix.size(), prefix) != 0 ||
        sodium_hex2bin(token.data(), token.size(), value.data() + prefix.size(), 2 * kTokenBytes, nullptr, &len, nullptr) != 0 ||
        len != kTokenBytes) {
      return denied;
    }
    const std::lock_guard<std::mutex> lock(mu);
    const auto it = sessions.find(id);
    if (it == sessions.end()) return denied;
    if (sodium_memcmp(it->second->token.data(), token.data(), kTokenBytes) != 0) return denied;
    it->second->last_used = Clock::now();
    out = it->second;
    return grpc::Status::OK;
  }

  // ---- ListModels, GetStats ----
  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest*, v1::ListModelsResponse* r) override {
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
        lo->set_layout(layout_name(layout));
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

  grpc::Status GetStats(grpc::ServerContext*, const v1::GetStatsRequest*, v1::Stats* s) override {
    fill_stats(s);
    return grpc::Status::OK;
  }

  // ---- OpenSession ----
  grpc::Status OpenSession(grpc::ServerContext* ctx, grpc::ServerReader<v1::OpenSessionRequest>* reader,
                           v1::OpenSessionResponse* resp) override {
    const CallGuard guard(*this, ctx);
    const Stopwatch t;
    std::string model_name, layout_text, dir;
    std::uint64_t received = 0;
    auto refuse = [&](grpc::StatusCode code, const std::string& why) {
      if (!dir.empty()) {
        std::error_code ec;
        fs::remove_all(dir, ec);
      }
      {
        const std::lock_guard<std::mutex> lock(mu);
        ++counters.sessions_refused;
      }
      log.event("session_refused", {{"model", model_name}, {"layout", layout_text}, {"bytes", received},
                                    {"duration_s", t.seconds()}, {"code", static_cast<int>(code)}, {"reason", why}});
      return status(code, why);
    };
    {
      const std::lock_guard<std::mutex> lock(mu);
      if (stopping) return status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
      if (sessions.size() >= opt.max_sessions) {
        ++counters.sessions_refused;
        log.event("session_refused", {{"reason", "too many sessions"}});
        return status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      "the server holds its maximum of " + std::to_string(opt.max_sessions) + " sessions; try again later");
      }
    }
    v1::OpenSessionRequest msg;
    if (!reader->Read(&msg) || !msg.has_header()) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT, "the upload must start with a SessionHeader");
    }
    const v1::SessionHeader h = msg.header();
    model_name = h.model().substr(0, 128);
    layout_text = h.layout().substr(0, 16);
    const ModelEntry* model = find_model(h.model());
    if (!model) return refuse(grpc::StatusCode::NOT_FOUND, "no model named '" + model_name + "' (see ListModels)");
    he::Layout layout{};
    try {
      layout = he::parse_layout(h.layout());
    } catch (const Error& e) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT, e.what());
    }
    if (!model->offers.count(layout)) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT, "model '" + model_name + "' is not offered in the " + layout_text + " layout");
    }
    if (h.keys_json().size() > kMaxKeysJson) return refuse(grpc::StatusCode::RESOURCE_EXHAUSTED, "keys_json is larger than 1 MiB");
    const std::array<std::uint64_t, 4> declared{0, h.params_bytes(), h.relin_bytes(), h.galois_bytes()};
    if (declared[1] == 0) return refuse(grpc::StatusCode::INVALID_ARGUMENT, "params_bytes is 0: the upload must hold params.bin");
    std::uint64_t total = 0;
    for (const auto d : declared) {
      if (d > opt.max_key_bytes) total = static_cast<std::uint64_t>(opt.max_key_bytes) + 1;
      else total += d;
    }
    if (total > opt.max_key_bytes) {
      return refuse(grpc::StatusCode::RESOURCE_EXHAUSTED,
                    "the keys are larger than the server's limit of " + std::to_string(opt.max_key_bytes) + " bytes");
    }
    // The files go into a private directory, checked and loaded by the same code as key
    // directories (he/files.h), and removed as soon as they are loaded.
    std::string tmpl = root + "/session-XXXXXX";
    if (!::mkdtemp(tmpl.data())) return refuse(grpc::StatusCode::INTERNAL, "cannot create a directory for the upload");
    dir = tmpl;
    const std::array<const char*, 4> names{"", "params.bin", "relin.key", "galois.key"};
    std::array<int, 4> fds{-1, -1, -1, -1};
    auto close_all = [&] {
      for (auto& fd : fds) {
        if (fd >= 0) ::close(fd);
        fd = -1;
      }
    };
    {
      std::ofstream js(dir + "/keys.json", std::ios::binary);
      js << h.keys_json();
      if (!js) return refuse(grpc::StatusCode::INTERNAL, "cannot write the upload");
    }
    std::array<std::uint64_t, 4> got{0, 0, 0, 0};
    for (int f = 1; f <= 3; ++f) {
      if (declared[f] == 0) continue;
      fds[f] = ::open((dir + "/" + names[f]).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fds[f] < 0) {
        close_all();
        return refuse(grpc::StatusCode::INTERNAL, "cannot write the upload");
      }
    }
    while (reader->Read(&msg)) {
      if (!msg.has_chunk()) {
        close_all();
        return refuse(grpc::StatusCode::INVALID_ARGUMENT, "a second SessionHeader in the upload");
      }
      const int f = static_cast<int>(msg.chunk().file());
      if (f < 1 || f > 3) {
        close_all();
        return refuse(grpc::StatusCode::INVALID_ARGUMENT, "a key chunk names no file");
      }
      const std::string& data = msg.chunk().data();
      if (got[f] + data.size() > declared[f]) {
        close_all();
        return refuse(grpc::StatusCode::INVALID_ARGUMENT, std::string(names[f]) + ": more bytes than the " +
                                                              std::to_string(declared[f]) + " declared");
      }
      std::size_t off = 0;
      while (off < data.size()) {
        const ssize_t n = ::write(fds[f], data.data() + off, data.size() - off);
        if (n <= 0) {
          close_all();
          return refuse(grpc::StatusCode::INTERNAL, "cannot write the upload");
        }
        off += static_cast<std::size_t>(n);
      }
      got[f] += data.size();
      received += data.size();
    }
    close_all();
    if (ctx->IsCancelled()) return refuse(grpc::StatusCode::CANCELLED, "the client cancelled the upload or its deadline passed");
    for (int f = 1; f <= 3; ++f) {
      if (got[f] != declared[f]) {
        return refuse(grpc::StatusCode::INVALID_ARGUMENT, std::string(names[f]) + ": truncated upload (" + std::to_string(got[f]) +
                                                              " of " + std::to_string(declared[f]) + " bytes)");
      }
    }
    auto s = std::make_shared<Session>();
    try {
      const he::KeyInfo info = he::read_key_info(dir);
      if (info.spec.layout != layout) {
        return refuse(grpc::StatusCode::INVALID_ARGUMENT, "the keys are for the " + layout_name(info.spec.layout) +
                                                              " layout, the session asks for " + layout_text);
      }
      if (info.insecure && !opt.allow_insecure_keys) {
        return refuse(grpc::StatusCode::FAILED_PRECONDITION,
                      "the keys use parameters above the 128-bit security bound, which this server refuses");
      }
      s->keys = he::load_server_keys(dir);
    } catch (const Error& e) {
      // The messages name the files by path: the client knows them by name.
      std::string why = e.what();
      for (std::size_t at; (at = why.find(dir + "/")) != std::string::npos;) why.erase(at, dir.size() + 1);
      for (std::size_t at; (at = why.find(dir)) != std::string::npos;) why.replace(at, dir.size(), "the upload");
      return refuse(grpc::StatusCode::INVALID_ARGUMENT, "bad keys: " + why);
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    dir.clear();
    const he::ClientSpec& spec = s->keys.info.spec;
    try {
      s->plan = he::compile_for(model->model, s->keys.ctx->params(), spec.scale_bits, spec.layout, &spec);
      he::check_client_spec(s->plan, spec);
      const he::MemoryEstimate est = he::estimate_memory(s->plan, threads_per_query, kSessionPlaintextBudget, false);
      s->standing_bytes = est.keys + est.tables + est.plaintexts;
      s->query_bytes = est.ciphertexts;
    } catch (const Error& e) {
      return refuse(grpc::StatusCode::FAILED_PRECONDITION, std::string("the keys do not fit model '") + model_name + "': " + e.what());
    }
    // Reserve the session's standing memory before building its engine (which allocates it).
    {
      std::unique_lock<std::mutex> lock(mu);
      const bool never = s->standing_bytes + s->query_bytes > capacity;
      const bool now = reserved + s->standing_bytes > capacity;
      const bool full = sessions.size() >= opt.max_sessions;
      if (never || now || full) {
        lock.unlock();
        return refuse(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      full ? "the server holds its maximum of " + std::to_string(opt.max_sessions) + " sessions; try again later"
                      : never ? "this session's keys and one query would need " + he::gib(s->standing_bytes + s->query_bytes) +
                                    ", more than the server's memory limit of " + he::gib(capacity)
                              : "the server's memory is reserved by other sessions; try again later");
      }
      reserved += s->standing_bytes;
    }
    try {
      s->engine = he::make_engine(s->plan, s->keys.ctx, s->keys.keys, kSessionPlaintextBudget);
    } catch (const Error& e) {
      {
        const std::lock_guard<std::mutex> lock(mu);
        reserved -= s->standing_bytes;
      }
      return refuse(grpc::StatusCode::FAILED_PRECONDITION, std::string("the keys do not fit model '") + model_name + "': " + e.what());
    }
    s->model = model;
    s->id = random_hex(16);
    randombytes_buf(s->token.data(), s->token.size());
    std::string token_hex(2 * kTokenBytes + 1, '\0');
    sodium_bin2hex(token_hex.data(), token_hex.size(), s->token.data(), s->token.size());
    token_hex.pop_back();
    s->last_used = Clock::now();
    {
      const std::lock_guard<std::mutex> lock(mu);
      sessions[s->id] = s;
      ++counters.sessions_opened;
    }
    resp->set_session_id(s->id);
    resp->set_token(token_hex);
    sodium_memzero(token_hex.data(), token_hex.size());
    resp->set_session_idle_seconds(static_cast<std::uint32_t>(opt.session_idle_s));
    resp->set_result_lifetime_seconds(static_cast<std::uint32_t>(opt.result_lifetime_s));
    log.event("session_opened", {{"session", s->id}, {"model", model_name}, {"layout", layout_text},
                                 {"key_id", s->keys.info.key_id}, {"key_bytes", received}, {"memory", s->standing_bytes},
                                 {"duration_s", t.seconds()}});
    return grpc::Status::OK;
  }

  // ---- SubmitQuery ----
  // Refusal reason when a new query cannot be queued now (mu held), or "".
  std::string queue_full(const Session& s) const {
    if (queue.size() + running >= opt.max_queries) {
      return "the server's queue is full (" + std::to_string(opt.max_queries) + " queries queued or running); try again later";
    }
    // Every accepted query will store a result: the queued and running ones count already, so a
    // finishing query always has room and the bound holds.
    if (results_stored + queue.size() + running >= opt.max_results) {
      return "the server stores its maximum of " + std::to_string(opt.max_results) + " results; fetch or cancel some first";
    }
    if (s.standing_bytes + s.query_bytes > capacity) return "a query of this session can never fit in the server's memory limit";
    return "";
  }

  grpc::Status SubmitQuery(grpc::ServerContext* ctx, grpc::ServerReader<v1::SubmitQueryRequest>* reader,
                           v1::SubmitQueryResponse* resp) override {
    const CallGuard guard(*this, ctx);
    std::shared_ptr<Session> s;
    if (auto st = authenticate(ctx, s); !st.ok()) return st;
    const Stopwatch t;
    std::uint64_t declared = 0, received = 0;
    auto refuse = [&](grpc::StatusCode code, const std::string& why) {
      {
        const std::lock_guard<std::mutex> lock(mu);
        ++counters.refused;
      }
      log.event("query_refused", {{"session", s->id}, {"declared_bytes", declared}, {"bytes", received},
                                  {"duration_s", t.seconds()}, {"code", static_cast<int>(code)}, {"reason", why}});
      return status(code, why);
    };
    const he::ClientSpec& spec = s->keys.info.spec;
    v1::SubmitQueryRequest msg;
    if (!reader->Read(&msg) || !msg.has_header()) return refuse(grpc::StatusCode::INVALID_ARGUMENT, "the query must start with a QueryHeader");
    const v1::QueryHeader h = msg.header();
    declared = h.total_bytes();
    if (h.image_count() == 0 || h.image_count() > spec.batch_size) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT,
                    "a query holds 1 to " + std::to_string(spec.batch_size) + " images; got " + std::to_string(h.image_count()));
    }
    if (h.ciphertext_count() != spec.input_ciphertexts) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT, "a query holds " + std::to_string(spec.input_ciphertexts) +
                                                            " ciphertexts; got " + std::to_string(h.ciphertext_count()));
    }
    if (declared > opt.max_query_bytes) {
      return refuse(grpc::StatusCode::RESOURCE_EXHAUSTED, "the query's " + std::to_string(declared) +
                                                              " bytes exceed the server's limit of " +
                                                              std::to_string(opt.max_query_bytes) + " bytes");
    }
    // A fresh ciphertext at the top level, unseeded, plus its header and checksum, bounds each.
    const auto& p = s->keys.ctx->params();
    const std::uint64_t most = spec.input_ciphertexts * (he::ciphertext_bytes(p, p.max_level(), 2) + 4096);
    if (declared > most) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT, "the query declares " + std::to_string(declared) + " bytes; " +
                                                            std::to_string(spec.input_ciphertexts) + " ciphertexts hold at most " +
                                                            std::to_string(most));
    }
    {
      const std::lock_guard<std::mutex> lock(mu);
      if (stopping) return status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
      if (s->closed) return status(grpc::StatusCode::UNAUTHENTICATED, "unknown session or wrong token");
      if (const std::string why = queue_full(*s); !why.empty()) {
        ++counters.refused;
        log.event("query_refused", {{"session", s->id}, {"declared_bytes", declared}, {"reason", why}});
        return status(grpc::StatusCode::RESOURCE_EXHAUSTED, why);
      }
    }
    std::string bytes;
    bytes.reserve(declared);
    while (reader->Read(&msg)) {
      if (!msg.has_chunk()) return refuse(grpc::StatusCode::INVALID_ARGUMENT, "a second QueryHeader in the query");
      if (received + msg.chunk().size() > declared) {
        return refuse(grpc::StatusCode::INVALID_ARGUMENT, "the query holds more than the " + std::to_string(declared) + " bytes declared");
      }
      bytes += msg.chunk();
      received += msg.chunk().size();
    }
    if (ctx->IsCancelled()) return refuse(grpc::StatusCode::CANCELLED, "the client cancelled the query or its deadline passed");
    if (received != declared) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT, "truncated query: " + std::to_string(received) + " of the " +
                                                            std::to_string(declared) + " bytes declared");
    }
    auto q = std::make_shared<Query>();
    try {
      q->input = parse_ciphertexts(bytes, *s->keys.ctx, spec.input_ciphertexts);
    } catch (const Error& e) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT, std::string("bad ciphertexts: ") + e.what());
    }
    std::string().swap(bytes);
    q->id = random_hex(16);
    q->session = s;
    q->images = h.image_count();
    q->bytes_in = received;
    q->submitted = Clock::now();
    std::size_t position = 0;
    {
      const std::lock_guard<std::mutex> lock(mu);
      if (stopping) return status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
      if (s->closed) return status(grpc::StatusCode::UNAUTHENTICATED, "unknown session or wrong token");
      if (const std::string why = queue_full(*s); !why.empty()) {
        ++counters.refused;
        log.event("query_refused", {{"session", s->id}, {"bytes", received}, {"reason", why}});
        return status(grpc::StatusCode::RESOURCE_EXHAUSTED, why);
      }
      position = queue.size();
      queue.push_back(q);
      queries[q->id] = q;
      s->last_used = Clock::now();
    }
    log.event("query_queued", {{"session", s->id}, {"query", q->id}, {"images", static_cast<std::uint64_t>(q->images)},
                               {"bytes", received}, {"position", static_cast<std::uint64_t>(position)}, {"duration_s", t.seconds()}});
    cv.notify_all();
    resp->set_query_id(q->id);
    resp->set_queue_position(static_cast<std::uint32_t>(position));
    return grpc::Status::OK;
  }

  // The caller's query, or null (unknown, or of another session: the same answer). mu held.
  std::shared_ptr<Query> find_query(const std::string& id, const Session& s) {
    const auto it = queries.find(id);
    if (it == queries.end() || it->second->session.get() != &s) return nullptr;
    return it->second;
  }

  static grpc::Status not_found(const std::string& id) {
    return status(grpc::StatusCode::NOT_FOUND, "no query '" + id.substr(0, 64) + "' in this session");
  }

  // mu held.
  v1::QueryStatus describe(const Query& q) const {
    v1::QueryStatus st;
    switch (q.state) {
      case State::Queued: {
        st.set_state(v1::QueryStatus::QUEUED);
        std::uint32_t ahead = 0;
        for (const auto& x : queue) {
          if (x.get() == &q) break;
          ++ahead;
        }
        st.set_queue_position(ahead);
        break;
      }
      case State::Running:
        st.set_state(v1::QueryStatus::RUNNING);
        st.set_stage(static_cast<std::uint32_t>(q.progress.stage + 1));
        st.set_stages(static_cast<std::uint32_t>(q.progress.stages));
        st.set_stage_name(q.progress.name);
        st.set_stage_fraction(q.progress.total ? static_cast<double>(q.progress.done) / static_cast<double>(q.progress.total) : 0.0);
        st.set_elapsed_seconds(q.progress.elapsed_s);
        break;
      case State::Done: st.set_state(v1::QueryStatus::DONE); break;
      case State::Failed:
        st.set_state(v1::QueryStatus::FAILED);
        st.set_error(q.error);
        break;
      case State::Cancelled: st.set_state(v1::QueryStatus::CANCELLED); break;
    }
    return st;
  }

  // Removes a query that is done, failed or cancelled from the table. mu held.
  void forget(const std::shared_ptr<Query>& q) {
    if (queries.erase(q->id) && q->result) --results_stored;  // a result counts until it is removed
    q->result.reset();
  }

  // ---- GetResult ----
  grpc::Status GetResult(grpc::ServerContext* ctx, const v1::GetResultRequest* req,
                         grpc::ServerWriter<v1::GetResultResponse>* writer) override {
    const CallGuard guard(*this, ctx);
    std::shared_ptr<Session> s;
    if (auto st = authenticate(ctx, s); !st.ok()) return st;
    const auto until = std::min(ctx->deadline(), std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<long long>(
                                                                                    opt.request_deadline_s * 1000)));
    std::unique_lock<std::mutex> lock(mu);
    std::shared_ptr<Query> q = find_query(req->query_id(), *s);
    if (!q) return not_found(req->query_id());
    std::string last;
    for (;;) {
      if (stopping) return status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
      if (q->state == State::Done || q->state == State::Failed || q->state == State::Cancelled) break;
      v1::GetResultResponse m;
      *m.mutable_status() = describe(*q);
      std::string now = m.SerializeAsString();
      if (now != last) {
        last = std::move(now);
        lock.unlock();
        const bool ok = writer->Write(m);
        lock.lock();
        if (!ok) return status(grpc::StatusCode::CANCELLED, "the client went away");
      }
      if (!req->wait()) return grpc::Status::OK;
      if (ctx->IsCancelled()) return status(grpc::StatusCode::CANCELLED, "the client went away");
      if (std::chrono::system_clock::now() >= until) {
        return status(grpc::StatusCode::DEADLINE_EXCEEDED, "the result is not ready yet; ask again");
      }
      cv.wait_for(lock, std::chrono::milliseconds(250));
      if (queries.find(q->id) == queries.end()) return not_found(req->query_id());  // cancelled or session closed meanwhile
    }
    s->last_used = Clock::now();
    if (q->state == State::Failed) {
      const std::string e = q->error;
      return status(grpc::StatusCode::INTERNAL, "the query failed: " + e);
    }
    if (q->state == State::Cancelled) return status(grpc::StatusCode::CANCELLED, "the query was cancelled");
    const std::shared_ptr<const std::string> result = q->result;
    if (!result) return not_found(req->query_id());
    // The status, then the header, then the chunks (one kind per message: a oneof).
    v1::GetResultResponse first;
    *first.mutable_status() = describe(*q);
    v1::GetResultResponse header;
    auto* rh = header.mutable_header();
    rh->set_image_count(static_cast<std::uint32_t>(q->images));
    rh->set_ciphertext_count(static_cast<std::uint32_t>(q->result_cts));
    rh->set_total_bytes(result->size());
    rh->set_seconds(q->seconds);
    lock.unlock();
    if (!writer->Write(first) || !writer->Write(header)) return status(grpc::StatusCode::CANCELLED, "the client went away");
    for (std::size_t off = 0; off < result->size(); off += kChunkBytes) {
      v1::GetResultResponse c;
      c.set_chunk(result->substr(off, std::min(kChunkBytes, result->size() - off)));
      if (!writer->Write(c)) {
        log.event("result_interrupted", {{"session", s->id}, {"query", q->id}, {"bytes_sent", static_cast<std::uint64_t>(off)}});
        return status(grpc::StatusCode::CANCELLED, "the client went away");
      }
    }
    log.event("result_sent", {{"session", s->id}, {"query", q->id}, {"bytes", static_cast<std::uint64_t>(result->size())}});
    return grpc::Status::OK;
  }

  // ---- CancelQuery, CloseSession ----
  grpc::Status CancelQuery(grpc::ServerContext* ctx, const v1::CancelQueryRequest* req, v1::CancelQueryResponse*) override {
    std::shared_ptr<Session> s;
    if (auto st = authenticate(ctx, s); !st.ok()) return st;
    std::string was;
    {
      const std::lock_guard<std::mutex> lock(mu);
      const std::shared_ptr<Query> q = find_query(req->query_id(), *s);
      if (!q) return not_found(req->query_id());
      was = q->state == State::Queued ? "queued" : q->state == State::Running ? "running" : "done";
      cancel(q);
    }
    cv.notify_all();
    log.event("query_removed", {{"session", s->id}, {"query", req->query_id()}, {"was", was}});
    return grpc::Status::OK;
  }

  // mu held: a queued query leaves the queue, a running one's result will be dropped, a finished
  // one's result is removed.
  void cancel(const std::shared_ptr<Query>& q) {
    if (q->state == State::Queued) {
      queue.erase(std::remove(queue.begin(), queue.end(), q), queue.end());
      q->input.clear();
      ++counters.cancelled;
    } else if (q->state == State::Running) {
      ++counters.cancelled;
    }
    if (q->state != State::Running) forget(q);
    else queries.erase(q->id);
    if (q->state == State::Queued) q->state = State::Cancelled;
  }

  grpc::Status CloseSession(grpc::ServerContext* ctx, const v1::CloseSessionRequest*, v1::CloseSessionResponse*) override {
    std::shared_ptr<Session> s;
    if (auto st = authenticate(ctx, s); !st.ok()) return st;
    {
      const std::lock_guard<std::mutex> lock(mu);
      close_session(s);
    }
    cv.notify_all();
    log.event("session_closed", {{"session", s->id}, {"reason", "client"}});
    return grpc::Status::OK;
  }

  // mu held.
  void close_session(const std::shared_ptr<Session>& s) {
    if (s->closed) return;
    s->closed = true;
    std::vector<std::shared_ptr<Query>> mine;
    for (const auto& [id, q] : queries) {
      if (q->session == s) mine.push_back(q);
    }
    for (const auto& q : mine) cancel(q);
    sessions.erase(s->id);
    if (!s->busy) reserved -= s->standing_bytes;  // else the worker releases it when the query ends
  }

  // ---- the workers: queries in arrival order, up to opt.concurrent_queries at once ----
  // The first queued query whose session is idle, if its memory fits now (a query never overtakes
  // an earlier one for memory, so none starves). mu held.
  std::shared_ptr<Query> next_query() {
    for (const auto& q : queue) {
      if (q->session->busy) continue;
      if (reserved + q->session->query_bytes > capacity) return nullptr;
      return q;
    }
    return nullptr;
  }

  void work() {
    hecnn::set_num_threads(threads_per_query);  // this thread's OpenMP regions
    for (;;) {
      std::shared_ptr<Query> q;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stopping || next_query() != nullptr; });
        if (stopping) return;
        q = next_query();
        queue.erase(std::find(queue.begin(), queue.end(), q));
        q->state = State::Running;
        q->session->busy = true;
        reserved += q->session->query_bytes;
        ++running;
      }
      cv.notify_all();
      const std::shared_ptr<Session> s = q->session;
      log.event("query_started", {{"session", s->id}, {"query", q->id}, {"threads", threads_per_query},
                                  {"waited_s", seconds_since(q->submitted)}});
      const Stopwatch t;
      std::string error;
      std::shared_ptr<const std::string> result;
      std::size_t result_cts = 0;
      try {
        const he::ProgressFn progress = [&](const he::Progress& p) {
          {
            const std::lock_guard<std::mutex> lock(mu);
            q->progress = p;
          }
          cv.notify_all();
        };
        std::vector<ckks::Ciphertext> out = s->engine->run(std::move(q->input), progress);
        result_cts = out.size();
        result = std::make_shared<const std::string>(serialize_ciphertexts(*s->keys.ctx, out, false));
      } catch (const std::exception& e) {
        error = e.what();
      }
      const double seconds = t.seconds();
      bool dropped = false;
      const std::uint64_t result_bytes = result ? result->size() : 0;
      {
        const std::lock_guard<std::mutex> lock(mu);
        --running;
        reserved -= s->query_bytes;
        s->busy = false;
        if (s->closed) reserved -= s->standing_bytes;
        s->last_used = Clock::now();
        q->input.clear();
        q->seconds = seconds;
        q->done_at = Clock::now();
        dropped = queries.find(q->id) == queries.end();
        if (!error.empty()) {
          q->state = State::Failed;
          q->error = error;
          ++counters.failed;
        } else if (dropped) {
          q->state = State::Cancelled;
        } else {
          q->state = State::Done;
          q->result = std::move(result);
          q->result_cts = result_cts;
          ++results_stored;
          ++counters.served;
        }
      }
      cv.notify_all();
      log.event(error.empty() ? (dropped ? "query_dropped" : "query_done") : "query_failed",
                {{"session", s->id}, {"query", q->id}, {"images", static_cast<std::uint64_t>(q->images)},
                 {"seconds", seconds}, {"result_bytes", result_bytes},
                 {"error", error}});
    }
  }

  // ---- the reaper: expired results, idle sessions, calls past the request deadline ----
  void reap() {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(stop_mu);
        if (stop_cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopped; })) return;
      }
      const auto now = Clock::now();
      const auto lifetime = std::chrono::milliseconds(static_cast<long long>(opt.result_lifetime_s * 1000));
      const auto idle = std::chrono::milliseconds(static_cast<long long>(opt.session_idle_s * 1000));
      std::vector<std::string> expired_results, expired_sessions;
      {
        const std::lock_guard<std::mutex> lock(mu);
        std::vector<std::shared_ptr<Query>> old;
        std::map<const Session*, bool> active;
        for (const auto& [id, q] : queries) {
          if ((q->state == State::Done || q->state == State::Failed) && now - q->done_at > lifetime) old.push_back(q);
          if (q->state == State::Queued || q->state == State::Running) active[q->session.get()] = true;
        }
        for (const auto& q : old) {
          expired_results.push_back(q->id);
          forget(q);
        }
        std::vector<std::shared_ptr<Session>> idle_sessions;
        for (const auto& [id, s] : sessions) {
          if (!active.count(s.get()) && !s->busy && now - s->last_used > idle) idle_sessions.push_back(s);
        }
        for (const auto& s : idle_sessions) {
          expired_sessions.push_back(s->id);
          close_session(s);
        }
      }
      for (const auto& id : expired_results) log.event("result_expired", {{"query", id}});
      for (const auto& id : expired_sessions) log.event("session_closed", {{"session", id}, {"reason", "idle"}});
      if (!expired_sessions.empty()) cv.notify_all();
      const std::lock_guard<std::mutex> lock(calls_mu);
      for (auto& [ctx, deadline] : calls) {
        if (now > deadline) {
          ctx->TryCancel();
          deadline = Clock::time_point::max();
          log.event("call_cancelled", {{"reason", "request deadline"}});
        }
      }
    }
  }
};

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
  std::string tmpl = (fs::temp_directory_path() / "hecnn-serve-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw Error("cannot create a private temporary directory");
  s.root = tmpl;
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
    std::error_code ec;
    fs::remove_all(s.root, ec);
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

void Server::wait() {
  std::unique_lock<std::mutex> lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [&] { return impl_->shut; });
}

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
  if (!s.root.empty()) {
    std::error_code ec;
    fs::remove_all(s.root, ec);
  }
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
  {
    const std::lock_guard<std::mutex> lock(s.stop_mu);
    s.shut = true;
  }
  s.stop_cv.notify_all();
}

}  // namespace hecnn::service
