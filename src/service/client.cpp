#include "service/client.h"

#include <chrono>
#include <algorithm>
#include <fstream>

#include "service/wire.h"

namespace hecnn::service {

namespace v1 = hecnn::v1;

namespace {

void set_timeout(grpc::ClientContext& ctx, double seconds) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<long long>(seconds * 1000)));
}

std::string read_bounded(const std::string& path, std::size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  std::string s;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    s.append(buf, static_cast<std::size_t>(in.gcount()));
    if (s.size() > limit) throw Error(path + " is larger than " + std::to_string(limit) + " bytes");
  }
  return s;
}

}  // namespace

RpcError::RpcError(grpc::StatusCode code, const std::string& message) : Error(message), code_(code) {}

std::string status_code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    default: return "status " + std::to_string(static_cast<int>(code));
  }
}

void check_status(const grpc::Status& st, const std::string& what) {
  if (!st.ok()) throw RpcError(st.error_code(), what + ": " + status_code_name(st.error_code()) + ": " + st.error_message());
}

RemoteClient::RemoteClient(const ChannelOptions& o) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  if (!o.tls_ca.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = read_bounded(o.tls_ca, 1 << 20);
    creds = grpc::SslCredentials(ssl);
    if (!o.tls_name.empty()) args.SetSslTargetNameOverride(o.tls_name);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  channel_ = grpc::CreateCustomChannel(o.address, creds, args);
  stub_ = v1::Inference::NewStub(channel_);
}

void RemoteClient::authorize(grpc::ClientContext& ctx, const SessionCredentials& s) {
  ctx.AddMetadata(kSessionHeader, s.id);
  ctx.AddMetadata(kAuthorizationHeader, "Bearer " + s.token);
}

v1::ListModelsResponse RemoteClient::list_models(double timeout_s) {
  grpc::ClientContext ctx;
  set_timeout(ctx, timeout_s);
  v1::ListModelsResponse r;
  check_status(stub_->ListModels(&ctx, v1::ListModelsRequest(), &r), "ListModels");
  return r;
}

v1::Stats RemoteClient::stats(double timeout_s) {
  grpc::ClientContext ctx;
  set_timeout(ctx, timeout_s);
  v1::Stats r;
  check_status(stub_->GetStats(&ctx, v1::GetStatsRequest(), &r), "GetStats");
  return r;
}

SessionCredentials RemoteClient::open_session(const std::string& model, const he::KeyBundle& keys, double timeout_s) {
  return open_session(model, he::to_string(keys.info().spec.layout), keys.public_bytes(), timeout_s);
}

SessionCredentials RemoteClient::open_session(const std::string& model, const std::string& layout, const std::string& bundle,
                                              double timeout_s) {
  v1::OpenSessionRequest first;
  auto* h = first.mutable_header();
  h->set_model(model);
  h->set_layout(layout);
  h->set_bundle_bytes(bundle.size());
  grpc::ClientContext ctx;
  set_timeout(ctx, timeout_s);
  v1::OpenSessionResponse resp;
  auto writer = stub_->OpenSession(&ctx, &resp);
  bool ok = writer->Write(first);
  for (std::size_t off = 0; ok && off < bundle.size(); off += kChunkBytes) {
    v1::OpenSessionRequest m;
    m.mutable_chunk()->set_file(v1::KeyChunk::BUNDLE);
    m.mutable_chunk()->set_data(bundle.data() + off, std::min(kChunkBytes, bundle.size() - off));
    ok = writer->Write(m);
  }
  writer->WritesDone();
  check_status(writer->Finish(), "OpenSession");
  return {resp.session_id(), resp.token()};
}

std::string RemoteClient::submit(const SessionCredentials& s, const std::string& cts, std::size_t images, std::size_t count,
                                 double timeout_s) {
  grpc::ClientContext ctx;
  set_timeout(ctx, timeout_s);
  authorize(ctx, s);
  v1::SubmitQueryResponse resp;
  auto writer = stub_->SubmitQuery(&ctx, &resp);
  v1::SubmitQueryRequest first;
  first.mutable_header()->set_image_count(static_cast<std::uint32_t>(images));
  first.mutable_header()->set_ciphertext_count(static_cast<std::uint32_t>(count));
  first.mutable_header()->set_total_bytes(cts.size());
  bool ok = writer->Write(first);
  for (std::size_t off = 0; ok && off < cts.size(); off += kChunkBytes) {
    v1::SubmitQueryRequest m;
    m.set_chunk(cts.substr(off, std::min(kChunkBytes, cts.size() - off)));
    ok = writer->Write(m);
  }
  writer->WritesDone();
  check_status(writer->Finish(), "SubmitQuery");
  return resp.query_id();
}

namespace {

// Reads a GetResult stream: status messages (to `progress`), then the header and the chunks.
// Returns whether a result came; the bytes are bounded by the header's declared size.
bool read_result(grpc::ClientReader<v1::GetResultResponse>& reader, RemoteResult& out, v1::QueryStatus& last,
                 const std::function<void(const v1::QueryStatus&)>& progress) {
  v1::GetResultResponse m;
  bool have_header = false;
  std::uint64_t total = 0;
  while (reader.Read(&m)) {
    if (m.has_status()) {
      last = m.status();
      if (progress) progress(last);
    } else if (m.has_header()) {
      if (have_header) throw Error("GetResult: two result headers");
      have_header = true;
      total = m.header().total_bytes();
      if (total > (std::uint64_t{16} << 30)) throw Error("GetResult: implausible result size");
      out.images = m.header().image_count();
      out.ciphertexts = m.header().ciphertext_count();
      out.seconds = m.header().seconds();
      out.bytes.clear();
      out.bytes.reserve(total);
    } else if (m.has_chunk()) {
      if (!have_header || out.bytes.size() + m.chunk().size() > total) throw Error("GetResult: more result bytes than announced");
      out.bytes += m.chunk();
    }
  }
  if (have_header && out.bytes.size() != total) throw Error("GetResult: truncated result");
  return have_header;
}

}  // namespace

RemoteResult RemoteClient::get_result(const SessionCredentials& s, const std::string& query, bool release,
                                      const std::function<void(const v1::QueryStatus&)>& progress, double timeout_s) {
  grpc::ClientContext ctx;
  set_timeout(ctx, timeout_s);
  authorize(ctx, s);
  v1::GetResultRequest req;
  req.set_query_id(query);
  req.set_wait(true);
  auto reader = stub_->GetResult(&ctx, req);
  RemoteResult out;
  v1::QueryStatus last;
  const bool got = read_result(*reader, out, last, progress);
  check_status(reader->Finish(), "GetResult");
  if (!got) throw RpcError(grpc::StatusCode::DEADLINE_EXCEEDED, "GetResult: no result yet");
  if (release) cancel(s, query);
  return out;
}

v1::QueryStatus RemoteClient::poll(const SessionCredentials& s, const std::string& query, RemoteResult* result) {
  grpc::ClientContext ctx;
  set_timeout(ctx, 600);
  authorize(ctx, s);
  v1::GetResultRequest req;
  req.set_query_id(query);
  auto reader = stub_->GetResult(&ctx, req);
  RemoteResult out;
  v1::QueryStatus last;
  const bool got = read_result(*reader, out, last, nullptr);
  check_status(reader->Finish(), "GetResult");
  if (got && result) *result = std::move(out);
  return last;
}

void RemoteClient::cancel(const SessionCredentials& s, const std::string& query) {
  grpc::ClientContext ctx;
  set_timeout(ctx, 60);
  authorize(ctx, s);
  v1::CancelQueryRequest req;
  req.set_query_id(query);
  v1::CancelQueryResponse resp;
  check_status(stub_->CancelQuery(&ctx, req, &resp), "CancelQuery");
}

void RemoteClient::close(const SessionCredentials& s) {
  grpc::ClientContext ctx;
  set_timeout(ctx, 60);
  authorize(ctx, s);
  v1::CloseSessionResponse resp;
  check_status(stub_->CloseSession(&ctx, v1::CloseSessionRequest(), &resp), "CloseSession");
}

}  // namespace hecnn::service
