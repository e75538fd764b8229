#pragma once
// One client's keys on a server, ready to run queries: a model compiled for the keys' parameters
// and specification (compile_for), the plan checked against that specification
// (check_client_spec: keys made for another model are refused), its memory planned
// (estimate_memory), and the engine (make_engine) that runs queries. `hecnn infer` and the gRPC
// server both build their sessions here. A session holds no secret key.
#include <cstddef>
#include <memory>

#include "he/keys.h"
#include "he/memory.h"
#include "he/plan.h"
#include "he/runtime.h"

namespace hecnn::he {

struct SessionOptions {
  int threads = 1;  // threads one query runs with (for the memory estimate)
  // Packed layout: the bytes of weight diagonals encoded once (beyond: at every run).
  std::size_t plaintext_budget = static_cast<std::size_t>(-1);
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
  // Held while the session lives: evaluation keys, tables, encoded diagonals.
  std::size_t standing_bytes() const { return memory_.keys + memory_.tables + memory_.plaintexts; }
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
  std::unique_ptr<InferenceEngine> engine_;  // last: destroyed first (it uses the plan and keys)
};

}  // namespace hecnn::he
