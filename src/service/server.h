#pragma once
// hecnn's inference server (proto/hecnn/v1/inference.proto): models compiled once at start,
// sessions holding a client's public key bundle in memory (he/keys.h; never written to disk, and
// a bundle holding a secret key is refused) compiled into an he::Session, a queue of encrypted
// queries run in arrival order, concurrently up to a limit, each reserving its predicted memory
// when it is accepted (queued queries count; one that does not fit is refused with
// RESOURCE_EXHAUSTED); results kept for a while; a reaper thread removes expired results and idle
// sessions and cancels calls past the request deadline.
//
// Everything read from the network is bounded before it is allocated or looped over: gRPC's
// message size limit, then the server's own limits on key uploads and queries, checked against
// the declared sizes before a byte is read and against the bytes received as they arrive.
#include <cstddef>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "he/compile/parameters.h"

namespace hecnn::service {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // ADDR:PORT; port 0 picks a free one (see Server::port)
  std::string models_dir;                  // every *.safetensors in it, offered by file stem
  he::CompileOptions compile;              // how the offered plans are compiled (default: 128-bit)
  int threads = 0;                         // inference threads in all (0: all cores)
  std::size_t concurrent_queries = 1;      // queries running at once; each gets threads / this
  std::size_t max_sessions = 32;
  std::size_t max_queries = 64;            // queued and running, all sessions
  std::size_t max_results = 64;            // done and not yet fetched (with release) or expired
  double result_lifetime_s = 600;          // a result is removed this long after it is done
  double session_idle_s = 1800;            // a session without a call (and no query) for this long is removed
  std::size_t max_key_bytes = std::size_t{4} << 30;    // one session's upload: its public key bundle
  std::size_t max_query_bytes = std::size_t{2} << 30;  // one query's ciphertexts
  double request_deadline_s = 600;         // the longest one call may run (uploads, waits)
  std::size_t memory_limit = 0;            // bytes the sessions, uploads and queries may reserve (0: memory available at start)
  std::string tls_cert, tls_key;           // PEM files: TLS (grpc::SslServerCredentials)
  bool insecure_plaintext = false;         // allow plaintext on a non-loopback address
  bool allow_insecure_keys = false;        // accept keys with parameters above the 128-bit bound (tests)
  std::ostream* log = nullptr;             // the structured log (nullptr: none)
  // Called by a worker as it takes a query, before the query runs (with its id): tests hold a
  // query running here to see what the server does meanwhile. Empty: nothing.
  std::function<void(const std::string& query_id)> on_query_start;
};

// True for 127.0.0.0/8, ::1 and localhost (with a port: "127.0.0.1:50051", "[::1]:50051").
bool is_loopback_address(const std::string& listen);

class Server {
 public:
  // Loads and compiles every model (throws hecnn::Error on a bad model or option). Nothing is
  // listening yet.
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  // Starts listening and the worker and reaper threads; throws hecnn::Error when plaintext is
  // refused on that address, the TLS files are unreadable or the port cannot be bound.
  void start();
  int port() const;  // after start()
  // Stops accepting calls, answers waiting ones UNAVAILABLE, lets running queries finish, joins
  // every thread. Idempotent.
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hecnn::service
