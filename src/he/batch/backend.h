#pragma once
// The batch back end: one ciphertext per value (input pixel and channel, then every intermediate
// value, CHW order), one image per slot. A linear stage is a sparse matrix over ciphertexts
// (Evaluator::multiply_sparse), sum pooling adds ciphertexts, an activation evaluates its
// polynomial on each ciphertext. No rotations: the only evaluation key is the relinearization key.
#include <cstddef>

#include "ckks/evaluator.h"
#include "ckks/params.h"
#include "he/compile/parameters.h"
#include "he/backend.h"
#include "he/compile/program.h"
#include "he/spec.h"

namespace hecnn::he::batch {

inline constexpr const char* kValueUnit = "ciphertexts";

std::size_t batch_size(const ckks::CkksParameters& params);
KeyRequirements key_requirements(const Program& program);
ClientSpec client_spec(const Program& program, const ckks::CkksParameters& params, int scale_bits);
// A linear stage as a sparse matrix over its input ciphertexts (rows: output ciphertexts).
ckks::SparseMatrix lower_linear(const Stage& stage);

// The layout behind he::Backend (he/batch/layout.cpp; registered in he/backend.cpp).
class BatchBackend : public Backend {
 public:
  Layout layout() const override { return Layout::Batch; }
  std::string name() const override { return "batch"; }
  std::string value_unit() const override;
  std::string query_unit() const override;
  bool streams() const override { return true; }
  void lower(HePlan& plan, std::size_t images, const ClientSpec* spec) const override;
  std::size_t batch_size(const HePlan& plan) const override;
  ClientSpec client_spec(const HePlan& plan) const override;
  void read_spec(const nlohmann::json& j, ClientSpec& s) const override;
  void estimate_ciphertexts(const HePlan& plan, int threads, std::size_t plaintext_budget, bool with_client, int tile,
                            std::size_t resident_limit, MemoryEstimate& m) const override;
  double stage_seconds(const HePlan& plan, std::size_t i, const CostModel& cost, const std::vector<bool>& preencoded) const override;
  std::shared_ptr<const EngineState> engine_state(const HePlan& plan, const ckks::ContextPtr& ctx,
                                                  const EngineOptions& options) const override;
  std::unique_ptr<InferenceEngine> make_engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys,
                                               const EngineOptions& options) const override;
  std::unique_ptr<InferenceClient> make_client(const ClientSpec& spec, ckks::ContextPtr ctx, const ckks::SecretKey& sk) const override;
  LocalRun run_local(const InferenceEngine& engine, const InferenceClient& client, const float* images, std::size_t count,
                     const ProgressFn& progress) const override;
};

}  // namespace hecnn::he::batch
