// Sessions: OpenSession (a public key bundle uploaded into memory, checked, compiled against the
// model into an he::Session; nothing is written to disk) and CloseSession.
#include <sodium.h>

#include "common/error.h"
#include "common/stopwatch.h"
#include "he/keys.h"
#include "he/memory.h"
#include "service/server_impl.h"
#include "service/wire.h"

namespace hecnn::service {

grpc::Status Server::Impl::OpenSession(grpc::ServerContext* ctx, grpc::ServerReader<v1::OpenSessionRequest>* reader,
                                       v1::OpenSessionResponse* resp) {
  const CallGuard guard(*this, ctx);
  const Stopwatch t;
  std::string model_name, layout_text;
  std::uint64_t received = 0;
  std::size_t upload_reserved = 0;  // the upload's bytes, reserved while they are held
  auto unreserve_upload = [&] {
    if (upload_reserved == 0) return;
    const std::lock_guard<std::mutex> lock(mu);
    reserved -= upload_reserved;
    upload_reserved = 0;
  };
  auto refuse = [&](grpc::StatusCode code, const std::string& why) {
    unreserve_upload();
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
  const std::uint64_t declared = h.bundle_bytes();
  if (declared == 0) return refuse(grpc::StatusCode::INVALID_ARGUMENT, "bundle_bytes is 0: the upload must hold a key bundle");
  if (declared > opt.max_key_bytes) {
    return refuse(grpc::StatusCode::RESOURCE_EXHAUSTED,
                  "the keys are larger than the server's limit of " + std::to_string(opt.max_key_bytes) + " bytes");
  }
  // The upload is held in memory (never written to disk): its bytes are reserved first.
  {
    const std::lock_guard<std::mutex> lock(mu);
    if (reserved + declared > capacity) {
      const std::size_t limit = capacity;
      ++counters.sessions_refused;
      log.event("session_refused", {{"model", model_name}, {"declared_bytes", declared}, {"reason", "memory"}});
      return status(grpc::StatusCode::RESOURCE_EXHAUSTED, "the upload of " + he::gib(declared) +
                                                              " does not fit the server's memory limit of " + he::gib(limit) +
                                                              " now; try again later");
    }
    reserved += declared;
    upload_reserved = declared;
  }
  std::string bytes;
  bytes.reserve(declared);
  while (reader->Read(&msg)) {
    if (!msg.has_chunk()) return refuse(grpc::StatusCode::INVALID_ARGUMENT, "a second SessionHeader in the upload");
    if (msg.chunk().file() != v1::KeyChunk::BUNDLE) return refuse(grpc::StatusCode::INVALID_ARGUMENT, "a key chunk names no bundle");
    const std::string& data = msg.chunk().data();
    if (received + data.size() > declared) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT, "the key bundle holds more than the " + std::to_string(declared) +
                                                            " bytes declared");
    }
    bytes += data;
    received += data.size();
  }
  if (ctx->IsCancelled()) return refuse(grpc::StatusCode::CANCELLED, "the client cancelled the upload or its deadline passed");
  if (received != declared) {
    return refuse(grpc::StatusCode::INVALID_ARGUMENT, "truncated upload (" + std::to_string(received) + " of " +
                                                          std::to_string(declared) + " bytes)");
  }
  std::unique_ptr<he::Session> session;
  std::string key_id;
  try {
    he::KeyReadOptions ko;
    ko.secret = he::SecretPart::Refuse;  // a server never takes a secret key
    ko.max_bytes = opt.max_key_bytes;
    he::KeyBundle keys = he::KeyBundle::from_bytes(bytes.data(), bytes.size(), ko, "the key bundle");
    std::string().swap(bytes);
    unreserve_upload();
    key_id = keys.info().key_id;
    if (keys.info().spec.layout != layout) {
      return refuse(grpc::StatusCode::INVALID_ARGUMENT, "the keys are for the " + he::to_string(keys.info().spec.layout) +
                                                            " layout, the session asks for " + layout_text);
    }
    if (keys.info().insecure && !opt.allow_insecure_keys) {
      return refuse(grpc::StatusCode::FAILED_PRECONDITION,
                    "the keys use parameters above the 128-bit security bound, which this server refuses");
    }
    try {
      he::SessionOptions so;
      so.threads = threads_per_query;
      so.plaintext_budget = kSessionPlaintextBudget;
      so.weights = &weights;
      so.model_key = model_name;
      session = std::make_unique<he::Session>(model->model, std::move(keys), so);
    } catch (const Error& e) {
      return refuse(grpc::StatusCode::FAILED_PRECONDITION, std::string("the keys do not fit model '") + model_name + "': " + e.what());
    }
  } catch (const Error& e) {
    return refuse(grpc::StatusCode::INVALID_ARGUMENT, std::string("bad keys: ") + e.what());
  }
  auto s = std::make_shared<ClientSession>(Token::generate());
  s->he = std::move(session);
  // Reserve the session's standing memory before building its engine (which allocates it).
  {
    std::unique_lock<std::mutex> lock(mu);
    const bool never = s->standing_bytes() + s->query_bytes() > capacity;
    const bool now = reserved + session_reservation(*s) > capacity;
    const bool full = sessions.size() >= opt.max_sessions;
    if (never || now || full) {
      lock.unlock();
      return refuse(grpc::StatusCode::RESOURCE_EXHAUSTED,
                    full ? "the server holds its maximum of " + std::to_string(opt.max_sessions) + " sessions; try again later"
                    : never ? "this session's keys and one query would need " + he::gib(s->standing_bytes() + s->query_bytes()) +
                                  ", more than the server's memory limit of " + he::gib(capacity)
                            : "the server's memory is reserved by other sessions; try again later");
    }
    reserve_session(*s);
  }
  try {
    s->he->start();
  } catch (const Error& e) {
    {
      const std::lock_guard<std::mutex> lock(mu);
      release_session(*s);
    }
    return refuse(grpc::StatusCode::FAILED_PRECONDITION, std::string("the keys do not fit model '") + model_name + "': " + e.what());
  }
  s->model = model;
  s->id = random_hex(16);
  s->last_used = Clock::now();
  {
    const std::lock_guard<std::mutex> lock(mu);
    sessions[s->id] = s;
    ++counters.sessions_opened;
  }
  resp->set_session_id(s->id);
  std::string token_hex = s->token.hex();
  resp->set_token(token_hex);
  sodium_memzero(token_hex.data(), token_hex.size());
  resp->set_session_idle_seconds(static_cast<std::uint32_t>(opt.session_idle_s));
  resp->set_result_lifetime_seconds(static_cast<std::uint32_t>(opt.result_lifetime_s));
  log.event("session_opened", {{"session", s->id}, {"model", model_name}, {"layout", layout_text}, {"key_id", key_id},
                               {"key_bytes", received}, {"memory", s->standing_bytes()}, {"duration_s", t.seconds()}});
  return grpc::Status::OK;
}

grpc::Status Server::Impl::CloseSession(grpc::ServerContext* ctx, const v1::CloseSessionRequest*, v1::CloseSessionResponse*) {
  std::shared_ptr<ClientSession> s;
  if (auto st = authenticate(ctx, s); !st.ok()) return st;
  {
    const std::lock_guard<std::mutex> lock(mu);
    close_session(s);
  }
  cv.notify_all();
  log.event("session_closed", {{"session", s->id}, {"reason", "client"}});
  return grpc::Status::OK;
}

void Server::Impl::close_session(const std::shared_ptr<ClientSession>& s) {
  if (s->closed) return;
  s->closed = true;
  std::vector<std::shared_ptr<Query>> mine;
  for (const auto& [id, q] : queries) {
    if (q->session == s) mine.push_back(q);
  }
  for (const auto& q : mine) cancel(q);
  sessions.erase(s->id);
  if (!s->busy) release_session(*s);  // else the worker releases it when the query ends
}

std::size_t Server::Impl::session_reservation(const ClientSession& s) const {
  return s.he->own_bytes() + (weight_reservations.count(s.he->weights_key()) ? 0 : s.he->weight_bytes());
}

void Server::Impl::reserve_session(const ClientSession& s) {
  reserved += session_reservation(s);
  auto& [bytes, holders] = weight_reservations[s.he->weights_key()];
  if (holders++ == 0) bytes = s.he->weight_bytes();
}

void Server::Impl::release_session(const ClientSession& s) {
  reserved -= s.he->own_bytes();
  const auto it = weight_reservations.find(s.he->weights_key());
  if (it != weight_reservations.end() && --it->second.second == 0) {
    reserved -= it->second.first;
    weight_reservations.erase(it);
  }
}

}  // namespace hecnn::service
