#pragma once
// One interface per layout. A Backend takes the layout-neutral program (he/compile) and provides
// everything that depends on how values sit in ciphertexts: the lowering (its placements, the keys
// it needs), the client's specification, the memory and time predictions, the plan's description,
// the server's engine and the client. The registry (backend(), backends()) is the only place that
// names the concrete back ends; the compiler, the CLI, the service and the Python module see this
// interface alone, so that a new layout (bootstrapped, multiplexed for deep networks) is one more
// registration.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/keys.h"
#include "he/cost.h"
#include "he/memory.h"
#include "he/plan.h"
#include "he/progress.h"
#include "he/runtime.h"
#include "he/spec.h"

namespace hecnn::he {

// A query run in one process, client and server together (eval --encrypted).
struct LocalRun {
  std::vector<ckks::Ciphertext> result;
  double encrypt_seconds = 0;  // of the run, the client's encryption
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Layout layout() const = 0;
  // The layout's name in options, keys.json and the protocol ("batch", "packed").
  virtual std::string name() const = 0;
  // Whether the layout runs Bootstrap stages (a refresh of a value's few ciphertexts).
  virtual bool bootstraps() const { return false; }
  // What holds one value ("ciphertexts", "values") and what one query is ("batch", "ciphertext group").
  virtual std::string value_unit() const = 0;
  virtual std::string query_unit() const = 0;
  // Whether the layout runs a query in tiles (EngineOptions::tile) and can keep ciphertexts beyond
  // the memory limit in a spill file (EngineOptions::spill_dir).
  virtual bool streams() const { return false; }

  // The layout's changes to the program before its parameters are chosen.
  virtual void prepare(Program&) const {}
  // Lowering once the parameters are known: the layout's own state (HePlan::lowered) and the keys
  // it needs. `images`: how many a query should be planned for; `spec` (server side): the client's
  // specification, which fixes the layout's free choices. Throws hecnn::Error when the model does
  // not fit the layout.
  virtual void lower(HePlan& plan, std::size_t images, const ClientSpec* spec) const = 0;
  virtual std::size_t batch_size(const HePlan& plan) const = 0;
  virtual ClientSpec client_spec(const HePlan& plan) const = 0;
  // The layout's own fields of a specification in keys.json: written, and read back with every
  // value checked (throws hecnn::Error naming the field).
  virtual void write_spec(const ClientSpec&, nlohmann::json&) const {}
  virtual void read_spec(const nlohmann::json& j, ClientSpec& s) const = 0;
  // Lines describing the layout's own choices (after the stages), or nothing.
  virtual std::string describe_layout(const HePlan&) const { return ""; }

  // The ciphertexts' part of the memory estimate (the caller adds keys and the process); see
  // he/memory.h for the arguments.
  virtual void estimate_ciphertexts(const HePlan& plan, int threads, std::size_t plaintext_budget, bool with_client, int tile,
                                    std::size_t resident_limit, MemoryEstimate& m) const = 0;
  // Predicted seconds of stage i, one thread (he/cost.h).
  virtual double stage_seconds(const HePlan& plan, std::size_t i, const CostModel& cost, const std::vector<bool>& preencoded) const = 0;

  // The engine's precomputed state for this plan on these parameters (EngineOptions::state), or
  // null when the layout has none worth sharing.
  virtual std::shared_ptr<const EngineState> engine_state(const HePlan&, const ckks::ContextPtr&, const EngineOptions&) const {
    return nullptr;
  }
  virtual std::unique_ptr<InferenceEngine> make_engine(const HePlan& plan, ckks::ContextPtr ctx, const EvaluationKeys& keys,
                                                       const EngineOptions& options) const = 0;
  virtual std::unique_ptr<InferenceClient> make_client(const ClientSpec& spec, ckks::ContextPtr ctx,
                                                       const ckks::SecretKey& sk) const = 0;
  // One query of `count` images (CHW floats) encrypted by `client` in this process and run by
  // `engine` (both made by this back end); returns the result's ciphertexts. The default encrypts
  // the whole query first; a layout may stream (batch: each input encrypted as the schedule takes it).
  virtual LocalRun run_local(const InferenceEngine& engine, const InferenceClient& client, const float* images,
                             std::size_t count, const ProgressFn& progress) const;
};

// The back end of a layout; throws hecnn::Error for one not registered.
const Backend& backend(Layout layout);
// Every registered back end, in the order `auto` considers them.
std::vector<const Backend*> backends();

// The one `auto` policy (eval, keygen and client alike): the packed layout while the images fit in
// at most kAutoPackedGroups packed queries (latency), the batch layout beyond (throughput), unless
// the batch layout does not fit in memory (batch_fits false).
inline constexpr std::size_t kAutoPackedGroups = 16;
Layout auto_layout(std::size_t images, std::size_t packed_images_per_query, bool batch_fits = true);

// `mode` "batch", "packed" or "auto" for `images` images within `memory_limit` bytes (auto only: the
// batch layout's predicted peak with the client in the process, at `tile`, must fit). Explains an
// automatic choice on `notes` (one line each) when it is not the obvious one.
HePlan compile_for_mode(const nn::Model& model, CompileOptions options, const std::string& mode, std::size_t images,
                        std::size_t memory_limit, int threads, int tile, std::vector<std::string>* notes = nullptr);

}  // namespace hecnn::he
