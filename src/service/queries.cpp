// Queries: SubmitQuery (the query's memory reserved when it is accepted, so queued queries count
// against the memory limit), GetResult, CancelQuery.
#include <algorithm>

#include "common/error.h"
#include "common/stopwatch.h"
#include "he/memory.h"
#include "service/server_impl.h"
#include "service/wire.h"

namespace hecnn::service {

std::string Server::Impl::queue_full(const ClientSession& s) const {
  if (queue.size() + running >= opt.max_queries) {
    return "the server's queue is full (" + std::to_string(opt.max_queries) + " queries queued or running); try again later";
  }
  // Every accepted query will store a result: the queued and running ones count already, so a
  // finishing query always has room and the bound holds.
  if (results_stored + queue.size() + running >= opt.max_results) {
    return "the server stores its maximum of " + std::to_string(opt.max_results) + " results; fetch or cancel some first";
  }
  if (s.standing_bytes() + s.query_bytes() > capacity) return "a query of this session can never fit in the server's memory limit";
  return "";
}

grpc::Status Server::Impl::SubmitQuery(grpc::ServerContext* ctx, grpc::ServerReader<v1::SubmitQueryRequest>* reader,
                                       v1::SubmitQueryResponse* resp) {
  const CallGuard guard(*this, ctx);
  std::shared_ptr<ClientSession> s;
  if (auto st = authenticate(ctx, s); !st.ok()) return st;
  const Stopwatch t;
  std::uint64_t declared = 0, received = 0;
  std::size_t held = 0;  // memory reserved for this query while it is received
  auto unreserve = [&] {
    if (held == 0) return;
    {
      const std::lock_guard<std::mutex> lock(mu);
      reserved -= held;
    }
    held = 0;
    cv.notify_all();
  };
  auto refuse = [&](grpc::StatusCode code, const std::string& why) {
    unreserve();
    {
      const std::lock_guard<std::mutex> lock(mu);
      ++counters.refused;
    }
    log.event("query_refused", {{"session", s->id}, {"declared_bytes", declared}, {"bytes", received},
                                {"duration_s", t.seconds()}, {"code", static_cast<int>(code)}, {"reason", why}});
    return status(code, why);
  };
  const he::ClientSpec& spec = s->he->info().spec;
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
  const auto& p = s->he->context()->params();
  const std::uint64_t most = spec.input_ciphertexts * (he::ciphertext_bytes(p, p.max_level(), 2) + 4096);
  if (declared > most) {
    return refuse(grpc::StatusCode::INVALID_ARGUMENT, "the query declares " + std::to_string(declared) + " bytes; " +
                                                          std::to_string(spec.input_ciphertexts) + " ciphertexts hold at most " +
                                                          std::to_string(most));
  }
  // Accepted from here on, if it fits: its memory is reserved now, before its bytes are read, and
  // stays reserved while it waits in the queue and runs.
  {
    const std::lock_guard<std::mutex> lock(mu);
    if (stopping) return status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
    if (s->closed) return status(grpc::StatusCode::UNAUTHENTICATED, "unknown session or wrong token");
    std::string why = queue_full(*s);
    if (why.empty() && reserved + s->query_bytes() > capacity) {
      why = "the server's memory limit of " + he::gib(capacity) + " is reserved (" + he::gib(reserved) +
            " by sessions and queued or running queries); this query needs " + he::gib(s->query_bytes()) + "; try again later";
    }
    if (!why.empty()) {
      ++counters.refused;
      log.event("query_refused", {{"session", s->id}, {"declared_bytes", declared}, {"reason", why}});
      return status(grpc::StatusCode::RESOURCE_EXHAUSTED, why);
    }
    held = s->query_bytes();
    reserved += held;
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
    q->input = parse_ciphertexts(bytes, *s->he->context(), spec.input_ciphertexts);
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
    std::unique_lock<std::mutex> lock(mu);
    if (stopping || s->closed) {
      lock.unlock();
      unreserve();
      return stopping ? status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down")
                      : status(grpc::StatusCode::UNAUTHENTICATED, "unknown session or wrong token");
    }
    // The reservation passes to the queued query.
    q->reserved = held;
    held = 0;
    position = queue.size();
    queue.push_back(q);
    queries[q->id] = q;
    s->last_used = Clock::now();
  }
  log.event("query_queued", {{"session", s->id}, {"query", q->id}, {"images", static_cast<std::uint64_t>(q->images)},
                             {"bytes", received}, {"position", static_cast<std::uint64_t>(position)},
                             {"memory", static_cast<std::uint64_t>(q->reserved)}, {"duration_s", t.seconds()}});
  cv.notify_all();
  resp->set_query_id(q->id);
  resp->set_queue_position(static_cast<std::uint32_t>(position));
  return grpc::Status::OK;
}

void Server::Impl::release(Query& q) {
  reserved -= q.reserved;
  q.reserved = 0;
}

// The caller's query, or null (unknown, or of another session: the same answer). mu held.
std::shared_ptr<Query> Server::Impl::find_query(const std::string& id, const ClientSession& s) {
  const auto it = queries.find(id);
  if (it == queries.end() || it->second->session.get() != &s) return nullptr;
  return it->second;
}

grpc::Status not_found(const std::string& id) {
  return status(grpc::StatusCode::NOT_FOUND, "no query '" + id.substr(0, 64) + "' in this session");
}

// mu held.
v1::QueryStatus Server::Impl::describe(const Query& q) const {
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
void Server::Impl::forget(const std::shared_ptr<Query>& q) {
  if (queries.erase(q->id) && q->result) --results_stored;  // a result counts until it is removed
  q->result.reset();
}

grpc::Status Server::Impl::GetResult(grpc::ServerContext* ctx, const v1::GetResultRequest* req,
                       grpc::ServerWriter<v1::GetResultResponse>* writer) {
  const CallGuard guard(*this, ctx);
  std::shared_ptr<ClientSession> s;
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

grpc::Status Server::Impl::CancelQuery(grpc::ServerContext* ctx, const v1::CancelQueryRequest* req, v1::CancelQueryResponse*) {
  std::shared_ptr<ClientSession> s;
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
void Server::Impl::cancel(const std::shared_ptr<Query>& q) {
  if (q->state == State::Queued) {
    queue.erase(std::remove(queue.begin(), queue.end(), q), queue.end());
    q->input.clear();
    release(*q);  // a running one's memory is released by its worker when it ends
    ++counters.cancelled;
  } else if (q->state == State::Running) {
    ++counters.cancelled;
  }
  if (q->state != State::Running) forget(q);
  else queries.erase(q->id);
  if (q->state == State::Queued) q->state = State::Cancelled;
}

}  // namespace hecnn::service
