#pragma once
// The client end of hecnn's inference service (proto/hecnn/v1/inference.proto): one channel to a
// server, plaintext (loopback) or TLS, and one call per method. Failed calls throw RpcError with
// the gRPC status, so callers can tell a full queue (RESOURCE_EXHAUSTED: retry later) from the
// rest. The client uploads the public part of a key bundle only: never the secret key.
#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "common/error.h"
#include "he/keys.h"
#include "hecnn/v1/inference.grpc.pb.h"

namespace hecnn::service {

class RpcError : public Error {
 public:
  RpcError(grpc::StatusCode code, const std::string& message);
  grpc::StatusCode code() const { return code_; }

 private:
  grpc::StatusCode code_;
};
// "RESOURCE_EXHAUSTED" and so on.
std::string status_code_name(grpc::StatusCode code);

struct ChannelOptions {
  std::string address = "127.0.0.1:50051";
  std::string tls_ca;    // PEM file of the certificate authority to trust: TLS; empty: plaintext
  std::string tls_name;  // the name the server's certificate must carry (default: the address's host)
};

struct SessionCredentials {
  std::string id, token;
};

struct RemoteResult {
  std::string bytes;  // the result's ciphertexts (service/wire.h)
  std::size_t images = 0, ciphertexts = 0;
  double seconds = 0;  // inference time on the server
};

class RemoteClient {
 public:
  explicit RemoteClient(const ChannelOptions& options);
  hecnn::v1::ListModelsResponse list_models(double timeout_s = 60);
  hecnn::v1::Stats stats(double timeout_s = 60);
  // Uploads the public part of `keys` (KeyBundle::public_bytes: never the secret key) for `model`,
  // in the layout of the keys' specification.
  SessionCredentials open_session(const std::string& model, const he::KeyBundle& keys, double timeout_s = 600);
  // The same with the public bundle's bytes already made (a client reopening sessions).
  SessionCredentials open_session(const std::string& model, const std::string& layout, const std::string& public_bundle,
                                  double timeout_s = 600);
  // Returns the query id.
  std::string submit(const SessionCredentials& s, const std::string& ciphertexts, std::size_t images, std::size_t count,
                     double timeout_s = 600);
  // Waits for the result (progress gets every status message) at most timeout_s; with release,
  // then removes it from the server (CancelQuery).
  RemoteResult get_result(const SessionCredentials& s, const std::string& query, bool release,
                          const std::function<void(const hecnn::v1::QueryStatus&)>& progress, double timeout_s);
  // The status now (wait = false); the result too when it is done.
  hecnn::v1::QueryStatus poll(const SessionCredentials& s, const std::string& query, RemoteResult* result = nullptr);
  void cancel(const SessionCredentials& s, const std::string& query);
  void close(const SessionCredentials& s);

  // For tests and tools that send their own messages: the stub, and the credentials of a call.
  hecnn::v1::Inference::Stub& stub() { return *stub_; }
  static void authorize(grpc::ClientContext& ctx, const SessionCredentials& s);

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<hecnn::v1::Inference::Stub> stub_;
};

// Throws RpcError for a status that is not OK; `what` names the call.
void check_status(const grpc::Status& st, const std::string& what);

}  // namespace hecnn::service
