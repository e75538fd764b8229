// The workers (queries in arrival order, up to opt.concurrent_queries at once) and the reaper
// (expired results, idle sessions, calls past the request deadline).
#include <algorithm>
#include <map>

#include "common/stopwatch.h"
#include "common/threads.h"
#include "service/server_impl.h"
#include "service/wire.h"

namespace hecnn::service {

Server::Impl::CallGuard::CallGuard(Impl& server, grpc::ServerContext* c) : s(server), ctx(c) {
  const std::lock_guard<std::mutex> lock(s.calls_mu);
  s.calls[ctx] = Clock::now() + std::chrono::milliseconds(static_cast<long long>(s.opt.request_deadline_s * 1000));
}

Server::Impl::CallGuard::~CallGuard() {
  const std::lock_guard<std::mutex> lock(s.calls_mu);
  s.calls.erase(ctx);
}

// ---- the workers: queries in arrival order, up to opt.concurrent_queries at once ----
// The first queued query whose session is idle (its memory was reserved when it was accepted).
std::shared_ptr<Query> Server::Impl::next_query() {
  for (const auto& q : queue) {
    if (!q->session->busy) return q;
  }
  return nullptr;
}

void Server::Impl::work() {
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
      ++running;
    }
    if (opt.on_query_start) opt.on_query_start(q->id);
    cv.notify_all();
    const std::shared_ptr<ClientSession> s = q->session;
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
      std::vector<ckks::Ciphertext> out = s->he->engine().run(std::move(q->input), progress);
      result_cts = out.size();
      result = std::make_shared<const std::string>(serialize_ciphertexts(*s->he->context(), out, false));
    } catch (const std::exception& e) {
      error = e.what();
    }
    const double seconds = t.seconds();
    bool dropped = false;
    const std::uint64_t result_bytes = result ? result->size() : 0;
    {
      const std::lock_guard<std::mutex> lock(mu);
      --running;
      release(*q);
      s->busy = false;
      if (s->closed) release_session(*s);
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
void Server::Impl::reap() {
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
      std::map<const ClientSession*, bool> active;
      for (const auto& [id, q] : queries) {
        if ((q->state == State::Done || q->state == State::Failed) && now - q->done_at > lifetime) old.push_back(q);
        if (q->state == State::Queued || q->state == State::Running) active[q->session.get()] = true;
      }
      for (const auto& q : old) {
        expired_results.push_back(q->id);
        forget(q);
      }
      std::vector<std::shared_ptr<ClientSession>> idle_sessions;
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

}  // namespace hecnn::service
