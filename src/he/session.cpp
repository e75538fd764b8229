#include "he/session.h"

#include "common/error.h"

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
}

EngineOptions Session::engine_options() const {
  EngineOptions o;
  o.plaintext_budget = options_.plaintext_budget;
  return o;
}

void Session::start(const EngineOptions& options) {
  if (engine_) throw Error("the session's engine is already built");
  engine_ = make_engine(plan_, keys_.context(), eval_, options);
}

InferenceEngine& Session::engine() {
  if (!engine_) throw Error("the session's engine is not built yet (Session::start)");
  return *engine_;
}

}  // namespace hecnn::he
