#pragma once
// Running a compiled plan in the batch layout (the server side: no secret key anywhere here), and
// the client side of that layout: encrypting images one per slot, decrypting the scores.
#include <memory>
#include <vector>

#include "ckks/ckks.h"
#include "common/stopwatch.h"
#include "he/plan.h"
#include "he/progress.h"
#include "he/runtime.h"
#include "he/spec.h"

namespace hecnn::he::batch {

class Engine : public InferenceEngine {
 public:
  // Throws hecnn::Error unless the plan is in the batch layout and the keys are those it needs,
  // for the plan's parameters. The plan and keys must outlive the engine.
  Engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys);

  // One ciphertext per input value (CHW order), all at the same level and scale; the inputs are
  // consumed (memory is released as soon as a stage no longer needs them). Returns one ciphertext
  // per output.
  std::vector<ckks::Ciphertext> run(std::vector<ckks::Ciphertext> inputs, const ProgressFn& progress = nullptr) const override;

  // Seconds spent in each stage by the last run.
  const std::vector<double>& stage_seconds() const override { return stage_seconds_; }

 private:
  std::vector<ckks::Ciphertext> linear(std::size_t index, std::vector<ckks::Ciphertext>& in, const ProgressFn& progress) const;
  std::vector<ckks::Ciphertext> sum_pool(std::size_t index, std::vector<ckks::Ciphertext>& in) const;
  std::vector<ckks::Ciphertext> activation(std::size_t index, std::vector<ckks::Ciphertext>& in,
                                           const ProgressFn& progress) const;
  void report(const ProgressFn& progress, std::size_t index, std::size_t done, std::size_t total) const;

  const HePlan& plan_;
  ckks::ContextPtr ctx_;
  const EvaluationKeys& keys_;
  ckks::Evaluator ev_;
  std::vector<ckks::SparseMatrix> matrices_;  // per stage; empty for non-linear stages
  mutable std::vector<double> stage_seconds_;
  mutable Stopwatch run_, stage_;
};

// Client side. Images are packed one per slot: ciphertext p holds value p of every image.
class Client : public InferenceClient {
 public:
  // Throws hecnn::Error unless the specification is for the batch layout and ctx's parameters.
  Client(const ClientSpec& spec, ckks::ContextPtr ctx, const ckks::SecretKey& sk);
  // 1 to spec.batch_size images of spec.input's shape (CHW floats, consecutive).
  std::vector<ckks::Ciphertext> encrypt(const float* images, std::size_t count) const override;
  // outputs[image][class], already multiplied by spec.output_factor.
  std::vector<std::vector<double>> decrypt(const std::vector<ckks::Ciphertext>& outputs, std::size_t count) const override;

 private:
  ClientSpec spec_;
  ckks::ContextPtr ctx_;
  ckks::CkksEncoder encoder_;
  ckks::Encryptor encryptor_;
  ckks::Decryptor decryptor_;
};

}  // namespace hecnn::he::batch
