#pragma once
// The two sides of encrypted inference, whatever the layout: the server's engine (no secret key)
// runs a compiled plan on a query; the client encrypts images and decrypts scores from the
// ClientSpec alone. make_engine and make_client pick the back end from the plan's (or the
// specification's) layout.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/keys.h"
#include "he/batch/schedule.h"
#include "he/plan.h"
#include "he/progress.h"
#include "he/spec.h"

namespace hecnn::he {

// The query's ciphertexts, handed out as a streamed run needs them (batch layout): from a vector
// (the whole query in memory), or made on demand (the client encrypting in the same process).
class QuerySource {
 public:
  virtual ~QuerySource() = default;
  // The number of input ciphertexts.
  virtual std::size_t size() const = 0;
  // Input ciphertexts indices[k] into out[k] (out has indices.size() elements); each index is
  // asked for once.
  virtual void take(const std::vector<std::uint32_t>& indices, std::vector<ckks::Ciphertext>& out) = 0;
};

class InferenceEngine {
 public:
  virtual ~InferenceEngine() = default;
  // The query's ciphertexts, consumed; returns the result's ciphertexts.
  virtual std::vector<ckks::Ciphertext> run(std::vector<ckks::Ciphertext> inputs, const ProgressFn& progress = nullptr) const = 0;
  // Seconds spent in each stage by the last run.
  virtual const std::vector<double>& stage_seconds() const = 0;
};

class InferenceClient {
 public:
  virtual ~InferenceClient() = default;
  // 1 to spec.batch_size images of spec.input's shape (CHW floats, consecutive).
  virtual std::vector<ckks::Ciphertext> encrypt(const float* images, std::size_t count) const = 0;
  // outputs[image][class], already multiplied by spec.output_factor.
  virtual std::vector<std::vector<double>> decrypt(const std::vector<ckks::Ciphertext>& outputs, std::size_t count) const = 0;
};

// What an engine precomputes from the plan and the parameters alone (not the keys): the packed
// layout's encoded weight diagonals. Made by Backend::engine_state, it may be shared by the
// engines of every session with the same model and parameters (he::WeightCache).
struct EngineState {
  virtual ~EngineState() = default;
  virtual std::size_t bytes() const = 0;
};

struct EngineOptions {
  // Packed layout: the bytes of diagonals encoded once (see he/memory.h).
  std::size_t plaintext_budget = static_cast<std::size_t>(-1);
  // Batch layout: the streamed schedule's tile side (he/batch/schedule.h; 0: whole planes).
  int tile = batch::kDefaultTile;
  // Batch layout: with a directory, the ciphertexts beyond `resident_bytes` go to a file there
  // (removed when the run ends, however it ends).
  std::string spill_dir;
  std::size_t resident_bytes = static_cast<std::size_t>(-1);
  // Made by the same back end for the same plan and parameters; null: the engine makes its own.
  std::shared_ptr<const EngineState> state;
};

// Throws hecnn::Error unless the keys are those the plan needs, for its parameters. The plan and
// keys must outlive the engine.
std::unique_ptr<InferenceEngine> make_engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys,
                                             const EngineOptions& options = {});
inline std::unique_ptr<InferenceEngine> make_engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys,
                                                    std::size_t plaintext_budget) {
  EngineOptions o;
  o.plaintext_budget = plaintext_budget;
  return make_engine(plan, std::move(ctx), keys, o);
}
// Throws hecnn::Error unless the specification is for ctx's parameters.
std::unique_ptr<InferenceClient> make_client(const ClientSpec& spec, ckks::ContextPtr ctx, const ckks::SecretKey& sk);

}  // namespace hecnn::he
