#include "he/plan.h"

#include <cmath>
#include <sstream>

#include "common/error.h"
#include "he/backend.h"

namespace hecnn::he {

double HePlan::scale() const { return std::ldexp(1.0, scale_bits); }

std::size_t HePlan::batch_size() const { return backend(layout).batch_size(*this); }

ClientSpec HePlan::client_spec() const {
  if (!params) throw Error("the plan has no parameters yet");
  return backend(layout).client_spec(*this);
}

std::string HePlan::describe() const {
  std::ostringstream os;
  const int top = params ? static_cast<int>(params->max_level()) : program.depth;
  const Backend& be = backend(layout);
  os << describe_stages(program, top, be.value_unit());
  os << be.describe_layout(*this);
  if (params) {
    const auto& p = *params;
    os << "parameters: N = " << p.poly_degree() << " (" << batch_size() << " images per " << be.query_unit()
       << "), scale 2^" << scale_bits
       << ", " << p.total_bits() << " bits of modulus" << (p.insecure() ? " (INSECURE: above the 128-bit bound)" : " (128-bit secure)")
       << "\n  chain:";
    for (auto q : p.q()) os << " " << static_cast<int>(std::ceil(std::log2(static_cast<double>(q))));
    os << " bits; special:";
    for (auto q : p.p()) os << " " << static_cast<int>(std::ceil(std::log2(static_cast<double>(q))));
    os << " bits; " << p.digits() << " key-switching digits\n";
    os << "  keys:";
    if (keys.relinearization) {
      os << " relinearization " << relin_key_bytes(p, true) / 1024 << " KiB stored (" << relin_key_bytes(p, false) / (1024 * 1024)
         << " MiB in memory);";
    }
    if (keys.rotations.empty()) {
      os << " no rotation keys needed\n";
    } else {
      os << " " << keys.rotations.size() << " rotation keys, each kept up to the level it is used at: "
         << rotation_keys_bytes(p, keys, true) / (1024 * 1024) << " MiB stored, " << rotation_keys_bytes(p, keys, false) / (1024 * 1024)
         << " MiB in memory (" << keys.rotations.size() * relin_key_bytes(p, false) / (1024 * 1024) << " MiB at full level)\n";
    }
  }
  return os.str();
}

void check_keys(const EvaluationKeys& keys, const KeyRequirements& need, const ckks::CkksContext& ctx) {
  const std::uint64_t id = ctx.params().id();
  if (need.relinearization && keys.relin.params_id != id) {
    throw Error(keys.relin.params_id == 0 ? "encrypted inference: the relinearization key is missing"
                                          : "encrypted inference: the keys were made for other parameters than this model's plan");
  }
  if (!need.rotations.empty() && keys.galois.params_id != id) {
    throw Error("encrypted inference: the rotation keys are missing or were made for other parameters");
  }
  for (std::size_t i = 0; i < need.rotations.size(); ++i) {
    const int step = need.rotations[i];
    const auto it = keys.galois.keys.find(ctx.galois_element(step));
    if (it == keys.galois.keys.end()) throw Error("encrypted inference: no rotation key for step " + std::to_string(step));
    const std::size_t level = i < need.rotation_levels.size() ? need.rotation_levels[i] : ctx.max_level();
    if (ckks::key_chain(it->second, ctx) <= level) {
      throw Error("encrypted inference: the rotation key for step " + std::to_string(step) + " was kept up to level " +
                  std::to_string(ckks::key_chain(it->second, ctx) - 1) + ", the plan uses it at level " + std::to_string(level));
    }
  }
}

ckks::GaloisKeys make_rotation_keys(const ckks::KeyGenerator& keygen, const KeyRequirements& need) {
  if (need.rotation_levels.size() == need.rotations.size()) return keygen.create_galois_keys(need.rotations, need.rotation_levels);
  return keygen.create_galois_keys(need.rotations, false);
}

std::size_t rotation_keys_bytes(const ckks::CkksParameters& p, const KeyRequirements& need, bool seeded) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < need.rotations.size(); ++i) {
    total += rotation_key_bytes(p, i < need.rotation_levels.size() ? need.rotation_levels[i] : p.max_level(), seeded);
  }
  return total;
}

namespace {
HePlan lower(Program program, Layout layout) {
  HePlan plan;
  plan.program = std::move(program);
  plan.layout = layout;
  backend(layout).prepare(plan.program);
  return plan;
}
// The back end's part, once the parameters (and so the slot count) are known.
void finish(HePlan& plan, std::size_t images, const ClientSpec* spec) { backend(plan.layout).lower(plan, images, spec); }
}  // namespace

HePlan compile(const nn::Model& model, const CompileOptions& options, Layout layout) {
  check_compile_options(options);  // before the model is compiled
  HePlan plan = lower(compile_program(model), layout);
  plan.params = choose_parameters(plan.program.depth, options, &plan.scale_bits);
  finish(plan, options.packed_images, nullptr);
  return plan;
}

HePlan compile_for(const nn::Model& model, const ckks::CkksParameters& params, int scale_bits, Layout layout,
                   const ClientSpec* spec) {
  HePlan plan = lower(compile_program(model), layout);
  if (static_cast<int>(params.max_level()) < plan.program.depth) {
    // Said in terms of the keys: the server cannot choose parameters (no --log-n or --extra-levels
    // here), only the client's keygen can.
    throw Error("the keys' parameters hold " + std::to_string(params.max_level()) + " levels; this model needs " +
                std::to_string(plan.program.depth) + ": the keys were made for another, shallower model. Make keys for "
                "this model with hecnn keygen (it chooses parameters deep enough for it)");
  }
  if (scale_bits < kMinScaleBits || scale_bits > kMaxScaleBits) {
    throw Error("the keys' scale 2^" + std::to_string(scale_bits) + " is out of range (2^" + std::to_string(kMinScaleBits) +
                " to 2^" + std::to_string(kMaxScaleBits) + ")");
  }
  plan.params = params;
  plan.scale_bits = scale_bits;
  finish(plan, 1, spec);
  return plan;
}

void check_client_spec(const HePlan& plan, const ClientSpec& spec) {
  const ClientSpec mine = plan.client_spec();
  if (mine == spec) return;
  std::string what = "its layout, outputs or output factor differ";
  if (!(mine.input == spec.input)) {
    what = "the keys are for " + spec.input.to_string() + " inputs, this model takes " + mine.input.to_string();
  } else if (mine.outputs != spec.outputs) {
    what = "the keys are for " + std::to_string(spec.outputs) + " outputs, this model has " + std::to_string(mine.outputs);
  }
  throw Error("the evaluation keys were made for another model (" + what + "); run hecnn keygen with this model");
}

}  // namespace hecnn::he
