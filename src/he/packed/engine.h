#pragma once
// Running a compiled plan in the packed layout (the server side: no secret key anywhere here), and
// the client side of that layout. See he/packed/backend.h for the layout itself.
#include <vector>

#include "ckks/ckks.h"
#include "common/stopwatch.h"
#include "he/packed/backend.h"
#include "he/plan.h"
#include "he/progress.h"
#include "he/runtime.h"
#include "he/spec.h"

namespace hecnn::he::packed {

// The weight diagonals encoded once (while they fit in the plaintext budget), at the level and for
// the scale each linear stage gets its inputs: a function of the plan and the parameters alone.
struct EncodedWeights : EngineState {
  std::vector<std::size_t> level;   // per stage: the level of its inputs
  std::vector<double> in_scale;     // per stage: the scale of its inputs
  std::vector<std::vector<std::vector<ckks::Plaintext>>> diagonals;  // [stage][giant][diagonal]; empty: encoded at every run
  // Plans with bootstraps: the bootstrapper, its DFT plaintexts encoded once (those that fit).
  std::shared_ptr<const circuits::Bootstrapper> bootstrapper;
  std::size_t bytes() const override;
  // Throws hecnn::Error unless the plan is packed and its stages fit ctx's levels.
  static std::shared_ptr<const EncodedWeights> make(const HePlan& plan, const ckks::ContextPtr& ctx, std::size_t plaintext_budget);
};

class Engine : public InferenceEngine {
 public:
  // Encodes every diagonal of every linear stage once, at the level the stage runs at. Throws
  // hecnn::Error unless the plan is in the packed layout and the keys are those it needs, for the
  // plan's parameters. The plan and keys must outlive the engine.
  // Diagonals are encoded once while they fit in plaintext_budget bytes (stages in order, see
  // he/memory.h); the others are encoded again at every run, a batch at a time.
  Engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys,
         std::size_t plaintext_budget = static_cast<std::size_t>(-1));
  // With weights made for this plan and parameters (shared with other engines).
  Engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys, std::shared_ptr<const EncodedWeights> weights);

  // The input ciphertexts of one image group (spec.input_ciphertexts, at the top level); returns the
  // output ciphertexts.
  std::vector<ckks::Ciphertext> run(std::vector<ckks::Ciphertext> inputs, const ProgressFn& progress = nullptr) const override;
  const std::vector<double>& stage_seconds() const override { return stage_seconds_; }

 private:
  std::vector<ckks::Ciphertext> linear(std::size_t index, std::vector<ckks::Ciphertext>& in) const;
  // The diagonals of giant steps [g0, g1) of a linear stage, encoded at its level ([giant - g0][diagonal]).
  std::vector<std::vector<ckks::Plaintext>> encode_giants(std::size_t stage, std::size_t g0, std::size_t g1) const;
  friend struct EncodedWeights;
  static std::vector<std::vector<ckks::Plaintext>> encode_giants(const PackedProgram& packed, const ckks::CkksEncoder& encoder,
                                                                 const ckks::CkksContext& ctx, std::size_t level, double q_scale,
                                                                 std::size_t stage, std::size_t g0, std::size_t g1);
  std::vector<ckks::Ciphertext> sum_pool(std::size_t index, std::vector<ckks::Ciphertext>& in) const;
  std::vector<ckks::Ciphertext> activation(std::size_t index, std::vector<ckks::Ciphertext>& in) const;
  // Every ciphertext refreshed (two at a time: they hold real values, see Bootstrapper::bootstrap_pair).
  std::vector<ckks::Ciphertext> bootstrap(std::size_t index, std::vector<ckks::Ciphertext>& in) const;
  // The sum of the inputs, each dropped to the stage's level.
  std::vector<ckks::Ciphertext> add(std::size_t index, const std::vector<const std::vector<ckks::Ciphertext>*>& in) const;

  const HePlan& plan_;
  const PackedProgram& packed_;
  ckks::ContextPtr ctx_;
  const EvaluationKeys& keys_;
  ckks::Evaluator ev_;
  ckks::CkksEncoder encoder_;
  std::shared_ptr<const EncodedWeights> weights_;
  mutable std::vector<double> stage_seconds_;
  mutable Stopwatch run_, stage_;
};

class Client : public InferenceClient {
 public:
  Client(const ClientSpec& spec, ckks::ContextPtr ctx, const ckks::SecretKey& sk);
  std::vector<ckks::Ciphertext> encrypt(const float* images, std::size_t count) const override;
  std::vector<std::vector<double>> decrypt(const std::vector<ckks::Ciphertext>& outputs, std::size_t count) const override;

 private:
  ClientSpec spec_;
  ckks::ContextPtr ctx_;
  Placement input_;
  ckks::CkksEncoder encoder_;
  ckks::Encryptor encryptor_;
  ckks::Decryptor decryptor_;
};

}  // namespace hecnn::he::packed
