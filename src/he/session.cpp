#include "he/session.h"

#include "common/error.h"
#include "he/backend.h"

namespace hecnn::he {

Session::Session(const nn::Model& model, KeyBundle keys, const SessionOptions& options)
    : options_(options), keys_(std::move(keys)) {
  if (keys_.has_secret()) throw Error("a session takes the public part of a key bundle, never a secret key");
  eval_ = keys_.take_evaluation_keys();
  const ClientSpec& spec = keys_.info().spec;
  // The plan for the keys' parameters; it must produce the specification the client holds.
  plan_ = compile_for(model, keys_.params(), spec.scale_bits, spec.layout, &spec);
  check_client_spec(plan_, spec);
  memory_ = estimate_memory(plan_, options_.threads, options_.plaintext_budget, false);
  weights_key_ = options_.model_key + "|" + std::to_string(keys_.params().id()) + "|" + spec.to_json().dump() + "|" +
                 std::to_string(options_.plaintext_budget);
}

std::shared_ptr<const EngineState> WeightCache::get(const std::string& key,
                                                    const std::function<std::shared_ptr<const EngineState>()>& make) {
  {
    const std::lock_guard<std::mutex> lock(mu_);
    if (auto live = states_[key].lock()) return live;
  }
  // Made outside the lock (it may take seconds); a session made at the same time may make its own.
  std::shared_ptr<const EngineState> fresh = make();
  const std::lock_guard<std::mutex> lock(mu_);
  if (auto live = states_[key].lock()) return live;
  states_[key] = fresh;
  for (auto it = states_.begin(); it != states_.end();) it = it->second.expired() && it->first != key ? states_.erase(it) : std::next(it);
  return fresh;
}

bool WeightCache::holds(const std::string& key) const {
  const std::lock_guard<std::mutex> lock(mu_);
  const auto it = states_.find(key);
  return it != states_.end() && !it->second.expired();
}

std::size_t WeightCache::bytes() const {
  const std::lock_guard<std::mutex> lock(mu_);
  std::size_t n = 0;
  for (const auto& [key, w] : states_) {
    if (auto s = w.lock()) n += s->bytes();
  }
  return n;
}

std::size_t WeightCache::entries() const {
  const std::lock_guard<std::mutex> lock(mu_);
  std::size_t n = 0;
  for (const auto& [key, w] : states_) n += !w.expired();
  return n;
}

EngineOptions Session::engine_options() const {
  EngineOptions o;
  o.plaintext_budget = options_.plaintext_budget;
  return o;
}

void Session::start(const EngineOptions& options) {
  if (engine_) throw Error("the session's engine is already built");
  EngineOptions o = options;
  if (options_.weights && !o.state) {
    const Backend& be = backend(plan_.layout);
    state_ = options_.weights->get(weights_key_, [&] { return be.engine_state(plan_, keys_.context(), o); });
    o.state = state_;
  }
  engine_ = make_engine(plan_, keys_.context(), eval_, o);
}

InferenceEngine& Session::engine() {
  if (!engine_) throw Error("the session's engine is not built yet (Session::start)");
  return *engine_;
}

}  // namespace hecnn::he
