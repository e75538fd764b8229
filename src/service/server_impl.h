#pragma once
// The server's shared state and the gRPC service (internal to src/service). Its methods are
// defined by responsibility:
//   server.cpp   start, shutdown, the offered models, ListModels, GetStats, authentication
//   sessions.cpp OpenSession (the key bundle uploaded into memory, never to disk), CloseSession
//   queries.cpp  SubmitQuery (memory reserved on acceptance), GetResult, CancelQuery
//   workers.cpp  the workers running queries in arrival order; the reaper (expiry, deadlines)
// Every member below `mu` is guarded by it.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "he/plan.h"
#include "he/runtime.h"
#include "he/session.h"
#include "hecnn/v1/inference.grpc.pb.h"
#include "nn/model.h"
#include "service/auth.h"
#include "service/log.h"
#include "service/server.h"

namespace hecnn::service {

namespace v1 = hecnn::v1;
using Clock = std::chrono::steady_clock;

// Packed layout: the bytes of weight diagonals a session's engine encodes once (beyond: at every run).
inline constexpr std::size_t kSessionPlaintextBudget = std::size_t{1} << 30;

inline grpc::Status status(grpc::StatusCode code, const std::string& message) { return {code, message}; }
inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

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

// A client's session: its credentials and its keys, compiled plan and engine (he::Session).
struct ClientSession {
  std::string id;
  Token token;
  const ModelEntry* model = nullptr;
  std::unique_ptr<he::Session> he;
  Clock::time_point last_used;
  bool busy = false;    // one of its queries is running (an engine runs one query at a time)
  bool closed = false;
  explicit ClientSession(Token t) : token(std::move(t)) {}
  std::size_t standing_bytes() const { return he->standing_bytes(); }
  std::size_t query_bytes() const { return he->query_bytes(); }
};

enum class State { Queued, Running, Done, Failed, Cancelled };

struct Query {
  std::string id;
  std::shared_ptr<ClientSession> session;
  std::size_t images = 0, bytes_in = 0;
  std::size_t reserved = 0;  // memory reserved from acceptance until it ends or leaves the queue
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
  int threads_per_query = 1;
  std::size_t capacity = 0;  // bytes the sessions, uploads and queries may reserve

  std::mutex mu;
  std::condition_variable cv;  // any change of a query, the queue, or stopping
  std::unordered_map<std::string, std::shared_ptr<ClientSession>> sessions;
  std::unordered_map<std::string, std::shared_ptr<Query>> queries;
  std::deque<std::shared_ptr<Query>> queue;
  std::size_t running = 0, results_stored = 0, reserved = 0;
  // The sessions' encoded weights, shared by the sessions of one model, layout and parameters, and
  // reserved once: per he::Session::weights_key, the bytes reserved and the sessions holding them.
  he::WeightCache weights;
  std::map<std::string, std::pair<std::size_t, std::size_t>> weight_reservations;
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
  bool stopped = false;

  explicit Impl(ServerOptions o) : opt(std::move(o)), log(opt.log) {}

  // Registers a streaming call for the reaper, which cancels it past the request deadline.
  struct CallGuard {
    Impl& s;
    grpc::ServerContext* ctx;
    CallGuard(Impl& server, grpc::ServerContext* c);
    ~CallGuard();
  };

  // server.cpp
  void load_models();
  const ModelEntry* find_model(const std::string& name) const;
  void fill_stats(v1::Stats* s);
  grpc::Status authenticate(grpc::ServerContext* ctx, std::shared_ptr<ClientSession>& out);
  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest*, v1::ListModelsResponse* r) override;
  grpc::Status GetStats(grpc::ServerContext*, const v1::GetStatsRequest*, v1::Stats* s) override;

  // sessions.cpp
  grpc::Status OpenSession(grpc::ServerContext* ctx, grpc::ServerReader<v1::OpenSessionRequest>* reader,
                           v1::OpenSessionResponse* resp) override;
  grpc::Status CloseSession(grpc::ServerContext* ctx, const v1::CloseSessionRequest*, v1::CloseSessionResponse*) override;
  void close_session(const std::shared_ptr<ClientSession>& s);  // mu held
  // What a new session adds to the reservations (its keys, and its weights unless another session
  // of the same key holds them), and taking it / giving it back (mu held).
  std::size_t session_reservation(const ClientSession& s) const;
  void reserve_session(const ClientSession& s);
  void release_session(const ClientSession& s);

  // queries.cpp
  std::string queue_full(const ClientSession& s) const;  // mu held
  grpc::Status SubmitQuery(grpc::ServerContext* ctx, grpc::ServerReader<v1::SubmitQueryRequest>* reader,
                           v1::SubmitQueryResponse* resp) override;
  std::shared_ptr<Query> find_query(const std::string& id, const ClientSession& s);  // mu held
  v1::QueryStatus describe(const Query& q) const;                                    // mu held
  void forget(const std::shared_ptr<Query>& q);                                      // mu held
  void cancel(const std::shared_ptr<Query>& q);                                      // mu held
  void release(Query& q);                                                            // mu held
  grpc::Status GetResult(grpc::ServerContext* ctx, const v1::GetResultRequest* req,
                         grpc::ServerWriter<v1::GetResultResponse>* writer) override;
  grpc::Status CancelQuery(grpc::ServerContext* ctx, const v1::CancelQueryRequest* req, v1::CancelQueryResponse*) override;

  // workers.cpp
  std::shared_ptr<Query> next_query();  // mu held
  void work();
  void reap();
};

grpc::Status not_found(const std::string& query_id);

}  // namespace hecnn::service
