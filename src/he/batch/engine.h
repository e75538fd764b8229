#pragma once
// Running a compiled plan in the batch layout (the server side: no secret key anywhere here), and
// the client side of that layout: encrypting images one per slot, decrypting the scores.
#include <memory>
#include <vector>

#include "ckks/ckks.h"
#include "common/stopwatch.h"
#include "he/batch/schedule.h"
#include "he/plan.h"
#include "he/progress.h"
#include "he/runtime.h"
#include "he/spec.h"

namespace hecnn::he::batch {

class ValueStore;

// The plan's sparse matrices and its streamed schedule for a tile size and thread count: a function
// of the plan alone, shared by the engines of the sessions of one model (he::WeightCache).
struct LoweredSchedule : EngineState {
  std::vector<ckks::SparseMatrix> matrices;  // per stage; empty for non-linear stages
  Schedule schedule;
  int tile = 0, threads = 0;
  std::size_t bytes() const override;
  // Throws hecnn::Error on a tile size out of range.
  static std::shared_ptr<const LoweredSchedule> make(const HePlan& plan, int tile, int threads);
};

// Runs the plan's streamed schedule (he/batch/schedule.h): stage by stage in tiles, every
// ciphertext released after its last reader, and with a spill directory the ciphertexts beyond
// the resident limit kept in a file there until read.
class Engine : public InferenceEngine {
 public:
  // Throws hecnn::Error unless the plan is in the batch layout and the keys are those it needs,
  // for the plan's parameters, or on a tile size out of range or a spill directory that cannot be
  // written. The plan and keys must outlive the engine.
  Engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys, const EngineOptions& options = {});
  // With the matrices and schedule made for this plan (shared with other engines); a state made
  // for another tile size or thread count is not used.
  Engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys, const EngineOptions& options,
         std::shared_ptr<const LoweredSchedule> lowered);
  ~Engine() override;

  // One ciphertext per input value (CHW order), all at the same level and scale; the inputs are
  // consumed (released after their last reader). Returns one ciphertext per output.
  std::vector<ckks::Ciphertext> run(std::vector<ckks::Ciphertext> inputs, const ProgressFn& progress = nullptr) const override;
  // The same with the inputs taken from `source` as the schedule reaches them.
  std::vector<ckks::Ciphertext> run(QuerySource& source, const ProgressFn& progress = nullptr) const;

  // Seconds spent in each stage by the last run (taking inputs from the source excluded).
  const std::vector<double>& stage_seconds() const override { return stage_seconds_; }
  // Seconds the last run spent taking inputs from its source.
  double source_seconds() const { return source_seconds_; }
  // The largest size the last run's spill file reached (0: nothing spilled).
  std::size_t spilled_bytes() const { return spilled_bytes_; }
  const Schedule& schedule() const { return lowered_->schedule; }

 private:
  void make_linear(const ScheduleStep& step, ValueStore& store) const;
  void make_pool(const ScheduleStep& step, ValueStore& store) const;
  void make_activation(const ScheduleStep& step, ValueStore& store) const;
  void make_add(const ScheduleStep& step, ValueStore& store) const;
  // Whether `step` is the last reader of value (stage, value) (it is released after the step).
  static bool released_by(const ScheduleStep& step, std::size_t stage, std::size_t value);
  // Throws hecnn::Error unless c has the level and scale of the first input (set from c when
  // scale is 0; enough levels for the plan) and two components.
  void check_input(const ckks::Ciphertext& c, std::size_t& level, double& scale) const;
  // Takes a step's inputs from the source, checked with check_input.
  void take_inputs(const ScheduleStep& step, QuerySource& source, ValueStore& store, std::size_t& level, double& scale) const;

  const HePlan& plan_;
  ckks::ContextPtr ctx_;
  const EvaluationKeys& keys_;
  EngineOptions options_;
  ckks::Evaluator ev_;
  std::shared_ptr<const LoweredSchedule> lowered_;
  const std::vector<ckks::SparseMatrix>& matrices_;  // lowered_'s
  const Schedule& schedule_;
  std::vector<std::vector<std::vector<std::uint32_t>>> readers_;  // with spilling: per stage and value, the steps reading it
  mutable std::vector<double> stage_seconds_;
  mutable double source_seconds_ = 0;
  mutable std::size_t spilled_bytes_ = 0;
  mutable Stopwatch run_;
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
  // The images (CHW floats, consecutive) value by value: [value][image].
  std::vector<float> pixel_major(const float* images, std::size_t count) const;
  // Input values indices[k] of `count` images given value by value (ciphertext p holds value p of
  // every image) into out[k].
  void encrypt_values(const std::vector<float>& pixel_major, std::size_t count, const std::vector<std::uint32_t>& indices,
                      std::vector<ckks::Ciphertext>& out) const;
  const ClientSpec& spec() const { return spec_; }

 private:
  ClientSpec spec_;
  ckks::ContextPtr ctx_;
  ckks::CkksEncoder encoder_;
  ckks::Encryptor encryptor_;
  ckks::Decryptor decryptor_;
};

// The inputs of a batch run encrypted as the schedule takes them (client and server in one
// process: `hecnn eval --encrypted`), so that the whole query is never in memory.
class EncryptingSource : public QuerySource {
 public:
  EncryptingSource(const Client& client, const float* images, std::size_t count);
  std::size_t size() const override;
  void take(const std::vector<std::uint32_t>& indices, std::vector<ckks::Ciphertext>& out) override;

 private:
  const Client& client_;
  std::vector<float> pixel_major_;
  std::size_t count_;
};

}  // namespace hecnn::he::batch
