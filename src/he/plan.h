#pragma once
// Compiling an nn::Model into an encrypted computation: the model-level passes (he/compile), the
// parameters chosen for the depth, then the layout's back end (he/backend.h) lowers the program and
// says which keys it needs. The plan is what the server runs and what produces the client's
// specification.
#include <memory>
#include <optional>
#include <string>

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

struct HePlan {
  Program program;
  Layout layout = Layout::Batch;
  std::optional<ckks::CkksParameters> params;
  int scale_bits = 0;
  KeyRequirements keys;
  std::shared_ptr<const LoweredLayout> lowered;  // set by the layout's back end, when it needs one

  double scale() const;
  // Images per batch in this layout.
  std::size_t batch_size() const;
  ClientSpec client_spec() const;
  // Levels per stage, ring degree, bits of each prime, the keys and their sizes.
  std::string describe() const;
};

// The evaluation keys a server holds for one client (never a secret key).
struct EvaluationKeys {
  ckks::RelinKeys relin;    // params_id 0: absent
  ckks::GaloisKeys galois;  // the rotations the plan needs
};
// Throws hecnn::Error unless `keys` are for ctx's parameters and hold every key `need` lists, each
// up to the level it is used at.
void check_keys(const EvaluationKeys& keys, const KeyRequirements& need, const ckks::CkksContext& ctx);
// The rotation keys `need` lists, each kept up to the level it is used at.
ckks::GaloisKeys make_rotation_keys(const ckks::KeyGenerator& keygen, const KeyRequirements& need);
// Bytes of the rotation keys (in memory, or seeded as stored).
std::size_t rotation_keys_bytes(const ckks::CkksParameters& p, const KeyRequirements& need, bool seeded);

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
