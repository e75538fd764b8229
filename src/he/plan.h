#pragma once
// Compiling an nn::Model into an encrypted computation: the model-level passes (he/compile), the
// parameters chosen for the depth, then the layout's back end (he/backend.h) lowers the program and
// says which keys it needs. The plan is what the server runs and what produces the client's
// specification.
#include <memory>
#include <optional>
#include <string>

#include "circuits/bootstrap.h"
#include "ckks/context.h"
#include "ckks/keygen.h"
#include "ckks/keys.h"
#include "ckks/params.h"
#include "he/compile/parameters.h"
#include "he/compile/program.h"
#include "he/spec.h"
#include "nn/model.h"

namespace hecnn::he {

// A back end's own lowering of the program (the packed layout's placements and diagonals): each
// back end (he/backend.h) reads its own.
struct LoweredLayout {
  virtual ~LoweredLayout() = default;
};

// Bootstrapping as planned: the bootstrap's parameters and the level its output has, which is the
// level the computation starts at (the client encrypts there) and comes back to after each bootstrap.
struct BootstrapPlan {
  circuits::BootstrapParameters params;
  std::size_t output_level = 0;
  // Its figures (circuits::Bootstrapper's), for the memory plan and the cost model.
  std::size_t key_switches = 0, working_bytes = 0, all_plaintext_bytes = 0, table_bytes = 0, rotation_keys = 0;
  // The DFT plaintexts stored for a budget (the engine gives the bootstrapper min(budget, params'));
  // a few budgets' answers are kept (stored_bytes_for computes from them).
  std::shared_ptr<const circuits::Bootstrapper> planner;  // built without plaintexts
  std::size_t stored_bytes_for(std::size_t budget) const;
};

struct HePlan {
  Program program;
  std::optional<BootstrapPlan> bootstrap;
  Layout layout = Layout::Batch;
  std::optional<ckks::CkksParameters> params;
  int scale_bits = 0;
  KeyRequirements keys;
  std::shared_ptr<const LoweredLayout> lowered;  // set by the layout's back end, when it needs one

  double scale() const;
  // The level the computation starts at: the chain's top, or a bootstrap's output level.
  std::size_t top_level() const;
  // Images per batch in this layout.
  std::size_t batch_size() const;
  ClientSpec client_spec() const;
  // Levels per stage, ring degree, bits of each prime, the keys and their sizes.
  std::string describe() const;
};

// The evaluation keys a server holds for one client (never a secret key).
struct EvaluationKeys {
  ckks::RelinKeys relin;    // params_id 0: absent
  ckks::GaloisKeys galois;  // the rotations the plan needs (and the bootstrap's, and conjugation)
  // Bootstrapping: the switch to the ephemeral sparse secret at level 0 and back.
  std::optional<ckks::Level0SwitchKey> to_sparse;
  std::optional<ckks::KeySwitchKey> from_sparse;
  circuits::BootstrapKeyView bootstrap_view() const {
    return {&relin, &galois, to_sparse ? &*to_sparse : nullptr, from_sparse ? &*from_sparse : nullptr};
  }
};
// Throws hecnn::Error unless `keys` are for ctx's parameters and hold every key `need` lists, each
// up to the level it is used at.
void check_keys(const EvaluationKeys& keys, const KeyRequirements& need, const ckks::CkksContext& ctx);
// Every evaluation key `need` lists, from the client's key generator: relinearization, rotations
// (each kept up to the level it is used at), conjugation and, for bootstrapping, the switches to an
// ephemeral sparse secret and back (the ephemeral secret is drawn here and wiped).
EvaluationKeys make_evaluation_keys(const ckks::KeyGenerator& keygen, const KeyRequirements& need);
// The rotation keys `need` lists, each kept up to the level it is used at.
ckks::GaloisKeys make_rotation_keys(const ckks::KeyGenerator& keygen, const KeyRequirements& need);
// Bytes of the rotation keys (in memory, or seeded as stored).
std::size_t rotation_keys_bytes(const ckks::CkksParameters& p, const KeyRequirements& need, bool seeded);

// A bootstrapper for the plan's bootstrapping (the plan must have one), its DFT plaintexts encoded
// once up to plaintext_budget bytes (0: none, for planning: rotation steps and sizes only).
std::shared_ptr<const circuits::Bootstrapper> make_bootstrapper(const HePlan& plan, const ckks::ContextPtr& ctx,
                                                                std::size_t plaintext_budget);
// Adds the bootstrap's keys (rotations, conjugation, encapsulation) to plan.keys.
void add_bootstrap_keys(HePlan& plan);

// Throws hecnn::Error for models encrypted inference cannot run, naming the layer, and when no
// parameters fit the options.
HePlan compile(const nn::Model& model, const CompileOptions& options = {}, Layout layout = Layout::Batch);

// The plan for parameters fixed beforehand (the server side, from the client's keys): throws
// hecnn::Error unless they have the levels the model needs.
// For the packed layout, `spec` (the client's) fixes the block and input copies.
HePlan compile_for(const nn::Model& model, const ckks::CkksParameters& params, int scale_bits,
                   Layout layout = Layout::Batch, const ClientSpec* spec = nullptr);

// Throws hecnn::Error unless the plan (compiled for a client's keys) produces that client's
// specification: keys made for another model (input shape, outputs, layout) are refused.
void check_client_spec(const HePlan& plan, const ClientSpec& spec);

}  // namespace hecnn::he
