#include "he/runtime.h"

#include "common/error.h"
#include "he/batch/engine.h"
#include "he/packed/engine.h"

namespace hecnn::he {

std::unique_ptr<InferenceEngine> make_engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys,
                                             const EngineOptions& options) {
  switch (plan.layout) {
    case Layout::Batch: return std::make_unique<batch::Engine>(plan, std::move(ctx), keys, options);
    case Layout::Packed: return std::make_unique<packed::Engine>(plan, std::move(ctx), keys, options.plaintext_budget);
  }
  throw Error("unknown layout");
}

std::unique_ptr<InferenceClient> make_client(const ClientSpec& spec, ckks::ContextPtr ctx, const ckks::SecretKey& sk) {
  switch (spec.layout) {
    case Layout::Batch: return std::make_unique<batch::Client>(spec, std::move(ctx), sk);
    case Layout::Packed: return std::make_unique<packed::Client>(spec, std::move(ctx), sk);
  }
  throw Error("unknown layout");
}

}  // namespace hecnn::he
