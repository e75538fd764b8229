#pragma once
// One client's keys on a server, ready to run queries: a model compiled for the keys' parameters
// and specification (compile_for), the plan checked against that specification
// (check_client_spec: keys made for another model are refused), its memory planned
// (estimate_memory), and the engine (make_engine) that runs queries. `hecnn infer` and the gRPC
// server both build their sessions here. A session holds no secret key.
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "he/keys.h"
#include "he/memory.h"
#include "he/plan.h"
#include "he/runtime.h"

namespace hecnn::he {

// The engine states (encoded weights) of live sessions, by model and parameters: a second session
// with the same model, parameters and layout shares the first one's instead of encoding its own.
// An entry lives as long as a session holds it. Thread-safe.
class WeightCache {
 public:
  // The state for `key`, made by `make` when no live session holds one.
  std::shared_ptr<const EngineState> get(const std::string& key, const std::function<std::shared_ptr<const EngineState>()>& make);
  // Whether a live session holds the state for `key`.
  bool holds(const std::string& key) const;
  // The bytes of the live states, each counted once.
  std::size_t bytes() const;
  std::size_t entries() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::weak_ptr<const EngineState>> states_;
};

struct SessionOptions {
  int threads = 1;  // threads one query runs with (for the memory estimate)
  // Packed layout: the bytes of weight diagonals encoded once (beyond: at every run).
  std::size_t plaintext_budget = static_cast<std::size_t>(-1);
  // With a cache: the engine's state is shared with the other sessions of the same model (named
  // by `model_key`, e.g. the model's file and content hash) and parameters.
  WeightCache* weights = nullptr;
  std::string model_key;
};

class Session {
 public:
  // Compiles, checks and plans; allocates nothing of the engine yet (a server reserves the
  // standing memory first). Throws hecnn::Error when the keys hold a secret key, or do not fit the
  // model (another model's keys, missing rotation keys, parameters too small for its depth).
  // `model` must outlive the session.
  Session(const nn::Model& model, KeyBundle keys, const SessionOptions& options = {});
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const HePlan& plan() const { return plan_; }
  const KeyBundle& keys() const { return keys_; }
  const KeyInfo& info() const { return keys_.info(); }
  const ckks::ContextPtr& context() const { return keys_.context(); }
  const MemoryEstimate& memory() const { return memory_; }
  // Held while the session lives: evaluation keys and tables (its own), and the encoded diagonals
  // (weight_bytes, shared through SessionOptions::weights with the sessions of the same key).
  std::size_t standing_bytes() const { return memory_.keys + memory_.tables + memory_.plaintexts; }
  std::size_t own_bytes() const { return memory_.keys + memory_.tables; }
  std::size_t weight_bytes() const { return memory_.plaintexts; }
  // What the engine state is shared by: model, parameters, layout specification, budget.
  const std::string& weights_key() const { return weights_key_; }
  // The state the engine was started with from the cache (null without one, or for a layout without).
  const std::shared_ptr<const EngineState>& engine_state() const { return state_; }
  // Held while one of its queries runs.
  std::size_t query_bytes() const { return memory_.ciphertexts; }

  // Builds the engine; throws hecnn::Error unless the keys hold what the plan needs.
  void start(const EngineOptions& options);
  void start() { start(engine_options()); }
  // The engine options of the session's options (its plaintext budget).
  EngineOptions engine_options() const;
  bool started() const { return engine_ != nullptr; }
  // Throws hecnn::Error before start().
  InferenceEngine& engine();

 private:
  SessionOptions options_;
  KeyBundle keys_;
  EvaluationKeys eval_;
  HePlan plan_;
  MemoryEstimate memory_;
  std::string weights_key_;
  std::shared_ptr<const EngineState> state_;
  std::unique_ptr<InferenceEngine> engine_;  // last: destroyed first (it uses the plan and keys)
};

}  // namespace hecnn::he
